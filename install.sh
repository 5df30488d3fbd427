#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with scanner and its test/benchmark extras.
# torch/torchvision are pinned in pyproject.toml (torch==2.14.1, torchvision==0.29.1).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Packages used only for the weights they ship (voice encoder, speech detector). Installed without
# their dependencies: resemblyzer's pull a webrtcvad source build and the obsolete `typing`
# backport, silero-vad's pull a torchaudio that does not match the pinned torch.
.venv/bin/python -m pip install --quiet --no-deps resemblyzer==0.1.4 silero-vad==6.2.3
.venv/bin/scanner --version
echo "installed: activate with 'source .venv/bin/activate' or call .venv/bin/scanner"
