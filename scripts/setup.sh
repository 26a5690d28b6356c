#!/usr/bin/env bash
# Everything a fresh machine needs: the Fashion-MNIST package, PyTorch (from this machine's local wheels),
# and edgevae with all extras, editable.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
fi
# Pinned to the wheels on this machine's disk: an unpinned torch would download a multi-GB CUDA build.
python -c "import torch, torchvision" 2>/dev/null || pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q -e ".[dev]"
