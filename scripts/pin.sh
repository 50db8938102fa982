#!/usr/bin/env bash
# Re-pin workflow/constraints.txt to what .venv holds now: after a deliberate upgrade, e.g.
#   SGPOSE_UNPINNED=1 bash -c 'source scripts/setup.sh && source scripts/test_setup.sh'
#   bash scripts/pin.sh   # then run the tests and the sample, and commit both files with dvc.lock
# torch keeps its public version (2.13.0, not 2.13.0+cpu): pip finds the CPU build on these machines' disk.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=workflow/constraints.txt
{
  echo "# The package set every result in dvc.lock was made with, and the one CI tests: setup.sh installs"
  echo "# sgpose with 'pip install -c workflow/constraints.txt' (SGPOSE_UNPINNED=1: the newest releases that"
  echo "# pyproject.toml's ranges admit instead). Floating-point results (weights, AP) move with numpy, OpenCV"
  echo "# and torch; regenerate with scripts/pin.sh, never by hand."
  .venv/bin/python -m pip freeze --disable-pip-version-check --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "pinned $(grep -vc '^#' "$out") packages in $out"
