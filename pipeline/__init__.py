"""samtrack pipeline: core types and I/O (``core``), mask sources (``sources``), the runner,
outputs, visualisation and the command line."""
