#!/usr/bin/env bash
# The main job end to end on a fresh machine: data, training, evaluation, export, quantization,
# samples through the torch-free runtime, and the benchmark. Re-running resumes training where it stopped.
# Settings from the environment: EPOCHS (20), RUN (runs/main), MODEL (models/main), IWAE_K (1000),
# IWAE_IMAGES (1000 test images: k=1000 over all 10,000 costs ~10M decoder passes).
# The learning rate decays (cosine) over the EPOCHS epochs, so a run resumed with another EPOCHS is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EPOCHS=${EPOCHS:-20}
RUN=${RUN:-runs/main}
MODEL=${MODEL:-models/main}

edgevae train --epochs "$EPOCHS" --lr-decay-epochs "$EPOCHS" --out "$RUN" --resume
edgevae eval "$RUN/checkpoint.pt" --iwae-k "${IWAE_K:-1000}" --limit-test "${IWAE_IMAGES:-1000}"
edgevae export "$RUN/checkpoint.pt" --out "$MODEL" --force
edgevae quantize "$MODEL" --variants int8,int8-dynamic,fp16 --select
edgevae sample --model "$MODEL" --n 64 --seed 0 --out "$RUN/runtime-samples.png"
edgevae bench --model "$MODEL" --checkpoint "$RUN/checkpoint.pt" --out "$RUN/bench"
echo "done: $RUN (metrics.json, grids, bench/results.md) and $MODEL (model dir)"
