"""Bytes flipped in a downloaded JPEG (a real copy of a sample image): the stages that read images
refuse it, naming the file and `sgpose download`, and write nothing; after `download` restores it
the run finishes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import MIRROR, fixture_instances, params_tree, require, write_instances, write_params
from sgpose.cache.reader import load_cache
from sgpose.cli import main as cli

FILES = ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg", "test_coco.json"]
INPUT = (64, 64)


def downloaded_project(root: Path) -> list[str]:
    """A project whose images are downloaded (by the real stage, from the mirror) into root/raw."""
    lines = ["path\turl\tsha256\tsize"]
    for name in FILES:
        data = require(MIRROR / "fixtures" / "coco" / name).read_bytes()
        lines.append(f"fixtures/coco/{name}\t\t{hashlib.sha256(data).hexdigest()}\t{len(data)}")
    (root / "m.tsv").write_text("\n".join(lines) + "\n")
    data = {"manifest": "m.tsv", "raw_dir": "raw", "images_dir": "raw/fixtures/coco",
            "annotations": "raw/fixtures/coco/test_coco.json"}
    params = write_params(root, params_tree(data=data, backbone_params={"input_size": list(INPUT), "heatmap_size": [16, 16]},
                                            train_backbone={"epochs": 0}, cache={"batch_size": 4}))
    table = fixture_instances(INPUT)
    write_instances(root, "fx", train=table.iloc[:7], val=table.iloc[7:])
    args = ["--params", str(params)]
    assert cli(["download", *args, "--mirror", str(MIRROR), "--no-progress"]) == 0
    return args


def test_a_damaged_image_is_refused_until_downloaded_again(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = downloaded_project(tmp_path)
    assert cli(["train_backbone", *args]) == 0
    image = Path("raw/fixtures/coco") / fixture_instances(INPUT).iloc[0]["file_name"]
    data = bytearray(image.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 8])
    image.write_bytes(bytes(data))  # still a decodable JPEG: only the checksum tells
    assert cli(["cache", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgpose cache: error: {image.resolve()}: sha256 ") and "differs from the download record " \
        "results/fx/download.json" in err and "run `sgpose download --dataset fx`" in err
    assert not Path("results/fx/tiny/cache").exists()
    assert cli(["train_backbone", *args, "--set", "train_backbone.epochs=1"]) == 2
    assert cli(["download", *args, "--mirror", str(MIRROR), "--no-progress"]) == 0
    assert cli(["cache", *args]) == 0
    assert len(load_cache("results/fx/tiny/cache/train.h5")["heatmaps"]) == 7
