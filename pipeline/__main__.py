"""``python -m pipeline`` is the same as the ``samtrack`` console script."""

import sys

from pipeline.cli import main

sys.exit(main())
