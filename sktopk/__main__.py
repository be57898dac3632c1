"""``python -m sktopk reproduce ...``: the ``sktopk`` command line."""

import sys

from .reproduce.cli import main

if __name__ == "__main__":
    sys.exit(main())
