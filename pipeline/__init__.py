"""samtrack pipeline: video input, mask sources, runner, outputs, visualisation and CLI."""

__version__ = "0.1.0"
