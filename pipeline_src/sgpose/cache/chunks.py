"""Cache chunks encoded by sgpose itself, stored as HDF5's filter pipeline stores them, so that they can
be compressed on several threads and written with `write_direct_chunk`.

HDF5 runs a dataset's filters (lz4, then Fletcher-32) inside the write call, under h5py's global lock:
one writer process compresses on one core, about 115 MB/s of SimpleBaseline features on an H200 node
(docs/scale.md), whatever else the node has. The two filters the cache uses by default are simple
enough to reproduce (lz4: hdf5plugin's filter 32004, its frame around one lz4 block; Fletcher-32:
H5_checksum_fletcher32), and `lz4.block` and numpy release the GIL while they work.
tests/cache/test_chunks.py pins the frame, the checksum and uncompressed chunks to HDF5's own bytes
and has HDF5 read every encoded chunk back through its filters (the lz4 block itself may differ from
the plugin's, another lz4 version: it decodes to the same bytes). Other compressions (gzip, lzf,
blosc) stay with HDF5's pipeline.
"""

from __future__ import annotations

import struct

import lz4.block
import numpy as np

from sgpose.core.modes import Compression

LZ4_DEFAULT_BLOCK = 1 << 30  # the filter's block size when its first parameter is 0 (hdf5plugin.LZ4())
DIRECT = (Compression.NONE, Compression.LZ4)  # cache.compression values whose chunks are encoded here
_BLOCK_WORDS, _COLUMNS = 1 << 22, 1 << 10  # fletcher32's blocks of words, and their tables' width


def _fold(total: int) -> int:
    """HDF5's representative of a Fletcher sum: its folds keep every non-zero sum in [1, 65535] and
    congruent to it modulo 65535 (so 65535, never 0, for a non-zero multiple); 0 only for all zeros."""
    return ((total - 1) % 65535) + 1 if total else 0


def _weighted_sums(words: np.ndarray) -> tuple[int, int]:
    """(sum_i w_i, sum_i i * w_i) of at most _BLOCK_WORDS words, exactly: the words as a (rows, _COLUMNS)
    table plus a tail, so that i * w_i folds into row and column sums (two passes, no temporaries;
    every uint64 partial sum below 2^52)."""
    rows = len(words) // _COLUMNS
    table, tail = words[:rows * _COLUMNS].reshape(rows, _COLUMNS), words[rows * _COLUMNS:].astype(np.uint64)
    row_sums, col_sums = table.sum(axis=1, dtype=np.uint64), table.sum(axis=0, dtype=np.uint64)
    total = int(row_sums.sum()) + int(tail.sum())
    weighted = (_COLUMNS * int((np.arange(rows, dtype=np.uint64) * row_sums).sum())
                + int((np.arange(_COLUMNS, dtype=np.uint64) * col_sums).sum())
                + int((np.arange(rows * _COLUMNS, len(words), dtype=np.uint64) * tail).sum()))
    return total, weighted


def fletcher32(data: bytes | memoryview) -> int:
    """H5_checksum_fletcher32 of `data`: over its n big-endian 16-bit words (an odd last byte as the high
    byte of a word), sum1 = sum_i w_i and sum2 = the sum of sum1's running values = sum_i (n - i) w_i."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    words = np.frombuffer(data, dtype=">u2")
    s1 = weighted = 0  # exact (Python ints)
    for start in range(0, len(words), _BLOCK_WORDS):
        total, local = _weighted_sums(words[start:start + _BLOCK_WORDS])
        s1, weighted = s1 + total, weighted + start * total + local
    if s1 == 0:  # every word zero: both sums stayed 0
        return 0
    return (_fold(len(words) * s1 - weighted) << 16) | _fold(s1)


def lz4_chunk(raw: bytes) -> bytes:
    """`raw` as hdf5plugin's LZ4 filter stores it: the original size (big-endian int64), the block size
    (int32), then each block's compressed size (int32) and bytes, a block that does not shrink kept raw.
    Chunks are far below the default block size: one block."""
    if not raw or len(raw) > LZ4_DEFAULT_BLOCK:
        raise ValueError(f"a cache chunk of {len(raw)} bytes: expected 1 to {LZ4_DEFAULT_BLOCK} (one lz4 block)")
    packed = lz4.block.compress(raw, mode="default", store_size=False)
    if len(packed) >= len(raw):
        packed = raw
    return struct.pack(">qii", len(raw), len(raw), len(packed)) + packed


def encode_chunk(raw: bytes, compression: str) -> bytes:
    """A chunk's stored bytes for `cache.compression` (`DIRECT`), its Fletcher-32 appended (little-endian,
    as the filter writes it)."""
    if compression not in DIRECT:
        raise ValueError(f"chunks compressed with {compression!r} are left to HDF5's filters; encoded here: {DIRECT}")
    body = lz4_chunk(raw) if compression == Compression.LZ4 else raw
    return body + struct.pack("<I", fletcher32(body))


class ChecksumError(OSError):
    """A stored chunk whose Fletcher-32 does not match its bytes (what HDF5's filter reports as an OSError)."""


def lz4_unchunk(body: bytes | memoryview, nbytes: int) -> bytes:
    """The original `nbytes` of a chunk in hdf5plugin's LZ4 frame (`lz4_chunk`, any number of blocks; a
    block stored raw when its compressed size equals its size, as the filter decides)."""
    total, block = struct.unpack_from(">qi", body, 0)
    if total != nbytes or block <= 0:
        raise ChecksumError(f"lz4 frame of {total} bytes in blocks of {block}: expected a chunk of {nbytes} bytes")
    view, pos, parts = memoryview(body), 12, []
    for start in range(0, total, block):
        size = min(block, total - start)
        (stored,) = struct.unpack_from(">i", view, pos)
        data = view[pos + 4:pos + 4 + stored]
        parts.append(bytes(data) if stored == size else lz4.block.decompress(data, uncompressed_size=size))
        pos += 4 + stored
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decode_chunk(stored: bytes | memoryview, compression: str, nbytes: int) -> bytes:
    """The original bytes of a chunk `encode_chunk` (or HDF5's lz4 + Fletcher-32 filters) stored: the
    checksum verified (a ChecksumError otherwise, as HDF5 refuses the chunk), then unframed."""
    if compression not in DIRECT:
        raise ValueError(f"chunks compressed with {compression!r} are left to HDF5's filters; decoded here: {DIRECT}")
    view = memoryview(stored)
    body, (checksum,) = view[:-4], struct.unpack_from("<I", view, len(view) - 4)
    if fletcher32(body) != checksum:
        raise ChecksumError("a cache chunk fails its Fletcher-32 checksum (the data is damaged)")
    return lz4_unchunk(body, nbytes) if compression == Compression.LZ4 else bytes(body)
