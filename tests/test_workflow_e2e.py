"""The whole DAG, end to end, through both engines (DVC and Snakemake) on a tiny real config: the
four COCO val2017 images of the mirror's fixtures (ground-truth and detection boxes) and the two
CrowdPose fixture images, one backbone each, the ablation with one paper variant and one sweep, a
sharded training split; one epoch everywhere, CPU."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml
from workflow_helpers import EVALUATIONS, REFINER_AND_AFTER, make_repo, metrics_of, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("dvc"))
    run(["dvc", "repro"], repo)
    return repo


def test_dvc_repro_runs_the_whole_dag(dvc_repo):
    metrics = metrics_of(dvc_repo)
    assert set(metrics) == EVALUATIONS
    for (ds, bb, variant), m in metrics.items():
        # baseline and ours on the backbone's evals, the ablation's variants on val (Params.evals_of)
        assert set(m) == ({"val", "val_det"} if bb == "r18" and variant in ("baseline", "ours") else {"val"}), \
            (bb, variant)
        for split in m.values():
            assert 0.0 <= split["AP"] <= 1.0 and split["num_instances"] > 0
    assert "AP_hard" in metrics[("tiny_crowd", "cp", "ours")]["val"]  # CrowdPose metrics
    assert len(list((dvc_repo / "results/tiny/r18/cache/train.shards").iterdir())) == 2
    report = dvc_repo / "results" / "report"
    tables = {n: pd.read_csv(report / f"{n}.csv") for n in ("table1", "table2", "table3", "table4")}
    assert tables["table1"].variant.tolist() == ["baseline", "A1", "A2", "A3", "A4", "ours"]
    assert tables["table1"]["AP (this run)"].notna().tolist() == [True, True, False, False, False, True]
    assert tables["table2"].directory.tolist()[-1] == "tiny/r18"  # after the paper's five backbones
    this_run = {n: t[t.source.str.startswith("this run")].method.tolist() for n, t in tables.items() if "source" in t}
    assert this_run == {"table3": ["cp baseline", "cp ours"],
                        "table4": ["r18 baseline", "r18 ours"]}
    for png in ("fig2_guidance", "fig4_ablation", "fig5_steps", "fig6_schedule", "fig7_corrected", "fig8_recovered",
                "fig9_hardest", "training_curves"):
        img = mpimg.imread(report / f"{png}.png")
        assert img.shape[0] > 100 and img[..., :3].std() > 0.03, f"{png}.png is blank"
        assert (report / f"{png}.csv").is_file(), png
    assert (report / "index.html").stat().st_size > 0 and (report / "provenance.json").is_file()
    assert not list(dvc_repo.rglob("*.tmp-*")), "a temporary file was left behind"


def test_dvc_repro_again_changes_nothing_and_a_refiner_param_reruns_only_the_refiners(dvc_repo):
    again = run(["dvc", "repro"], dvc_repo)
    assert "Running stage" not in again
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    params["train_refiner"]["epochs"] = 2
    (dvc_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = set(re.findall(r"Running stage '([^']+)'", run(["dvc", "repro"], dvc_repo)))
    assert {"train_refiner@r18", "train_refiner@cp", "train_ablation@A1", "train_ablation@ours_S2"} <= ran
    upstream = {s for s in ran if not REFINER_AND_AFTER.match(s) or "baseline" in s}
    assert not upstream, f"stages upstream of the refiners re-ran: {upstream}"


def test_snakemake_runs_the_same_dag(dvc_repo, tmp_path):
    repo = make_repo(tmp_path)
    run(["snakemake", "--profile", "workflow/profiles/local"], repo)
    snake, dvc = metrics_of(repo), metrics_of(dvc_repo)
    assert set(snake) == set(dvc) == EVALUATIONS
    for key in snake:
        assert set(snake[key]) == set(dvc[key]) and all(set(snake[key][s]) == set(dvc[key][s]) for s in snake[key])
    assert (repo / "results" / "report" / "index.html").is_file()
    assert len(list((repo / "results/tiny/r18/cache/train.shards").iterdir())) == 2  # scattered, gathered
    assert "Nothing to be done" in run(["snakemake", "--profile", "workflow/profiles/local", "-n"], repo)
