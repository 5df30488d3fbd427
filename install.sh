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
.venv/bin/scanner --version
echo "installed: activate with 'source .venv/bin/activate' or call .venv/bin/scanner"
