"""SIGTERM inside a training stage is a flag, not an end; its data loader workers outlive a SIGTERM
(SLURM signals every process of a job), where a plain DataLoader's worker dies of it and fails the run."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from cache_samples import ATTRS, arrays
from sgpose.cache.reader import CacheBatches, EpochLoader
from sgpose.cache.writer import write_cache
from sgpose.runtime import interrupt
from torch.utils.data import DataLoader


def test_sigterm_sets_the_flag_inside_on_sigterm_only():
    before = signal.getsignal(signal.SIGTERM)
    with interrupt.on_sigterm():
        assert not interrupt.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes
        assert interrupt.requested() and interrupt.received()
    assert signal.getsignal(signal.SIGTERM) == before
    with interrupt.on_sigterm():
        assert not interrupt.requested()  # a new run starts with no request


class Slow(CacheBatches):
    """Batches that take a while, with the reading process's pid."""

    def __getitem__(self, indices):
        time.sleep(0.05)
        return super().__getitem__(indices) | {"pid": torch.tensor(os.getpid())}


@pytest.mark.parametrize("loader", ["epoch loader", "plain DataLoader"])
def test_reader_processes_ignore_sigterm(tmp_path, loader):
    write_cache(tmp_path / "c.h5", arrays(), ATTRS)
    data = Slow(tmp_path / "c.h5")
    batches = [[i] for i in range(5)] * 4
    if loader == "epoch loader":
        read = iter(EpochLoader(data, num_workers=2)(batches))
    else:
        read = iter(DataLoader(data, batch_size=None, sampler=batches, num_workers=2))
    got = [next(read)]
    for pid in {int(got[0]["pid"])} | {int(next(read)["pid"])}:
        os.kill(pid, signal.SIGTERM)  # as SLURM does at a time limit
    if loader == "plain DataLoader":  # torch's own worker handler: killed by it, and the run fails
        with pytest.raises(RuntimeError, match="DataLoader worker .* exited unexpectedly"):
            list(read)
        return
    rest = list(read)
    assert len(got) + 1 + len(rest) == len(batches)
    assert torch.equal(rest[-1]["heatmaps"], data[[4]]["heatmaps"])
