#!/usr/bin/env bash
# Command 1 of 2: set everything up (only what is missing) and run the main job on the bundled sample.
# Report: demo-workspace/report/report.html and results.jsonl.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
exec .venv/bin/scanner demo "$@"
