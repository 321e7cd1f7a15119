"""`python -m invalidator` runs the command line."""

import sys

from invalidator.cli import main

sys.exit(main())
