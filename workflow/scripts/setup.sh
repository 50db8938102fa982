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
# headless Chromium renders results/report/index.html in the report test; install it when missing
if ! command -v chromium >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo -n"; fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo_cmd" ]; }; then
    echo "sgpose setup: installing chromium (apt-get; log in .venv/chromium-install.log)" >&2
    { $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
      || { $sudo_cmd apt-get update -q && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
    } >.venv/chromium-install.log 2>&1 || echo "sgpose setup: chromium install failed (see .venv/chromium-install.log)" >&2
  else
    echo "sgpose setup: chromium not found; install it (Debian: sudo apt-get install chromium) for the report page test" >&2
  fi
fi
export PATH="$PWD/.venv/bin:$PATH"
