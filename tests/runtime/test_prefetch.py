"""The prefetching reader of refiner training (sgpose.runtime.prefetch): the batches the training loop
read before, in the same order, converted the same way; a reader's error reaches the loop; a loop that
stops early stops the thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from cache_samples import ATTRS, arrays
from sgpose.cache.reader import CacheBatches, EpochLoader, shuffled_batches
from sgpose.cache.writer import write_cache
from sgpose.config.schema import ComputeParams
from sgpose.runtime import compute
from sgpose.runtime.prefetch import Prefetcher
from sgpose.training.refiner import to_device

CPU = torch.device("cpu")


@pytest.mark.parametrize("workers", [0, 2])
def test_prefetched_batches_are_the_readers_in_its_order(tmp_path, workers):
    """Two epochs of a cache (25 samples) read by training's EpochLoader (worker processes kept across epochs), each
    batch converted as fit converts it: the prefetcher yields exactly what direct iteration yields."""
    parts = [arrays(np.random.default_rng(seed)) for seed in range(5)]  # 25 samples, fp16 + lz4 as the stage writes
    write_cache(tmp_path / "c.h5", {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, ATTRS)
    data = CacheBatches(tmp_path / "c.h5", as_stored=True)
    loader, cp = EpochLoader(data, workers), ComputeParams()
    gen = torch.Generator().manual_seed(0)
    for epoch in range(2):
        order = shuffled_batches(len(data), 4, gen)
        direct = [to_device(b, cp, CPU) for b in loader(order)]
        prefetched = list(Prefetcher(loader(order), lambda b: to_device(b, cp, CPU), CPU))
        assert len(prefetched) == len(direct) == 7
        for a, b in zip(prefetched, direct):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert prefetched[0]["heatmaps"].dtype == torch.float32  # fp16 on disk, float32 on the device
    assert [len(b["heatmaps"]) for b in prefetched] == [4, 4, 4, 4, 4, 4, 1]
    data.close()


def test_a_readers_error_is_raised_in_the_loop_after_the_batches_before_it():
    def batches():
        yield {"x": torch.zeros(2)}
        raise OSError("damaged chunk")

    got = []
    with pytest.raises(OSError, match="damaged chunk"):
        for b in Prefetcher(batches(), dict, CPU):
            got.append(b)
    assert len(got) == 1


def test_a_loop_that_stops_early_stops_the_thread_and_waiting_is_timed():
    read = []

    def batches():
        for i in range(1000):
            read.append(i)
            yield {"x": torch.full((2,), float(i))}

    before = threading.active_count()
    prefetcher = Prefetcher(batches(), lambda b: {k: compute.to_device(v, ComputeParams(), CPU) for k, v in b.items()},
                            CPU, depth=2)
    for i, b in enumerate(prefetcher):
        assert b["x"][0].item() == i
        if i == 2:
            break
    assert threading.active_count() == before  # the thread has ended (joined)
    assert len(read) <= 3 + 2 + 1  # at most depth batches (and the one being put) read ahead
    assert prefetcher.waited >= 0.0
