"""The ``callbridge`` command (``python -m callbridge``); the commands are in ``callbridge.cli``."""

import sys

from callbridge.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
