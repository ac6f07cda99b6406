"""`python -m gnatsd`: the same as the `gnatsd` command (`gnatsd/cli.py`)."""
import sys

from gnatsd.cli import main

if __name__ == "__main__":
    sys.exit(main())
