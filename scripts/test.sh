#!/usr/bin/env bash
# Set up a fresh machine and run the test suite: the quick default tests plus the heavy end-to-end ones
# (a bare `python -m pytest` runs the quick ones only; the slow fault/soak tests: pytest -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python -m ruff check .  # pyproject's [tool.ruff]
python -m pytest -q -m "not slow" "$@"
