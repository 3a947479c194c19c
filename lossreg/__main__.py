"""``python -m lossreg``: the ``lossreg`` command (:mod:`lossreg.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
