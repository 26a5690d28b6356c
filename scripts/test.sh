#!/usr/bin/env bash
# Set up a fresh machine and run the test suite (the slow fault/soak tests: pytest -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python -m pytest -q "$@"
