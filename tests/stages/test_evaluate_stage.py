"""`sgpose evaluate --variant V` through the CLI, on the mmpose COCO fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from sgpose.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
from conftest import MIRROR, require

FIXTURE = MIRROR / "fixtures" / "coco" / "test_coco.json"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp dir with params.yaml (the repo's) and the val ground truth; cwd is Paths' root."""
    require(FIXTURE)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    ds = tmp_path / "results" / params["dataset"]
    ds.mkdir(parents=True)
    shutil.copy(FIXTURE, ds / "annotations_val.json")
    monkeypatch.chdir(tmp_path)
    # the parser imports every stage module; keep this test independent of the other stages
    return tmp_path, ds / params["backbone"]["name"]


def write_results(bb_dir: Path, variant: str, results: list) -> None:
    (bb_dir / variant).mkdir(parents=True, exist_ok=True)
    (bb_dir / variant / "val_keypoints.json").write_text(json.dumps(results))


def gt_results() -> list[dict]:
    gt = json.loads(FIXTURE.read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"] if a["num_keypoints"] > 0 and not a.get("iscrowd", 0)]


def test_evaluate_writes_metrics(workdir):
    root, bb_dir = workdir
    write_results(bb_dir, "ours", gt_results())
    assert cli_main(["evaluate", "--params", "params.yaml", "--variant", "ours"]) == 0
    m = json.loads((bb_dir / "ours" / "metrics.json").read_text())
    assert m["variant"] == "ours"
    assert m["AP"] == pytest.approx(1.0) and m["AR"] == pytest.approx(1.0)
    assert {"AP50", "AP75", "APM", "APL", "AR50", "AR75", "ARM", "ARL", "num_images", "num_instances"} <= set(m)
    assert not list((bb_dir / "ours").glob("*.tmp-*"))


def test_evaluate_empty_results(workdir):
    root, bb_dir = workdir
    write_results(bb_dir, "baseline", [])
    assert cli_main(["evaluate", "--params", "params.yaml", "--variant", "baseline"]) == 0
    m = json.loads((bb_dir / "baseline" / "metrics.json").read_text())
    assert m["AP"] == 0.0 and m["num_instances"] == 0


def test_evaluate_missing_results_is_an_error(workdir, capsys):
    assert cli_main(["evaluate", "--params", "params.yaml", "--variant", "A1"]) == 1
    assert "val_keypoints.json" in capsys.readouterr().err


def test_variant_is_required(workdir):
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--params", "params.yaml"])


def test_detection_runs_go_through_oks_nms(workdir):
    root, bb_dir = workdir
    results = gt_results()
    dupes = [dict(r, keypoints=[v + 0.5 if i % 3 != 2 else v for i, v in enumerate(r["keypoints"])], score=0.5)
             for r in results]  # a near-copy of every person, lower score: what several boxes give
    write_results(bb_dir, "ours", results + dupes)
    args = ["evaluate", "--params", "params.yaml", "--variant", "ours", "--set", "evaluate.backend=faster_coco_eval"]
    assert cli_main(args) == 0
    gt_boxes = json.loads((bb_dir / "ours" / "metrics.json").read_text())
    assert gt_boxes["num_instances"] == 2 * len(results)  # GT-box runs: no NMS
    assert cli_main(args + ["--set", "prepare.boxes=detections", "--set", "prepare.detections=d.json"]) == 0
    m = json.loads((bb_dir / "ours" / "metrics.json").read_text())
    assert m["num_instances"] == len(results) and m["AP"] == pytest.approx(1.0)
