"""`sgpose report` through the CLI on a fake results/ tree: metrics.json of several variants,
backbones, sweeps, CrowdPose and detection-box runs, a small val cache written by sgpose.cache, a
tiny refiner checkpoint and training logs; then the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import FIXTURE_COCO, fixture_instances
from sgpose.cache.writer import write_cache
from sgpose.cli import main as cli_main
from sgpose.config.selection import load_params
from sgpose.method.guidance import render_gaussians
from sgpose.method.refiner import build_unet
from sgpose.models.features import feature_info, to_json

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "results" / "test-artifacts"
KEYS = ["AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
FEATS = [8, 8, 8]
N, K = 6, 17
CORRECTED = (0, 9)  # (sample, joint) the refiner moves next to ground truth
RECOVERED = (1, 10)  # (sample, joint) the backbone misses and the refiner finds


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp dir with the repo's params.yaml (tiny refiner); returns (root, params dict of the primary
    backbone with its dataset, backbone dir)."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    tree["refiner"] |= {"base_channels": 8, "time_dim": 16}
    ds, bb = tree["ablation"]["dataset"], tree["ablation"]["backbone"]
    tree["ablation"]["backbones"] = None  # the paper's setting: the primary backbone runs the ablation
    tree["datasets"][ds]["data"]["images_dir"] = str(FIXTURE_COCO)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tree))
    monkeypatch.chdir(tmp_path)
    params = {"guidance": tree["guidance"], "backbone": tree["backbones"][bb]}
    return tmp_path, params, tmp_path / "results" / ds / bb


def write_metrics(bb_dir: Path, variant: str, ap: float, split: str = "val", **extra) -> None:
    """results/metrics/<dataset>/<backbone>/<variant>.json with one split's metrics."""
    m = {k: ap for k in KEYS} | {"AP50": ap + 0.1, "num_images": 4, "num_instances": 9} | extra
    path = bb_dir.parents[1] / "metrics" / bb_dir.parent.name / bb_dir.name / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({split: m}))


def write_val_cache(bb_dir: Path, params: dict) -> None:
    """N samples on real fixture persons (crops drawable); synthetic joints and Y0 such that
    CORRECTED is found off target by the backbone and RECOVERED is missed (all-zero map)."""
    h, w = params["backbone"]["heatmap_size"]
    rows = fixture_instances(tuple(params["backbone"]["input_size"])).iloc[:N]
    rng = np.random.default_rng(0)
    gt = rng.uniform([6, 8], [w - 2, h - 2], size=(N, K, 2)).astype(np.float32)
    gt[CORRECTED] = gt[RECOVERED] = (1.0, 1.0)  # next to (0, 0), where the tiny refiner puts everything
    base = gt + 1.0
    base[CORRECTED] = (12.0, 14.0)
    y0 = 0.9 * render_gaussians(torch.from_numpy(base), (h, w), 1.0).numpy()
    y0[RECOVERED] = 0.0
    arrays = {"heatmaps": y0, "target": y0, "target_weight": np.ones((N, K), np.float32),
              "joints": np.concatenate([gt, np.ones((N, K, 1), np.float32)], -1),
              **{f"feat/{i}": rng.normal(size=(N, c, h >> i, w >> i)).astype(np.float32) for i, c in enumerate(FEATS)},
              "meta/center": rows[["center_x", "center_y"]].to_numpy(), "meta/scale": rows[["scale_w", "scale_h"]].to_numpy(),
              "meta/bbox": rows[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(),
              "meta/image_id": rows["image_id"].to_numpy(), "meta/ann_id": rows["ann_id"].to_numpy(),
              "meta/score": np.ones(N, np.float32)}
    attrs = {"layout": "coco", "heatmap_size": [h, w], "input_size": params["backbone"]["input_size"],
             "backbone": params["backbone"], "checkpoint_sha256": "ab" * 32}
    write_cache(bb_dir / "cache" / "val.h5", arrays, attrs)
    (bb_dir.parent / "prepared").mkdir(parents=True, exist_ok=True)
    rows.to_parquet(bb_dir.parent / "prepared" / "instances_val.parquet")


def write_refiner(bb_dir: Path) -> None:
    """A real `ours` UNet whose output is a constant 0.5: every joint decodes to (0, 0), found."""
    unet = build_unet(load_params("params.yaml").refiner, 17, feature_info(FEATS), "ours")
    head = unet.head[-1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, 0.5)
    (bb_dir / "ours").mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": unet.state_dict(), "features": to_json(unet.features), "variant": "ours"},
               bb_dir / "ours" / "refiner.pt")


