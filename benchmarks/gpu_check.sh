#!/usr/bin/env bash
# The GPU check (issue 15), one command: benchmarks/gpu_check.py says what it runs and measures.
#   benchmarks/gpu_check.sh                # on a GPU machine: < 8 minutes on one H100
#   benchmarks/gpu_check.sh --small        # CPU sizes (the default where there is no CUDA)
# Runs the package from pipeline_src with this machine's own python3 and torch. Where python3 lacks
# sgpose's other dependencies (the GPU machine: no registry there), the bundle that benchmarks/gpu_bundle.sh
# made provides them (.gpu_bundle/site) and the sample images (.gpu_bundle/mirror). Writes
# $OUT/gpu_check.json (default build/gpu_check/) and prints one table; exits 1 when a section failed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${SGPOSE_GPU_BUNDLE:-.gpu_bundle}
PY=${PYTHON:-python3}
if ! "$PY" -c "import pydantic, hdf5plugin, lz4, pycocotools, faster_coco_eval" 2>/dev/null; then
    [ -d "$BUNDLE/site" ] || { echo "gpu_check: $PY lacks sgpose's dependencies and there is no $BUNDLE/site" \
                                    "(run benchmarks/gpu_bundle.sh where pip reaches PyPI)" >&2; exit 2; }
    export PYTHONPATH="$PWD/$BUNDLE/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${SGPOSE_MIRROR:-}" ] || [ ! -d "$SGPOSE_MIRROR/coco_sample" ]; then
    export SGPOSE_MIRROR="$PWD/$BUNDLE/mirror"
fi
export PYTHONPATH="$PWD/pipeline_src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py --out "${OUT:-build/gpu_check}" "$@"
