"""Chunks encoded by sgpose (lz4 / none + Fletcher-32) are stored as HDF5's filters store them: HDF5 reads
them back, checksums verified, as the arrays written; without compression, and in the lz4 frame's
header and checksum, byte for byte HDF5's own (the lz4 block itself may differ between lz4 versions:
any valid block decodes to the same bytes)."""

from __future__ import annotations

import struct

import h5py
import lz4.block
import numpy as np
import pytest
from cache_samples import ATTRS, arrays
from sgpose.cache import chunks
from sgpose.cache.format import COMPRESSION
from sgpose.cache.reader import load_cache
from sgpose.cache.writer import CacheWriter, write_cache


def hdf5_chunks(path, data: np.ndarray, compression: str) -> list[bytes]:
    """The stored bytes of each one-sample chunk of `data` written through HDF5's own filters."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", data=data, chunks=(1, *data.shape[1:]), fletcher32=True, **COMPRESSION[compression])
        return [ds.id.read_direct_chunk((i, *(0,) * (data.ndim - 1)))[1] for i in range(len(data))]


def samples() -> np.ndarray:
    """ReLU-like features (compressible), all zeros, incompressible noise, a run of 0xffff words."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((5, 16, 24, 18)), 0).astype(np.float16)
    x[1] = 0
    x[2] = rng.integers(0, 1 << 16, x[2].shape, dtype=np.uint16).view(np.float16)
    x[3].view(np.uint16)[...] = 0xFFFF  # Fletcher sums that are non-zero multiples of 65535
    return x


def direct_write(path, data: np.ndarray, compression: str, encoded: list[bytes]) -> np.ndarray:
    """`encoded` written as the chunks of a dataset with the cache's filters, read back through HDF5."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=data.shape, dtype=data.dtype, chunks=(1, *data.shape[1:]), fletcher32=True,
                              **COMPRESSION[compression])
        for i, chunk in enumerate(encoded):
            ds.id.write_direct_chunk((i, *(0,) * (data.ndim - 1)), chunk)
        return ds[()]


@pytest.mark.parametrize("compression", chunks.DIRECT)
def test_encoded_chunks_are_stored_as_hdf5_stores_them(tmp_path, compression):
    x = samples()
    want = hdf5_chunks(tmp_path / "ref.h5", x, compression)
    got = [chunks.encode_chunk(s.tobytes(), compression) for s in x]
    assert np.array_equal(direct_write(tmp_path / "mine.h5", x, compression, got).view(np.uint16), x.view(np.uint16))
    if compression == "none":
        assert got == want
        return
    for mine, ref, s in zip(got, want, x):  # the frame: original size, block size, block size packed
        assert mine[:12] == ref[:12] == struct.pack(">qi", s.nbytes, s.nbytes)
        packed = struct.unpack(">i", ref[12:16])[0]
        assert len(ref) == 16 + packed + 4
        block = ref[16:16 + packed]
        assert (block if packed == s.nbytes else lz4.block.decompress(block, uncompressed_size=s.nbytes)) == s.tobytes()
    assert got[2] == want[2]  # noise: stored raw in the frame by both, so the same bytes and checksum
    assert len(got[2]) == x[2].nbytes + 20 and len(got[1]) < x[1].nbytes // 10  # zeros shrink


def literal_fletcher32(data: bytes) -> int:
    """H5_checksum_fletcher32 (HDF5's H5checksum.c) line by line: folds every 360 words, then twice."""
    s1 = s2 = i = 0
    words = len(data) // 2
    while words:
        block = min(words, 360)
        words -= block
        for _ in range(block):
            s1 += (data[i] << 8) | data[i + 1]
            i += 2
            s2 += s1
        s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    if len(data) % 2:
        s1 += data[i] << 8
        s2 += s1
        s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    return (s2 << 16) | s1


@pytest.mark.parametrize("block", [chunks._BLOCK_WORDS, 1000])  # 1000: several blocks (and tables' tails)
def test_fletcher32_is_hdf5s_loop(monkeypatch, block):
    monkeypatch.setattr(chunks, "_BLOCK_WORDS", block)
    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (0, 1, 2, 3, 2047, 2048, 2049, 6001, 40_003)]
    cases += [b"\xff\xff" * 65535, b"\x00\x01" * 70_000, b"\xff" * 721, b"\0" * 99 + b"\x01"]
    for data in cases:
        assert chunks.fletcher32(data) == literal_fletcher32(data), len(data)


def test_fletcher32_edge_cases():
    assert chunks.fletcher32(b"") == 0 and chunks.fletcher32(b"\0" * 7) == 0
    assert chunks.fletcher32(b"\xff\xff") == 0xFFFFFFFF  # 65535, never 0, for a non-zero multiple
    assert chunks.fletcher32(b"\x01") == (0x0100 << 16) | 0x0100  # an odd last byte is a word's high byte
    assert chunks.fletcher32(b"\x00\x01\x00\x02") == (4 << 16) | 3  # sum2 = w1 + (w1 + w2)
    with pytest.raises(ValueError, match="left to HDF5"):
        chunks.encode_chunk(b"ab", "gzip")


@pytest.mark.parametrize("encoders", [0, 3])
def test_a_cache_written_on_encoder_threads_is_hdf5s(tmp_path, encoders):
    """The writer's direct path (3 threads, and 0: HDF5's pipeline) against HDF5's pipeline: the same
    filters declared, the same arrays read back through the checksums."""
    data, ref = arrays(), tmp_path / "ref.h5"
    write_cache(tmp_path / "c.h5", data, ATTRS, encoders=encoders)
    write_cache(ref, data, ATTRS, encoders=0)
    with h5py.File(tmp_path / "c.h5") as a, h5py.File(ref) as b:  # the same filters declared on every dataset
        assert {k: a[k].id.get_create_plist().get_nfilters() for k in ("feat/0", "target")} == {"feat/0": 2, "target": 2}
        for key in ("heatmaps", "feat/0", "target"):
            pa, pb = a[key].id.get_create_plist(), b[key].id.get_create_plist()
            assert [pa.get_filter(i)[:3] for i in range(2)] == [pb.get_filter(i)[:3] for i in range(2)]
    got, want = load_cache(tmp_path / "c.h5"), load_cache(ref)
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_a_corrupted_direct_chunk_fails_its_checksum(tmp_path):
    write_cache(tmp_path / "c.h5", arrays(), ATTRS)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        offset = f["feat/0"].id.get_chunk_info(1).byte_offset
    with open(tmp_path / "c.h5", "r+b") as fh:
        fh.seek(offset + 40)
        byte = fh.read(1)
        fh.seek(offset + 40)
        fh.write(bytes([byte[0] ^ 0x10]))
    with h5py.File(tmp_path / "c.h5", "r") as f, pytest.raises(OSError):
        f["feat/0"][1]


@pytest.mark.parametrize(("compression", "encoders", "direct"), [
    ("lz4", 2, {"heatmaps", "feat/0", "feat/1", "feat/2", "target"}), ("none", 1, {"heatmaps", "feat/0", "feat/1",
    "feat/2", "target"}), ("lz4", 0, set()), ("gzip", 2, set())])
def test_which_datasets_are_encoded_here(tmp_path, compression, encoders, direct):
    """The large one-sample-chunk datasets, for lz4 and none; HDF5's pipeline for the others (and the
    small per-sample rows, whose chunks HDF5 picks)."""
    with h5py.File(tmp_path / "c.h5", "w") as h5:
        writer = CacheWriter(h5, 5, compression=compression, encoders=encoders)
        writer.append(arrays())
        writer.close()
        assert writer.direct == direct
