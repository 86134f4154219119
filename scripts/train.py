#!/usr/bin/env python
"""Train an agent. See --help."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from worldmodels.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