def fake_tree(root: Path, params: dict, bb_dir: Path) -> None:
    for variant, ap in [("baseline", 0.5), ("A1", 0.51), ("ours", 0.55), ("ours_S5", 0.54), ("ours_S8", 0.53),
                        ("ours_linear", 0.52)]:
        write_metrics(bb_dir, variant, ap)
    (bb_dir / "A3").mkdir(parents=True)  # a variant without metrics yet: '-' row
    hr = bb_dir.parent / "hrnet_w32"
    write_metrics(hr, "baseline", 0.6)
    write_metrics(hr, "ours", 0.62)
    crowd = {"AP_easy": 0.7, "AP_medium": 0.6, "AP_hard": 0.5}
    write_metrics(root / "results" / "crowdpose" / "sb_r152", "ours", 0.45, **crowd)
    write_metrics(root / "results" / "coco" / "hrnet_w48", "ours", 0.4, split="val_det")
    write_val_cache(bb_dir, params)
    write_refiner(bb_dir)
    pd.DataFrame({"epoch": [1, 2, 3], "loss": [1e-3, 8e-4, 7e-4]}).to_csv(bb_dir / "train_log.csv", index=False)
    pd.DataFrame({"epoch": [1, 2], "loss": [1e-2, 4e-3]}).to_csv(bb_dir / "ours" / "train_log.csv", index=False)


def not_blank(path: Path) -> np.ndarray:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, path
    assert img[..., :3].std() > 0.03, f"{path} looks blank"
    return img


@pytest.fixture
def report(workdir):
    root, params, bb_dir = workdir
    fake_tree(root, params, bb_dir)
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    return root / "results" / "report", params


def test_tables(report):
    out, _ = report
    t1 = pd.read_csv(out / "table1.csv")
    assert list(t1["variant"]) == ["baseline", "A1", "A2", "A3", "A4", "ours"]
    assert t1["AP (this run)"].tolist()[:2] == pytest.approx([50.0, 51.0])
    assert t1["AP (this run)"].isna().tolist() == [False, False, True, True, True, False]
    assert t1["paper AP (quoted)"].tolist() == [72.3, 72.8, 73.0, 73.2, 73.3, 73.7]
    assert "| A3 | + interpolated heatmap sequence (no graduated fusion) | - |" in (out / "table1.md").read_text()
    t2 = pd.read_csv(out / "table2.csv").set_index("backbone")
    assert t2.loc["HRNet-W32", "ours AP (this run)"] == pytest.approx(62.0)
    assert t2.loc["HRNet-W32", "gain (this run)"] == pytest.approx(2.0)
    assert t2.loc["HRNet-W32", "ours AP (paper, quoted)"] == 76.3
    assert np.isnan(t2.loc["HRNet-W48", "ours AP (this run)"])  # no such directory: '-'
    assert t2.loc["SimpleBaseline-R18", "input"] == "128x96"  # from the cache attributes
    t3 = pd.read_csv(out / "table3.csv")
    quoted = t3[t3["source"] == "paper (quoted)"].set_index("method")["AP"]
    assert quoted["DEKR"] == 68.0 and quoted["ours (HRNet-W48)"] == 77.6
    ours = t3[t3["source"] == "this run (crowdpose)"]
    assert ours[["AP", "AP(E)", "AP(M)", "AP(H)"]].values.tolist() == [[45.0, 70.0, 60.0, 50.0]]
    t4 = pd.read_csv(out / "table4.csv")
    assert t4[t4["source"] == "this run (coco)"]["AP"].tolist() == [40.0]
    assert t4.set_index("method").loc["ViTPose-B", "AP"] == 75.8


