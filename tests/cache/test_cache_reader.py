"""Batches from the HDF5 cache: read from the shards directly, in memory or in worker processes, with
HDF5's filters or the chunks decoded on threads, always the same numbers as reading the whole cache;
one view per instance and epoch; what the reader processes hold ready bounded in bytes."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch
from cache_samples import ATTRS, arrays
from sgpose.cache.chunks import encode_chunk
from sgpose.cache.reader import (
    CacheBatches,
    EpochLoader,
    batch_loader,
    direct_compression,
    load_cache,
    prefetch_factor,
    runs,
    sequential_batches,
    shuffled_batches,
)
from sgpose.cache.shards import shard_path, write_manifest
from sgpose.cache.writer import write_cache
from sgpose.config.schema import TrainRefinerParams
from sgpose.runtime import threads
from sgpose.training.sources import CachedSource


def test_runs_of_consecutive_indices():
    assert runs(np.array([2, 3, 4, 7, 9, 10])) == [(2, 5, 0), (7, 8, 3), (9, 11, 4)]
    assert runs(np.array([], dtype=np.int64)) == []


def test_batches():
    assert sequential_batches(5, 2) == [[0, 1], [2, 3], [4]]
    gen = torch.Generator().manual_seed(0)
    epoch = shuffled_batches(10, 4, gen)
    assert sorted(i for b in epoch for i in b) == list(range(10)) and all(b == sorted(b) for b in epoch)
    views = shuffled_batches(10, 4, torch.Generator().manual_seed(0), views=3)
    flat = sorted(i for b in views for i in b)
    assert sorted(i // 3 for i in flat) == list(range(10))  # every instance once, in one of its views
    drawn = [sorted(i % 3 for b in shuffled_batches(50, 8, gen, views=3) for i in b) for _ in range(2)]
    assert set(drawn[0]) == {0, 1, 2} and drawn[0] != drawn[1]  # a new draw each epoch


@pytest.fixture
def sharded(tmp_path):
    """One cache written as three shards + manifest, and the same arrays as a single file."""
    data = arrays()
    manifest = tmp_path / "train.h5"
    bounds = [(0, 2), (2, 2), (2, 5)]  # an empty middle shard
    files = [shard_path(manifest, i) for i in range(3)]
    for f, (a, b) in zip(files, bounds):
        write_cache(f, {k: v[a:b] for k, v in data.items()}, ATTRS | {"fingerprint": str(f)})
    write_manifest(manifest, files, [a for a, _ in bounds], 5)
    write_cache(tmp_path / "single.h5", data, ATTRS)
    return manifest, load_cache(tmp_path / "single.h5")


@pytest.mark.parametrize("preload,decoders", [(False, 0), (True, 0), (False, 1), (False, 3)])
def test_batches_read_from_shards_equal_the_whole_cache(sharded, preload, decoders):
    manifest, whole = sharded
    data = CacheBatches(manifest, preload=preload, decoders=decoders)
    assert len(data) == 5 and data.sources[0].name == "shard-00000.h5" and [f.channels for f in data.feature_info()] == [8, 8, 8]
    for idx in ([0, 1, 2, 3, 4], [1, 3], [0, 4], [2], []):
        batch = data[idx]
        for key in data.keys:
            want = whole[key][idx]
            assert batch[key].dtype == (torch.float32 if want.dtype == np.float16 else torch.from_numpy(want).dtype)
            np.testing.assert_array_equal(batch[key].numpy(), want.astype(batch[key].numpy().dtype), err_msg=key)
    with pytest.raises(IndexError, match="sorted, unique"):
        data[[3, 1]]


class PidBatches(CacheBatches):
    """CacheBatches that also say which process read each batch."""

    def __getitem__(self, indices):
        return super().__getitem__(indices) | {"pid": torch.tensor(os.getpid())}


def test_epoch_loader_keeps_its_workers_and_reads_each_epochs_batches(tmp_path):
    write_cache(tmp_path / "c.h5", arrays(), ATTRS)
    data = PidBatches(tmp_path / "c.h5")
    loader, gen = EpochLoader(data, num_workers=2), torch.Generator().manual_seed(5)
    pids = []
    for epoch in range(3):
        batches = shuffled_batches(5, 2, gen)
        read = list(loader(batches))
        assert len(read) == len(batches)
        for batch, indices in zip(read, batches, strict=True):
            want = data[indices]
            assert all(torch.equal(batch[k], want[k]) for k in want if k != "pid")
        pids.append({int(b["pid"]) for b in read})
        assert os.getpid() not in pids[-1]
    assert pids[0] == pids[1] == pids[2]  # the same two reader processes every epoch
    first = next(iter(loader([[0, 1], [2, 3], [4]])))  # an epoch left unfinished: the next one starts afresh
    assert torch.equal(first["heatmaps"], data[[0, 1]]["heatmaps"])
    assert [b["heatmaps"].shape[0] for b in loader([[4], [0, 1, 2]])] == [1, 3]


def test_worker_processes_read_the_same_batches(tmp_path):
    write_cache(tmp_path / "c.h5", arrays(), ATTRS)
    data = CacheBatches(tmp_path / "c.h5")
    batches = shuffled_batches(5, 2, torch.Generator().manual_seed(3))
    serial = list(batch_loader(data, batches, 0))
    parallel = list(batch_loader(data, batches, 2))  # each worker opens its own handle
    for a, b in zip(serial, parallel, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("as_stored", [False, True])
def test_sample_nbytes_is_what_a_batch_holds(tmp_path, as_stored):
    write_cache(tmp_path / "c.h5", arrays(), ATTRS)  # fp16 heatmaps and features
    data = CacheBatches(tmp_path / "c.h5", as_stored=as_stored)
    batch = data[[0, 2, 3]]
    assert data.sample_nbytes * 3 == sum(v.numel() * v.element_size() for v in batch.values())


def test_the_readers_prefetch_is_bounded_in_bytes_not_batches(tmp_path, monkeypatch):
    """train_refiner.prefetch_gb bounds what the reader processes hold ready, whatever a batch weighs: the
    DataLoader's own bound (2 batches per worker) is 2 GB per worker for 1 GB batches."""
    assert prefetch_factor(10e9, workers=2, batch_bytes=1e9) == 5
    assert prefetch_factor(10e9, workers=8, batch_bytes=1e9) == 1  # never below the DataLoader's least
    assert prefetch_factor(2.5e6, workers=1, batch_bytes=1e6) == 2
    write_cache(tmp_path / "train.h5", arrays(), ATTRS)
    monkeypatch.setattr(threads, "_THREADS", 3)  # a stage on 3 cores: 2 reader processes
    per_batch = CacheBatches(tmp_path / "train.h5", as_stored=True).sample_nbytes * 2
    for budget_batches, factor in ((7, 3), (1, 1)):
        tp = TrainRefinerParams(batch_size=2, num_workers=2, preload_gb=0, prefetch_gb=budget_batches * per_batch / 1e9)
        source = CachedSource(tmp_path / "train.h5", tp, torch.device("cpu"))
        loader = source.loader.loader
        assert (loader.num_workers, loader.prefetch_factor) == (2, factor)
        read = list(source.batches([[0, 1], [2, 3], [4]], 0))
        assert [len(b["heatmaps"]) for b in read] == [2, 2, 1]


