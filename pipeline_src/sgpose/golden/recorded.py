"""The recorded digests of the numeric components (`sgpose.golden.components`) under `compute.cpu_numerics:
portable`: what every machine that reproduces the sample's dvc.lock computes. `sgpose doctor` compares
this machine's with them in seconds; tests/golden/test_golden_digests.py does at every landing, on
whatever processor runs the suite, and tests/golden/test_emulated_processors.py under emulated ones.

A change to a component's code or inputs changes its digest: record the new one here in the same commit
(`sgpose doctor --json` prints them), with docs/reproducibility.md's list of the processors it was seen on.
"""

from __future__ import annotations

GOLDEN: dict[str, str] = {
    "torch init": "e96c1e2d1812",
    "GEMM": "4979f15c2c49",
    "convolution": "ee87bead66d4",
    "transposed convolution": "447f743dd601",
    "normalisation": "098e388af3f3",
    "pointwise": "7c961117787b",
    "reductions": "547cbf2f8abf",
    "Adam": "0afef0ae0a7f",
    "numpy math": "767c4d9535f5",
    "numpy BLAS": "e56efaffbcdc",
    "OpenCV and JPEG": "1d384c399060",
    "heatmaps": "3c2cfed0ed5b",
    "OKS evaluation": "9b17e8db285c",
    "backbone training": "78b90972de31",
    "refiner training": "8347eb28ff6b",
}
