#!/usr/bin/env bash
# The GPU check's bundle (benchmarks/gpu_check.sh): what the GPU machine lacks, in .gpu_bundle/ (ignored).
# That machine reaches no registry and gets only the checkout, so run this once where pip reaches PyPI:
#   SGPOSE_MIRROR=/path/to/shared/data benchmarks/gpu_bundle.sh
#   .gpu_bundle/site    cp312 manylinux wheels of sgpose's dependencies missing there (pinned to the versions
#                       installed here), unpacked: a wheel is a zip, unpacked it is installed. hdf5plugin keeps
#                       its LZ4 filter only (the check's caches are lz4): its other filters are 44 MB.
#   .gpu_bundle/mirror  the first $SGPOSE_GPU_BUNDLE_IMAGES (120) images of the mirror's COCO sample, their
#                       annotations and detection boxes, in the mirror's layout (SGPOSE_MIRROR points there)
# The device call then carries both folders (well under its 64 MiB): carry [".gpu_bundle/site", ".gpu_bundle/mirror"].
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${SGPOSE_GPU_BUNDLE:-.gpu_bundle}
MIRROR=${SGPOSE_MIRROR:?set SGPOSE_MIRROR to the shared data mirror}
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/pipeline_src${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/wheels" "$BUNDLE/site"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do platforms+=(--platform "$p"); done
# shellcheck disable=SC2046  # the pins are words
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d "$BUNDLE/wheels" $("$PY" benchmarks/gpu_bundle.py pins)
for wheel in "$BUNDLE"/wheels/*.whl; do
    "$PY" -m zipfile -e "$wheel" "$BUNDLE/site"
done
find "$BUNDLE/site/hdf5plugin/plugins" -type f ! -name 'libh5lz4*' -delete
"$PY" benchmarks/gpu_bundle.py mirror "$MIRROR" "$BUNDLE/mirror" --images "${SGPOSE_GPU_BUNDLE_IMAGES:-120}"
du -sh "$BUNDLE/site" "$BUNDLE/mirror"
