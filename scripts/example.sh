#!/usr/bin/env bash
# Set up a virtualenv with the core and the node packages, then run the example flow.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e . \
    -e plugins/atomiton-nodes-io -e plugins/atomiton-nodes-image -e plugins/atomiton-nodes-shell
.venv/bin/atomiton run examples/order-report.flow.yaml --storage .atomiton "$@"
