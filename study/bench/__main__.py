"""``python -m study.bench``: see :mod:`study.bench.cli`."""

import sys

from study.bench.cli import main

sys.exit(main())
