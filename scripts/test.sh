#!/usr/bin/env bash
# Set up a virtualenv with everything the tests need, then lint, type-check and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The live page is tested in a real headless Chromium (Debian's package; Playwright drives it).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null \
        || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi

# The SQL node's tests start a real PostgreSQL server (Debian's package: initdb, pg_ctl).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
        || echo "warning: could not install postgresql; the PostgreSQL tests will be skipped" >&2
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]" \
    -e "plugins/atomiton-nodes-io[test]" -e plugins/atomiton-nodes-image -e plugins/atomiton-nodes-shell \
    -e plugins/atomiton-lang-js -e "plugins/atomiton-nodes-sql[test,postgres]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
