#!/usr/bin/env bash
# Set up and run the test suite (unit tests + the end-to-end DVC and Snakemake runs).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$(dirname "${BASH_SOURCE[0]}")/test_setup.sh"
export SGPOSE_MIRROR="${SGPOSE_MIRROR:-../shared/data}"
python -m pytest -q "$@"
