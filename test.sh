#!/usr/bin/env bash
# Command 2 of 2: set everything up (only what is missing) and run the tests (no network, no GPU,
# no ../shared needed: data tests skip cleanly without it). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
# The report's browser tests run Debian's headless Chromium (they skip, saying so, without it).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
        || echo "could not install chromium: the report's browser tests will skip" >&2
fi
# The catalog kit's PostgreSQL half runs against a throw-away server on a unix socket in a temp folder.
# Debian's postgresql package provides initdb/pg_ctl; installing it is idempotent. The EXIT trap stops the
# server whatever pytest does, and leaves pytest's exit status as the script's.
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
            || echo "could not install postgresql: the PostgreSQL catalog tests will skip" >&2
    else
        echo "postgresql is not installed: the PostgreSQL catalog tests will skip" >&2
    fi
fi
PGROOT="$(mktemp -d /tmp/scanner-test-pg.XXXXXX)"
trap '.venv/bin/python -m scanner.testing.pg_cluster stop "$PGROOT" || true' EXIT
if url="$(.venv/bin/python -m scanner.testing.pg_cluster start "$PGROOT")"; then
    export SCANNER_TEST_PG_URL="$url"
fi
.venv/bin/python -m pytest -q "$@"
