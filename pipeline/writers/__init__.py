"""Output writers. Importing this package registers the built-in ones; a new output format is
one module here that calls :func:`register_writer`, plus its import below."""

from samtrack.pipeline.writers import id_maps, tracks, videos  # noqa: F401 (registration)
from samtrack.pipeline.writers.base import (
    WRITERS,
    OutputWriter,
    WriterSettings,
    WriterSpec,
    default_writers,
    register_writer,
)

__all__ = ["WRITERS", "OutputWriter", "WriterSettings", "WriterSpec", "default_writers",
           "register_writer"]
