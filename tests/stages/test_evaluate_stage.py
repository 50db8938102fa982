"""`sgpose evaluate --variant V` through the CLI, on the mmpose COCO fixture: every evaluation split
of the backbone into one metrics file; OKS-NMS on the detection-box split only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import MIRROR, params_tree, require, write_params
from sgpose.cli import main as cli_main

FIXTURE = MIRROR / "fixtures" / "coco" / "test_coco.json"
METRICS = Path("results/metrics/fx/tiny")


@pytest.fixture
def bb_dir(tmp_path, monkeypatch) -> Path:
    """tmp dir with a params.yaml (backbone `tiny` scored on val and val_det) and val's ground truth;
    cwd is Paths' root. Returns the backbone's directory."""
    require(FIXTURE)
    write_params(tmp_path, params_tree(prepare={"detections": "d.json"}, evals=("val", "val_det")))
    prepared = tmp_path / "results" / "fx" / "prepared"
    prepared.mkdir(parents=True)
    shutil.copy(FIXTURE, prepared / "annotations_val.json")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "results" / "fx" / "tiny"


def write_results(bb_dir: Path, variant: str, val: list, val_det: list | None = None) -> None:
    out = bb_dir / variant / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    (out / "val.json").write_text(json.dumps(val))
    (out / "val_det.json").write_text(json.dumps(val if val_det is None else val_det))


def gt_results() -> list[dict]:
    gt = json.loads(FIXTURE.read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"] if a["num_keypoints"] > 0 and not a.get("iscrowd", 0)]


def test_evaluate_writes_metrics_per_split(bb_dir):
    write_results(bb_dir, "ours", gt_results(), [])
    assert cli_main(["evaluate", "--params", "params.yaml", "--variant", "ours"]) == 0
    m = json.loads((METRICS / "ours.json").read_text())
    assert set(m) == {"val", "val_det"}
    assert m["val"]["AP"] == pytest.approx(1.0) and m["val"]["AR"] == pytest.approx(1.0)
    assert {"AP50", "AP75", "APM", "APL", "AR50", "AR75", "ARM", "ARL", "num_images", "num_instances"} <= set(m["val"])
    assert m["val_det"]["AP"] == 0.0 and m["val_det"]["num_instances"] == 0  # empty results: zeros, not an error
    assert not list(METRICS.glob("*.tmp-*"))


def test_the_ablations_variants_are_scored_on_val_only(bb_dir):
    """Table 1 and Figs. 5-6 read val; detector boxes (Table 4) are for baseline and ours."""
    write_results(bb_dir, "A2", gt_results(), [])
    assert cli_main(["evaluate", "--params", "params.yaml", "--variant", "A2"]) == 0
    assert set(json.loads((METRICS / "A2.json").read_text())) == {"val"}


def test_evaluate_missing_results_is_an_error(bb_dir, capsys):
    assert cli_main(["evaluate", "--params", "params.yaml", "--variant", "A1"]) == 1
    assert "A1/predictions/val.json" in capsys.readouterr().err


def test_variant_is_required_and_checked(bb_dir, capsys):
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--params", "params.yaml"])
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--params", "params.yaml", "--variant", "A7"])
    assert "unknown refined variant 'A7'" in capsys.readouterr().err


def test_detection_split_goes_through_oks_nms(bb_dir):
    results = gt_results()
    dupes = [dict(r, keypoints=[v + 0.5 if i % 3 != 2 else v for i, v in enumerate(r["keypoints"])], score=0.5)
             for r in results]  # a near-copy of every person, lower score: what several boxes give
    write_results(bb_dir, "ours", results + dupes)
    args = ["evaluate", "--params", "params.yaml", "--variant", "ours", "--set", "evaluate.backend=faster_coco_eval"]
    assert cli_main(args) == 0
    m = json.loads((METRICS / "ours.json").read_text())
    assert m["val"]["num_instances"] == 2 * len(results)  # ground-truth boxes: no NMS
    assert m["val_det"]["num_instances"] == len(results) and m["val_det"]["AP"] == pytest.approx(1.0)


def test_predictions_holding_nan_are_not_scored(bb_dir, capsys):
    """A diverged refiner's predictions (written before infer refused them) scored AP 0.0 and exit 0: now
    evaluate refuses the file, one line naming it, and writes no metrics."""
    results = gt_results()
    results[1]["keypoints"][4] = float("nan")
    write_results(bb_dir, "ours", results, [])
    assert "NaN" in (bb_dir / "ours" / "predictions" / "val.json").read_text()  # how Python's json wrote it
    assert cli_main(["evaluate", "--variant", "ours"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"sgpose evaluate: error: {bb_dir.relative_to(Path.cwd()) / 'ours/predictions/val.json'}: holds NaN, "
                   "a non-finite number (made by a diverged run?): delete it and rerun the stage that writes it")
    assert not (METRICS / "ours.json").exists()
