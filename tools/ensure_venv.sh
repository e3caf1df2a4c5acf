#!/usr/bin/env bash
# The virtual environment `make run` and `make test` install into: made by a Python
# >= 3.11, and made again when an earlier one is unusable (an interrupted first run
# leaves one without pip; one made by another Python would stick). Usage:
#   tools/ensure_venv.sh PYTHON VENV
set -euo pipefail
python=$1
venv=$2

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    found=$("$python" --version 2>&1 || echo "not found")
    echo "error: mtlsdemo needs Python >= 3.11 ($python: $found); run: make run PYTHON=python3.11 (or newer)" >&2
    exit 1
fi
if [ -e "$venv" ] && ! "$venv/bin/python" -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "$venv is incomplete (an interrupted first run?) or made by an older Python: making it again"
    rm -rf "$venv"
fi
if [ ! -e "$venv" ]; then
    echo "first run: a virtual environment in $venv with the runtime only (about a minute)"
    "$python" -m venv "$venv"
fi
