#!/usr/bin/env bash
# Create .venv (once) and install sgpose with its workflow and test tools from pyproject.toml.
# Sourced by sample.sh and test.sh; re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=.venv/.sgpose-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "sgpose setup: installing into .venv (first run takes a minute or two)" >&2
  if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]' >.venv/install.log 2>&1; then
    tail -n 40 .venv/install.log >&2
    echo "sgpose setup: pip install failed; full log in .venv/install.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
