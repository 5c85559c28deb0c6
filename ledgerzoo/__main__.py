"""Run the ``ledgerzoo`` command as ``python -m ledgerzoo``."""

from __future__ import annotations

import sys

from ledgerzoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
