"""The GPU check (benchmarks/gpu_check.sh) on the CPU path it reaches here: every section runs and its
figures land in the JSON. A device is lent for minutes at a time, so the one command must not have
rotted between GPU sessions; this is where a changed stage CLI or cache key would break it first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import MIRROR, REPO, require


def test_gpu_check_runs_every_section_at_cpu_sizes(tmp_path):
    require(MIRROR / "coco_sample")
    out = tmp_path / "out"
    env = os.environ | {"PYTHON": sys.executable, "OUT": str(out), "SGPOSE_MIRROR": str(MIRROR)}
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--small", "--work", str(tmp_path / "work")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    report = json.loads((out / "gpu_check.json").read_text())
    sections = {k: v for k, v in report.items() if isinstance(v, dict)}
    parts = {f"{k}.{p}": v for k, section in sections.items() for p, v in section.items() if isinstance(v, dict)}
    failed = {k: v["error"] for k, v in (sections | parts).items() if "error" in v}  # a section or a part of one
    assert done.returncode == 0 and not failed, (failed, done.stdout[-3000:], done.stderr[-3000:])
    assert report["env"]["sizes"] == "cpu" and not report["env"]["cuda"]
    assert set(report) >= {"cuda_tests", "backbones", "refiner_cost", "sample", "train", "ddp", "cache_stage",
                           "refiner_levers", "table"}
    assert report["cuda_tests"]["skipped"] >= 1 and report["cuda_tests"].get("failed", 0) == 0
    # the sample on this device and again on the CPU: one device here, so the same APs exactly
    assert report["sample"]["ap_difference"] == 0.0
    assert report["ddp"]["backend"] == "gloo" and report["ddp"]["ok"]
    for store in ("trunk", "head"):  # cache.store: the GPU profiles' and the sample's
        train = report["train"][store]
        assert len(train["epoch_seconds"]) == 2 and train["samples_per_s"] > 0, store
        assert all(train[k] > 0 for k in ("reader_samples_per_s", "reader_first_epoch_samples_per_s",
                                          "reader_threads_samples_per_s", "step_samples_per_s")), store
        assert report["cache_stage"][store]["stage_samples_per_s"] > 0, store
    # the trunk store keeps the backbone's last stage, not the head's 256-channel maps: fewer bytes per sample
    assert report["train"]["trunk"]["stored_mb_per_sample"] < report["train"]["head"]["stored_mb_per_sample"]
    cache = report["cache_stage"]
    assert cache["writer_hdf5_filters_samples_per_s"] > 0 and cache["writer_encoders_samples_per_s"] > 0
    levers = report["refiner_levers"]
    assert levers["autocast"]["ratio"] > 0 and levers["native"]["ratio"] > 0 and levers["native_nchw"]["ratio"] > 0
    native = levers["native_nchw"]  # the same function in another memory format, on a UNet not all zeros
    assert native["native_abs_max"] > 0 and native["max_abs_difference_to_native"] <= 1e-5 * native["native_abs_max"]
    assert all("skipped" in levers[k] for k in ("graph", "graph_nchw", "compile", "compile_graph"))  # CUDA only
    profile = levers["profile"]["native"]
    assert profile["ops"] and profile["self_cpu_time_total_us_per_reading"] > 0 and profile["kernels_per_reading"] > 0
    now = {row[0]: row[2] for row in report["table"]}  # what, before (the H200 run), now, target, verdict
    assert not [what for what, measured in now.items() if str(measured).startswith("FAILED")]
    assert "GPU check on no CUDA" in done.stdout
