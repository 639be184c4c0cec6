"""``python -m samtrack`` is the same as the ``samtrack`` console script."""

import sys

from samtrack.pipeline.cli import main

sys.exit(main())
