#!/usr/bin/env bash
# Create .venv (once) and install sgpose with its workflow and test tools from pyproject.toml, at the
# versions of workflow/constraints.txt (the package set dvc.lock's results were made with; SGPOSE_UNPINNED=1:
# the newest that pyproject.toml admits). Sourced by sample.sh and test.sh; re-installs only when
# pyproject.toml or the constraints changed.
# Sourced at an interactive prompt (`source scripts/setup.sh`, as the docs say) it installs in a child shell
# and only puts .venv/bin on PATH: its `set -euo pipefail`, `cd` and a failure's exit stay out of your shell.
if [[ $- == *i* ]]; then
  if bash "${BASH_SOURCE[0]}"; then
    PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:$PATH"
    export PATH
    return 0 2>/dev/null || exit 0
  fi
  echo "sgpose setup: failed (see above); your shell is as it was" >&2
  return 1 2>/dev/null || exit 1
fi
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=.venv/.sgpose-installed
pins=(-c workflow/constraints.txt)
[ "${SGPOSE_UNPINNED:-0}" = 1 ] && pins=()
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ workflow/constraints.txt -nt "$stamp" ] \
   || [ "$(cat "$stamp")" != "${pins[*]:-unpinned}" ]; then
  echo "sgpose setup: installing into .venv (first run takes a minute or two)" >&2
  if ! .venv/bin/python -m pip install --disable-pip-version-check "${pins[@]}" -e '.[test]' >.venv/install.log 2>&1; then
    tail -n 40 .venv/install.log >&2
    echo "sgpose setup: pip install failed; full log in .venv/install.log" >&2
    exit 1
  fi
  echo "${pins[*]:-unpinned}" >"$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
