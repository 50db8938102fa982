#!/usr/bin/env bash
# Run the DAG with Snakemake: `bash scripts/snakemake.sh [snakemake arguments]` (default:
# --profile workflow/profiles/local). A lock left by a killed run (Snakemake's LockException) is
# recognised and the fix printed: finished outputs are kept, nothing is re-run for it.
# Uses the snakemake on PATH when there is one, else sets up .venv (setup.sh).
set -euo pipefail
if command -v snakemake >/dev/null; then
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
else
  source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
fi
args=("$@")
[ $# -gt 0 ] || args=(--profile workflow/profiles/local)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
snakemake "${args[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] && grep -q "Directory cannot be locked" "$log"; then
  cat >&2 <<MSG

sgpose: a Snakemake run that was killed (kill -9, a lost session, a power cut) left its lock in
$PWD/.snakemake/locks. If no other snakemake runs in this directory ($(pgrep -c -x snakemake || true) found now), remove it and rerun:
    snakemake --unlock ${args[*]}
    bash scripts/snakemake.sh ${args[*]}
Finished outputs are kept; the rerun continues where the killed one stopped.
MSG
fi
exit "$status"