def test_charts(report):
    out, params = report
    for name in ["fig2_guidance", "fig4_ablation", "fig5_steps", "fig6_schedule", "training_curves"]:
        not_blank(out / f"{name}.png")
    fig5 = pd.read_csv(out / "fig5_steps.csv").set_index("S")
    assert fig5["AP (this run)"].to_dict() == pytest.approx({3: 55.0, 5: 54.0, 8: 53.0})
    assert fig5.loc[8, "paper AP (quoted)"] == 73.3
    fig6 = pd.read_csv(out / "fig6_schedule.csv").set_index("schedule")
    assert fig6["AP (this run)"].to_dict() == pytest.approx({"cosine": 55.0, "linear": 52.0})
    curves = pd.read_csv(out / "training_curves.csv")
    assert sorted(curves["curve"].unique()) == ["backbone", "ours"] and len(curves) == 5


def test_figs_4_to_6_follow_the_ablation_when_the_primary_is_left_out(workdir):
    """The sample's setting: ablation.backbones names another backbone; Table 1 stays the primary's (its
    ablation rows '-', the caption says where they ran), Figs. 4-6 draw the backbone that ran them."""
    root, params, bb_dir = workdir
    tree = yaml.safe_load((root / "params.yaml").read_text())
    other = next(b for b, bp in tree["backbones"].items() if bp["dataset"] == tree["ablation"]["dataset"]
                 and b != tree["ablation"]["backbone"])
    tree["ablation"]["backbones"] = [other]
    (root / "params.yaml").write_text(yaml.safe_dump(tree))
    fake_tree(root, params, bb_dir)
    for variant, ap in [("baseline", 0.6), ("A1", 0.61), ("ours", 0.7), ("ours_S5", 0.69), ("ours_linear", 0.68)]:
        write_metrics(bb_dir.parent / other, variant, ap)
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    out = root / "results" / "report"
    assert f"The ablation's variants run on {other} (ablation.backbones)" in (out / "table1.md").read_text()
    assert pd.read_csv(out / "table1.csv").set_index("variant").loc["ours", "AP (this run)"] == pytest.approx(55.0)
    fig4 = pd.read_csv(out / "fig4_ablation.csv").set_index("variant")["AP (this run)"]
    assert fig4[["baseline", "A1", "ours"]].tolist() == pytest.approx([60.0, 61.0, 70.0])
    fig5 = pd.read_csv(out / "fig5_steps.csv").set_index("S")["AP (this run)"].dropna()
    assert fig5.to_dict() == pytest.approx({3: 70.0, 5: 69.0})
    fig6 = pd.read_csv(out / "fig6_schedule.csv").set_index("schedule")["AP (this run)"]
    assert fig6.to_dict() == pytest.approx({"cosine": 70.0, "linear": 68.0})


def _corrects_nothing(bb_dir: Path) -> None:
    """The backbone's val Y0 all zero: it finds no joint, so its refiner corrects none (it may recover some)."""
    with h5py.File(bb_dir / "cache" / "val.h5", "r+") as h5:
        h5["heatmaps"][...] = 0


def test_figs_7_to_9_follow_the_ablation_when_the_primary_corrects_nothing(workdir):
    """Issue 37: the sample's primary backbone scores AP ~0; Figs. 7-9 are then drawn for the backbone that ran
    the ablation (labelled controlled), and the page says why."""
    root, params, bb_dir = workdir
    tree = yaml.safe_load((root / "params.yaml").read_text())
    other = "sb_r18_evidence"
    tree["ablation"]["backbones"] = [other]
    (root / "params.yaml").write_text(yaml.safe_dump(tree))
    fake_tree(root, params, bb_dir)
    _corrects_nothing(bb_dir)
    write_metrics(bb_dir, "ours", 0.003)
    write_val_cache(bb_dir.parent / other, params)
    write_refiner(bb_dir.parent / other)
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    out = root / "results" / "report"
    page = (out / "index.html").read_text()
    why = (f"Drawn for sample/{other} (controlled-error benchmark): the primary backbone {bb_dir.name} corrects no "
           "joint (its ours AP is 0.3 on val at this budget).")
    assert page.count(why) == 3 and "no runs yet" not in page.split('id="fig7_corrected"')[1]
    fig7 = pd.read_csv(out / "fig7_corrected.csv")
    assert (fig7["sample"] == CORRECTED[0]).all() and (fig7["joint"] == "left_wrist").all()
    assert len(pd.read_csv(out / "fig9_hardest.csv")) == N


