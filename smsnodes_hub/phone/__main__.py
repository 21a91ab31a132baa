"""``python -m smsnodes_hub.phone``: the ``smsnodes-phone`` agent, under its older name."""

from __future__ import annotations

import sys

from smsnodes_phone.cli import main

if __name__ == "__main__":
    sys.exit(main())
