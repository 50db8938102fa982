"""Seconds per training epoch of reading batches: a real backbone's cache vs a controlled backbone's
(the same read, plus Y0 redrawn and rendered per batch by sgpose.controlled.source). Not a test:
the overhead a controlled backbone adds to each refiner epoch (docs/paper_notes.md).

    python benchmarks/controlled_source.py [--real sb_r18] [--controlled sb_r18_perturbed] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from sgpose.cache.reader import shuffled_batches
from sgpose.config import Paths, load_params
from sgpose.stages.train_refiner import training_source


def epoch_seconds(backbone: str, epochs: int) -> float:
    """Mean seconds to produce one epoch's batches (the training loop's order and batch size)."""
    params = load_params("params.yaml", backbone=backbone)
    source = training_source(params, Paths(params), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in range(epochs):
        batches = shuffled_batches(source.num_instances, params.train_refiner.batch_size, gen, source.views)
        for _ in source.batches(batches, epoch):
            pass
    return (time.perf_counter() - start) / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", default="sb_r18")
    ap.add_argument("--controlled", default="sb_r18_perturbed")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    for name in (args.real, args.controlled):
        print(f"{name:24s} {epoch_seconds(name, args.epochs):7.3f} s per epoch of batches")


if __name__ == "__main__":
    main()
