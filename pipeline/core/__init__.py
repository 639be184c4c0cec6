"""The bottom layer: what every other layer of samtrack shares.

``frames`` (the per-frame container), ``geometry``, ``formats`` (MOT/MOTS/ID-map I/O), ``video``
(frame input), ``device``, ``errors`` (the user-error type), ``registry`` (named plug-ins) and
``configbase`` (strict YAML-backed option models). Nothing here imports from another layer.
"""

__version__ = "0.1.0"