def test_a_primary_that_corrects_nothing_says_so_in_true_words(workdir):
    """The paper's setting (the primary runs the ablation): nothing to follow; the placeholder says what happened,
    never "no runs yet" for a run that ran, and its text stays inside the frame."""
    root, params, bb_dir = workdir
    fake_tree(root, params, bb_dir)
    _corrects_nothing(bb_dir)
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    out = root / "results" / "report"
    fig7 = (out / "index.html").read_text().split('id="fig7_corrected"')[1].split("<h2")[0]
    assert f"no joint was corrected on sample/{bb_dir.name}&#x27;s val split (its ours AP is 55.0 on val at this budget)" in fig7
    assert "no runs yet" not in fig7
    not_blank(out / "fig7_corrected.png")


def test_the_page_opens_with_a_summary_linking_down_to_the_tables(report):
    out, _ = report
    page = (out / "index.html").read_text()
    assert page.index('id="summary"') < page.index('id="table1"')
    summary = pd.read_csv(out / "summary.csv")
    primary = summary.set_index("backbone").loc[f"sample/{summary.backbone.iloc[0].split('/')[1]}"]
    assert primary["kind"] == "primary, the paper's setting" and primary["ours"] == pytest.approx(55.0)
    assert primary["baseline"] == pytest.approx(50.0) and primary["ours - baseline"] == pytest.approx(5.0)
    assert '<a href="#table1">table1</a>' in page


def test_seeds_give_each_variant_a_mean_a_spread_and_the_claims_a_verdict(workdir):
    """Issue 38: `<variant>_seed<k>` metrics fold into their variant: Table 1 and Fig. 4 show the mean over the
    seeds with its spread (max - min) and n, equal to a direct computation; the claims ledger applies its rule."""
    root, params, bb_dir = workdir
    fake_tree(root, params, bb_dir)  # ours 0.55, A1 0.51, baseline 0.5 (seed 0)
    write_metrics(bb_dir, "ours_seed1", 0.59)
    write_metrics(bb_dir, "ours_seed2", 0.57)
    write_metrics(bb_dir, "A1_seed1", 0.50)
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    out = root / "results" / "report"
    t1 = pd.read_csv(out / "table1.csv").set_index("variant")
    ours, a1 = [0.55, 0.59, 0.57], [0.51, 0.50]
    assert t1.loc["ours", "AP (this run)"] == pytest.approx(100 * np.mean(ours))
    assert t1.loc["ours", "AP spread"] == pytest.approx(100 * (max(ours) - min(ours))) and t1.loc["ours", "seeds"] == 3
    assert t1.loc["A1", "AP (this run)"] == pytest.approx(100 * np.mean(a1)) and t1.loc["A1", "seeds"] == 2
    assert np.isnan(t1.loc["baseline", "AP spread"]) and "ours_seed1" not in t1.index
    fig4 = pd.read_csv(out / "fig4_ablation.csv").set_index("variant")
    assert fig4.loc["ours", "AP spread"] == pytest.approx(4.0)
    ledger = pd.read_csv(out / "claims.csv")
    row = ledger[ledger.claim.str.startswith("Graduated guidance beats no guidance")].iloc[0]
    d, s = 100 * (np.mean(ours) - np.mean(a1)), 100 * ((max(ours) - min(ours)) + (max(a1) - min(a1)))
    assert row["difference"] == pytest.approx(round(d, 2)) and row["combined spread"] == pytest.approx(round(s, 2))
    assert row["verdict"] == ("supported" if d > s else "not resolved at 2 seeds")
    gain = ledger[ledger.claim.str.startswith("The structure-guided refiner gains")].iloc[0]
    assert gain["verdict"] == "supported"  # 7.0 over the baseline, beyond ours' spread of 4.0
    page = (out / "index.html").read_text()
    assert page.index('id="summary"') < page.index('id="claims"') < page.index('id="table1"')