@pytest.mark.parametrize("compression,encoders", [("lz4", None), ("lz4", 0), ("none", None)])
def test_chunks_decoded_on_threads_are_hdf5s_reading(tmp_path, compression, encoders):
    """Chunks written by sgpose's encoders or by HDF5's own filters (encoders 0), decoded by sgpose
    (`decoders`), in the training process and in reader processes (shared memory): HDF5's numbers."""
    data = arrays()
    write_cache(tmp_path / "c.h5", data, ATTRS, compression=compression, encoders=encoders)
    with h5py.File(tmp_path / "c.h5", "r") as h5:
        kinds = {k: direct_compression(h5[k]) for k in ("heatmaps", "feat/0", "target", "joints", "meta/center")}
    assert kinds == {"heatmaps": compression, "feat/0": compression, "target": compression, "joints": None,
                     "meta/center": None}  # the small per-sample rows: HDF5's chunks of several samples
    batches = shuffled_batches(5, 2, torch.Generator().manual_seed(1))
    want = list(batch_loader(CacheBatches(tmp_path / "c.h5", as_stored=True), batches))
    for workers in (0, 2):
        got = list(batch_loader(CacheBatches(tmp_path / "c.h5", as_stored=True, decoders=2), batches, workers))
        for a, b in zip(got, want, strict=True):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            assert a["feat/0"].dtype == torch.float16


def test_a_chunk_stored_with_its_lz4_skipped_is_read_through_hdf5(tmp_path):
    """HDF5 marks a chunk whose optional filter was skipped in its filter mask: such a chunk holds the raw
    bytes; the decoder hands it to HDF5 instead of unframing bytes that are no lz4 frame."""
    data = arrays()
    write_cache(tmp_path / "c.h5", data, ATTRS)
    raw = np.full(data["heatmaps"].shape[1:], 0.5, np.float16)
    with h5py.File(tmp_path / "c.h5", "r+") as h5:
        h5["heatmaps"].id.write_direct_chunk((3, 0, 0, 0), encode_chunk(raw.tobytes(), "none"), filter_mask=1)
    got = CacheBatches(tmp_path / "c.h5", decoders=1)[[2, 3]]["heatmaps"]
    assert torch.equal(got[1], torch.from_numpy(raw).float())
    np.testing.assert_array_equal(got[0].numpy(), data["heatmaps"][2].astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("decoders", [0, 2])
def test_a_damaged_chunk_is_an_error_naming_the_shard(tmp_path, decoders):
    """A flipped byte inside a stored chunk fails its checksum, whoever decodes it: an InputError naming the
    file, never other numbers."""
    from sgpose.core.errors import InputError

    write_cache(tmp_path / "c.h5", arrays(), ATTRS)
    with h5py.File(tmp_path / "c.h5", "r") as h5:
        offset = h5["feat/0"].id.get_chunk_info(1).byte_offset
    with open(tmp_path / "c.h5", "r+b") as fh:
        fh.seek(offset + 40)
        byte = fh.read(1)
        fh.seek(offset + 40)
        fh.write(bytes([byte[0] ^ 0xFF]))
    data = CacheBatches(tmp_path / "c.h5", decoders=decoders)
    assert data[[0, 2]]["feat/0"].shape[0] == 2  # the other chunks still read
    with pytest.raises(InputError, match=f"{tmp_path / 'c.h5'}: damaged cache shard"):
        data[[1]]
