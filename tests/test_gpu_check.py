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
    failed = {k: v["error"] for k, v in report.items() if isinstance(v, dict) and "error" in v}
    assert done.returncode == 0 and not failed, (failed, done.stdout[-3000:], done.stderr[-3000:])
    assert report["env"]["sizes"] == "cpu" and not report["env"]["cuda"]
    assert set(report) >= {"cuda_tests", "backbones", "refiner_cost", "sample", "train", "ddp", "cache_stage",
                           "refiner_levers", "table"}
    assert report["cuda_tests"]["skipped"] >= 1 and report["cuda_tests"].get("failed", 0) == 0
    # the sample on this device and again on the CPU: one device here, so the same APs exactly
    assert report["sample"]["ap_difference"] == 0.0
    assert report["ddp"]["backend"] == "gloo" and report["ddp"]["ok"]
    train = report["train"]
    assert len(train["epoch_seconds"]) == 2 and train["samples_per_s"] > 0 and train["stored_mb_per_sample"] > 2
    assert all(train[k] > 0 for k in ("reader_samples_per_s", "reader_first_epoch_samples_per_s",
                                      "reader_in_process_samples_per_s", "step_samples_per_s"))
    cache = report["cache_stage"]
    assert cache["writer_hdf5_filters_samples_per_s"] > 0 and cache["writer_encoders_samples_per_s"] > 0
    levers = report["refiner_levers"]
    assert levers["eager"]["ratio"] > 0 and levers["nchw"]["ratio"] > 0 and levers["pad8"]["ratio"] > 0
    pad8 = levers["pad8"]  # the same function, on a UNet whose output is not all zeros
    assert pad8["eager_abs_max"] > 0 and pad8["max_abs_difference_to_eager"] <= 1e-5 * pad8["eager_abs_max"]
    assert all("skipped" in levers[k] for k in ("heuristic", "graph", "compile"))  # CUDA only
    assert levers["profile"]["ops"] and levers["profile"]["self_cpu_time_total_us_per_reading"] > 0
    rows = {what: measured for what, measured, _ in report["table"]}
    assert not any(m.startswith("FAILED") for m in rows.values())
    assert "GPU check on no CUDA" in done.stdout
