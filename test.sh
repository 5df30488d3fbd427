#!/usr/bin/env bash
# Command 2 of 2: set everything up (only what is missing) and run the tests (no network, no GPU,
# no ../shared needed: data tests skip cleanly without it). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
exec .venv/bin/python -m pytest -q "$@"
