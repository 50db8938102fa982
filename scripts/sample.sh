#!/usr/bin/env bash
# Set up and run the whole DAG on the shipped real COCO sample (CPU): `dvc repro`, then the verdict: did this
# machine reproduce the recorded run (dvc.lock against git HEAD's, output by output)? Exit 1 where it did not.
# Extra arguments go to `dvc repro` (e.g. --force). Files come from SGPOSE_MIRROR when set.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
[ -d .dvc ] || dvc init -q
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dvc repro "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] && grep -q "rwlock" "$log"; then
  echo "sgpose: DVC found the lock of another (or a killed) dvc process in .dvc/tmp/rwlock. If no other dvc runs here," \
       "remove .dvc/tmp/rwlock and rerun: finished stages are kept." >&2
fi
[ "$status" -eq 0 ] || exit "$status"
dvc metrics show
echo "report: results/report/index.html"
sgpose verdict
