"""`sgpose inspect` on a real tiny cache (the cache stage's own output): what each split holds, the params
that made it, every chunk read back; a damaged chunk named with exit 1, a bad path exit 2. And the cache
stage's word on shards it keeps (`dvc repro -f` keeps them) and `--rebuild`."""

from __future__ import annotations

import hashlib
import json
import logging

import h5py
from sgpose.cli import main as cli
from test_cache_faults import CACHE, VAL_SHARD, cached, flip_chunk  # noqa: F401 (cached: a fixture)


def test_inspect_describes_a_split_and_verifies_every_chunk(cached, capsys):  # noqa: F811
    assert cli(["inspect", str(CACHE / "val.h5"), "--verify"]) == 0
    out = capsys.readouterr().out
    with h5py.File(VAL_SHARD) as h5:
        n, stored = len(h5["heatmaps"]), h5["heatmaps"].id.get_storage_size()
        chunks = sum(h5[k].id.get_num_chunks() for k in ("heatmaps", "target"))
    assert out.startswith(f"{CACHE / 'val.h5'}: {n} samples in 1 shard: shard-00000.h5 (")
    assert "made by: backbone tiny (SimpleBaseline ResNet-18" in out and "numerics portable (torch AVX2" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("heatmaps "))
    assert "float16" in row and "lz4" in row
    assert "verify:" in out and "all pass their checksum" in out
    assert cli(["inspect", str(CACHE / "val.h5"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    heat = next(d for d in found["datasets"] if d["key"] == "heatmaps")
    assert heat["stored_bytes"] == stored and heat["bytes_per_sample"] == round(stored / n, 1)
    assert found["samples"] == n and found["params"]["backbone"]["name"] == "tiny"
    assert sum(d["num_chunks"] for d in found["datasets"] if d["key"] in ("heatmaps", "target")) == chunks


def test_a_cache_directory_is_every_split(cached, capsys):  # noqa: F811
    assert cli(["inspect", str(CACHE), "--json"]) == 0
    assert [d["path"] for d in json.loads(capsys.readouterr().out)] == [str(CACHE / "train.h5"), str(CACHE / "val.h5")]


def test_verify_names_a_damaged_chunk_and_exits_1(cached, capsys):  # noqa: F811
    flip_chunk(VAL_SHARD, "heatmaps", 1)
    assert cli(["inspect", str(CACHE / "val.h5"), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"1 damaged: {VAL_SHARD}: heatmaps rows 0:" in out, out[-1500:]


def test_a_bad_path_is_one_line_exit_2(tmp_path, capsys):
    assert cli(["inspect", str(tmp_path / "nothing.h5")]) == 2
    assert capsys.readouterr().err == f"sgpose inspect: error: {tmp_path / 'nothing.h5'}: no such cache (a split's .h5, a " \
                                      "shard, or a cache directory)\n"
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert cli(["inspect", str(tmp_path / "junk.h5")]) == 2


def test_the_cache_stage_says_it_keeps_finished_shards_and_rebuild_writes_them(cached, caplog):  # noqa: F811
    before = hashlib.sha256(VAL_SHARD.read_bytes()).hexdigest()
    inode = VAL_SHARD.stat().st_ino
    with caplog.at_level(logging.INFO):
        assert cli(["cache", *cached, "--split", "val"]) == 0
    assert "kept 1 finished, current shard (`dvc repro -f` keeps them: persistent outputs); to write them again: " \
           "sgpose cache --backbone tiny --split val --rebuild" in caplog.text
    assert VAL_SHARD.stat().st_ino == inode
    assert cli(["cache", *cached, "--split", "val", "--rebuild"]) == 0
    assert VAL_SHARD.stat().st_ino != inode  # written again (a new file renamed into place) ...
    assert hashlib.sha256(VAL_SHARD.read_bytes()).hexdigest() == before  # ... with the same bytes
