"""``python -m sktopk.reproduce --table 3 ...`` (same options as
``sktopk reproduce``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
