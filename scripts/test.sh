#!/usr/bin/env bash
# Set up a virtualenv with everything the tests need, then lint, type-check and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]" \
    -e plugins/atomiton-nodes-io -e plugins/atomiton-nodes-image -e plugins/atomiton-nodes-shell
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
