#!/usr/bin/env bash
# Set up and run the whole DAG on the shipped real COCO sample (CPU): `dvc repro`.
# Extra arguments go to `dvc repro` (e.g. --force). Files come from SGPOSE_MIRROR when set.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
[ -d .dvc ] || dvc init -q
dvc repro "$@"
dvc metrics show
echo "report: results/report/index.html"
