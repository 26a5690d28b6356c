#!/usr/bin/env bash
# The main job end to end on a fresh machine: data, training, evaluation, grids.
# EPOCHS (default 20) and RUN (default runs/main) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EPOCHS=${EPOCHS:-20}
RUN=${RUN:-runs/main}

edgevae train --epochs "$EPOCHS" --out "$RUN" --resume
edgevae eval "$RUN/checkpoint.pt" --iwae-k "${IWAE_K:-1000}" --limit-test "${IWAE_IMAGES:-2000}"
echo "run written to $RUN: metrics.json, reconstructions.png, samples.png"
