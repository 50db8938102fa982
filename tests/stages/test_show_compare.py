"""`sgpose show` and `sgpose compare` through the CLI on a small real tree: a val cache of fixture persons, a
real `ours` refiner, the prepared ground truth and predictions files of three variants whose errors are
known (baseline off by 12 px on every joint of row 0 and 2 px elsewhere, ours off by 1 px, copy by 6 px)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURE_COCO
from sgpose.cli import main as cli
from test_report_stage import N, workdir, write_refiner, write_val_cache  # noqa: F401 (workdir: a fixture)

OFFSETS = {"baseline": 2.0, "ours": 1.0, "copy": 6.0}  # image px added to x and y of every labelled joint


def ground_truth(bb_dir: Path) -> pd.DataFrame:
    """The prepared val ground truth of the cached persons (COCO json), as `sgpose prepare` writes it."""
    rows = pd.read_parquet(bb_dir.parent / "prepared" / "instances_val.parquet")
    coco = json.loads((FIXTURE_COCO / "test_coco.json").read_text())
    keep = set(rows["ann_id"].astype(int))
    anns = [a for a in coco["annotations"] if a["id"] in keep]
    gt = {"images": coco["images"], "annotations": anns, "categories": coco["categories"]}
    (bb_dir.parent / "prepared" / "annotations_val.json").write_text(json.dumps(gt))
    return rows


def write_predictions(bb_dir: Path, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """One predictions file per variant in the cache's order; returns each variant's joints (N, K, 2)."""
    anns = {a["id"]: a for a in json.loads((bb_dir.parent / "prepared" / "annotations_val.json").read_text())["annotations"]}
    gt = np.array([anns[int(a)]["keypoints"] for a in rows["ann_id"]], dtype=float).reshape(len(rows), -1, 3)
    out = {}
    for variant, off in OFFSETS.items():
        xy = gt[..., :2] + off
        if variant == "baseline":
            xy[0] += 10.0  # row 0: 12 px off on each axis, the instance ours improves most
        kp = np.concatenate([xy, np.full(xy.shape[:2] + (1,), 0.9)], -1)
        path = bb_dir / variant / "predictions" / "val.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([{"image_id": int(i), "category_id": 1, "keypoints": k.ravel().tolist(), "score": 0.9}
                                    for i, k in zip(rows["image_id"], kp)]))
        out[variant] = xy
    return out


@pytest.fixture
def tree(workdir):  # noqa: F811 (the imported fixture)
    root, params, bb_dir = workdir
    write_val_cache(bb_dir, params)
    write_refiner(bb_dir)
    rows = ground_truth(bb_dir)
    return root, bb_dir, rows, write_predictions(bb_dir, rows)


def test_show_an_instance_by_annotation_id(tree, capsys):
    root, bb_dir, rows, _ = tree
    ann = int(rows["ann_id"].iloc[2])
    assert cli(["show", "--ann-id", str(ann), "--joint", "left_wrist"]) == 0
    out = capsys.readouterr().out
    assert f"annotation {ann} (image {int(rows['image_id'].iloc[2])}, cache row 2)" in out
    oks = dict(re.findall(r"(\w+) (\d\.\d{3})", out.splitlines()[1]))
    assert set(oks) == {"baseline", "copy", "ours"} and float(oks["ours"]) > float(oks["baseline"]) > float(oks["copy"])
    errors = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(r"^  (\w+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    assert errors and all(b == pytest.approx(2 * 2 ** 0.5, abs=0.05) and o == pytest.approx(2 ** 0.5, abs=0.05)
                          for b, o in errors.values())  # 2 px and 1 px on each axis
    panel = root / "results" / "show" / "sample" / bb_dir.name / "ours" / f"ann{ann}.png"
    assert f"panel: {panel.relative_to(root)}" in out
    img = mpimg.imread(panel)
    assert img.shape[0] > 500 and img[..., :3].std() > 0.05


def test_show_ranks_by_oks_gain_and_prints_json(tree, capsys):
    _, _, rows, _ = tree
    assert cli(["show", "--most-improved", "1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [d["ann_id"] for d in shown] == [int(rows["ann_id"].iloc[0])]  # baseline's 12 px row
    assert shown[0]["oks"]["ours"] > shown[0]["oks"]["baseline"] and Path(shown[0]["panel"]).is_file()
    assert cli(["show", "--worst", "2", "--variant", "ours", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2


@pytest.mark.parametrize("args, says", [
    (["--ann-id", "5"], "annotation id 5 is not in the val split"),
    (["--image-id", "7"], "image id 7 has no person in the val split"),
    (["--most-improved", "1", "--against", "A3"], "--against A3: no predictions of it on val"),
    (["--ann-id", "1", "--variant", "copy"], "--variant copy: not a refined variant"),
    (["--ann-id", "1", "--split", "val_det"], "split val_det holds detector boxes"),
])
def test_a_bad_choice_is_one_line_naming_it(tree, capsys, args, says):
    assert cli(["show", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgpose show: error: ") and says in err and err.count("\n") == 1, err


def test_compare_two_variants(tree, capsys):
    root, bb_dir, rows, _ = tree
    assert cli(["compare", "baseline", "ours"]) == 0
    out = capsys.readouterr().out
    assert f"baseline vs ours, {N} instances" in out
    assert f"ours higher on {N}, lower on 0, equal on 0" in out
    assert re.search(rf"gained most \(ours - baseline\):\n    annotation {int(rows['ann_id'].iloc[0])} ", out)
    table = pd.read_csv(root / "results" / "compare" / "sample" / bb_dir.name / "baseline_vs_ours_val.csv")
    assert len(table) == N and (table.gain > 0).all() and table.ann_id.tolist() == rows["ann_id"].astype(int).tolist()
    joints = re.findall(r"^    (\w+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert len(joints) == 17
    assert all(float(b) < float(a) for _, a, b in joints)  # ours nearer on every joint
    assert mpimg.imread(root / "results" / "compare" / "sample" / bb_dir.name / "baseline_vs_ours_val.png")[..., :3].std() > 0.05


def test_compare_takes_predictions_files_and_refuses_a_foreign_one(tree, capsys, tmp_path):
    root, bb_dir, rows, _ = tree
    theirs = tmp_path / "other_run" / "predictions" / "val.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes((bb_dir / "copy" / "predictions" / "val.json").read_bytes())
    assert cli(["compare", "ours", str(theirs), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["b"] == "other_run" and summary["lower"] == N
    short = json.loads(theirs.read_text())[:-1]
    theirs.write_text(json.dumps(short))
    assert cli(["compare", "ours", str(theirs)]) == 2
    assert f"{theirs}: holds {N - 1} results, the val cache {N} instances" in capsys.readouterr().err