def test_evolution_and_hardest(report):
    out, params = report
    T = params["guidance"]["S"] + 2
    for name, (n, k) in (("fig7_corrected", CORRECTED), ("fig8_recovered", RECOVERED)):
        not_blank(out / f"{name}.png")
        csv = pd.read_csv(out / f"{name}.csv")
        assert len(csv) == T + 1 and csv["panel"].iloc[0] == "backbone Y0"
        assert (csv["sample"] == n).all() and (csv["joint"] == ["left_wrist", "right_wrist"][k - 9]).all()
        assert csv["refined_x"].iloc[0] == 0 and csv["peak_value"].iloc[1:].tolist() == pytest.approx([0.5] * T)
    assert pd.read_csv(out / "fig8_recovered.csv")["peak_value"].iloc[0] == 0  # Y0 missed it
    hard = pd.read_csv(out / "fig9_hardest.csv")
    assert len(hard) == N and hard["oks_backbone"].is_monotonic_increasing
    not_blank(out / "fig9_hardest.png")


def test_index_page(report):
    out, _ = report
    page = (out / "index.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 9 and all((out / s).is_file() for s in srcs)
    assert not re.search(r'(src|href)="(/|https?:)', page) and "<script" not in page
    links = re.findall(r'<a href="([^"#]+)"', page)
    assert links and all((out / x).is_file() for x in links)
    assert "ab" * 32 in page and "params sha256" in page and "torch" in page
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["params_sha256"]) == len(prov["code_sha256"]) == 64
    assert {c["what"] for c in prov["checkpoints"]} >= {"refiner ours"}
    assert not list(out.glob("*.tmp-*"))


def test_report_without_runs(workdir):
    root, params, _ = workdir
    assert cli_main(["report", "--params", "params.yaml"]) == 0
    out = root / "results" / "report"
    t1 = pd.read_csv(out / "table1.csv")
    assert len(t1) == 6 and t1["AP (this run)"].isna().all()
    assert "No runs yet" in (out / "table3.md").read_text()
    for name in ["fig4_ablation", "fig7_corrected", "fig9_hardest", "training_curves"]:
        not_blank(out / f"{name}.png")
    assert "no runs yet" in (out / "index.html").read_text()
    assert "shifted" in (out / "index.html").read_text()  # Fig. 2 without a val cache


def test_report_unknown_joint(workdir, capsys):
    assert cli_main(["report", "--params", "params.yaml", "--set", "report.fig2_joint=tail"]) == 1
    assert "tail" in capsys.readouterr().err


def chromium() -> str:
    """The chromium binary; skipped when absent outside CI, a failure in CI."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "chromium not installed (scripts/setup.sh installs it with apt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def headless(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--allow-file-access-from-files"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120)


def test_page_in_headless_chromium(report, tmp_path):
    exe = chromium()
    out, _ = report
    url = (out / "index.html").as_uri()
    # the page itself: loads, renders every section, logs nothing to the console
    dom = headless(exe, tmp_path / "p1", "--virtual-time-budget=5000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Fig. 7: heatmap evolution" in dom.stdout and dom.stdout.count("<img") == 9
    # the summary opens the page, its table rendered, its links pointing down to the tables
    assert re.search(r'<h1>[^<]*</h1>\s*<p class="note">[^<]*</p>\s*<nav>.*?</nav>\s*<h2 id="summary">Summary</h2>',
                     dom.stdout, re.S) and '<a href="#table1">table1</a>' in dom.stdout
    assert "primary, the paper's setting" in dom.stdout.split('id="table1"')[0]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Failed to load resource" in line]
    assert not console, console
    # every <img> of the page decodes in Chromium: a probe page loads each (page-relative) source
    srcs = re.findall(r'<img src="([^"]+)"', (out / "index.html").read_text())
    probe = tmp_path / "probe.html"
    probe.write_text("<!DOCTYPE html><html><body>" + "".join(
        f'<img src="{(out / s).as_uri()}" onload="this.dataset.ok = this.naturalWidth > 0 ? \'yes\' : \'no\'" '
        'onerror="this.dataset.ok = \'no\'">' for s in srcs) + "</body></html>")
    res = headless(exe, tmp_path / "p3", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert res.stdout.count('data-ok="yes"') == len(srcs) == 9, res.stdout[:2000]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report_index.png"
    shot.unlink(missing_ok=True)
    res = headless(exe, tmp_path / "p2", "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,2400",
                   "--virtual-time-budget=5000", url)
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    img = not_blank(shot)
    assert img.shape[:2] == (2400, 1280)
    # the images rendered: the first figure (Fig. 4 region under the tables) is not page background only
    assert (img[..., :3] < 0.9).mean() > 0.02
