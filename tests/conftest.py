"""Lets tests import the shared helper module as `from helpers import ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
