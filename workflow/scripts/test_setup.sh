#!/usr/bin/env bash
# What only the tests need, installed when missing; sourced by test.sh after setup.sh (the sample run
# needs neither):
# - xtcocotools 1.14.3, the CrowdPose toolkit's reference evaluator (tests/evaluation): its wheel is
#   built against numpy 1.x and fails to import beside numpy 2 ("numpy.dtype size changed"), so it is
#   built from source against the installed numpy (about 30 s, once).
# - Debian's chromium: the report test renders results/report/index.html in it headless.
set -euo pipefail
if ! .venv/bin/python -c "import xtcocotools.cocoeval" >/dev/null 2>&1; then
  echo "sgpose test setup: building xtcocotools from source (log in .venv/xtcocotools-install.log)" >&2
  { .venv/bin/python -m pip install --disable-pip-version-check cython setuptools wheel \
    && .venv/bin/python -m pip install --disable-pip-version-check --no-build-isolation --no-binary xtcocotools \
      "xtcocotools==1.14.3"; } >.venv/xtcocotools-install.log 2>&1 \
    || echo "sgpose test setup: xtcocotools build failed (see .venv/xtcocotools-install.log)" >&2
fi
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
