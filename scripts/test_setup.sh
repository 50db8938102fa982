#!/usr/bin/env bash
# What only the tests need, installed when missing; sourced by test.sh after setup.sh (the sample run
# needs neither):
# - xtcocotools 1.14.3, the CrowdPose toolkit's reference evaluator (tests/evaluation): its wheel is
#   built against numpy 1.x and fails to import beside numpy 2 ("numpy.dtype size changed"), so it is
#   built from source against the installed numpy (about 30 s, once).
# - Debian's chromium: the report test renders results/report/index.html in it headless.
# - Debian's slurm-wlm and munge: tests/test_slurm_cluster.py runs the DAG on a one-node SLURM cluster
#   (scripts/slurm_local.sh; as root). Without apt (or root) that test skips, saying why.
# - Debian's qemu-user: tests/runtime/test_emulated_processors.py computes the numeric components under
#   other processors' CPUIDs (qemu-x86_64 -cpu MODEL); without it that test skips, saying why.
set -euo pipefail
# setup.sh's package set ("${pins[@]}": its pip -c, none with SGPOSE_UNPINNED=1)
[ -n "${pins+set}" ] || source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
if ! .venv/bin/python -c "import xtcocotools.cocoeval" >/dev/null 2>&1; then
  echo "sgpose test setup: building xtcocotools from source (log in .venv/xtcocotools-install.log)" >&2
  { .venv/bin/python -m pip install --disable-pip-version-check "${pins[@]}" cython setuptools wheel \
    && .venv/bin/python -m pip install --disable-pip-version-check "${pins[@]}" --no-build-isolation --no-binary xtcocotools \
      "xtcocotools==1.14.3"; } >.venv/xtcocotools-install.log 2>&1 \
    || echo "sgpose test setup: xtcocotools build failed (see .venv/xtcocotools-install.log)" >&2
fi
# apt_install NAME COMMAND PACKAGE...: install Debian packages when COMMAND is missing (log in .venv/NAME-install.log)
apt_install() {
  local name=$1 probe=$2 sudo_cmd=""
  shift 2
  command -v "$probe" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo -n"; fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo_cmd" ]; }; then
    echo "sgpose setup: installing $* (apt-get; log in .venv/$name-install.log)" >&2
    { $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@" \
      || { $sudo_cmd apt-get update -q && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@"; }; \
    } >".venv/$name-install.log" 2>&1 || echo "sgpose setup: $name install failed (see .venv/$name-install.log)" >&2
  else
    echo "sgpose setup: $probe not found; install it (Debian: sudo apt-get install $*) for the $name tests" >&2
  fi
}
apt_install chromium chromium chromium
apt_install slurm slurmctld slurm-wlm munge
apt_install qemu qemu-x86_64 qemu-user
