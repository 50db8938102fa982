#!/usr/bin/env bash
# Install Debian's chromium when it is missing: the report test renders results/report/index.html in
# it headless. Sourced by test.sh (the sample run does not need it).
set -euo pipefail
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
