#!/usr/bin/env bash
# Regenerate runtime/default_model/, the model shipped inside the package (used when --model is left out):
# export the trained checkpoint, add one int8 variant (and quantize's per-batch-size selection), check the
# result with the runtime, then swap it into place whole.
#
#   scripts/make_default_model.sh [CHECKPOINT] [INT8_VARIANT]
#   defaults: runs/main/checkpoint.pt, int8 (static QDQ; or int8-dynamic if quantize's quality says so)
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKPOINT=${1:-runs/main/checkpoint.pt}
INT8=${2:-int8}
DEST=runtime/default_model
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

edgevae export "$CHECKPOINT" --out "$WORK/model"
edgevae quantize "$WORK/model" --variants "$INT8" --select
# The runtime must accept it and make images before it replaces the shipped one.
edgevae info --model "$WORK/model"
edgevae verify --model "$WORK/model"  # the goldens export and quantize stored (fp32 and $INT8)
for variant in fp32 "$INT8" auto; do
  edgevae sample --model "$WORK/model" --variant "$variant" --n 64 --seed 0 --out "$WORK/samples-$variant.png"
done

rm -rf "$DEST.new" "$DEST.old"
cp -r "$WORK/model" "$DEST.new"
if [ -d "$DEST" ]; then mv "$DEST" "$DEST.old"; fi
mv "$DEST.new" "$DEST"
rm -rf "$DEST.old"
du -sh "$DEST"
echo "wrote $DEST from $CHECKPOINT (fp32 + $INT8); samples checked: edgevae sample --n 64 --seed 0 --out grid.png"
