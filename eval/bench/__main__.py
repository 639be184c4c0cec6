"""``python -m samtrack.eval.bench``: the benchmark harness (same as ``samtrack bench``)."""

import sys

from samtrack.eval.bench.harness import main

sys.exit(main())
