"""The GPU check (issue 15): the pipeline's GPU path exercised and measured in one command.

    benchmarks/gpu_check.sh                   # on a GPU machine (< 8 min on one H100); sets up the bundle
    benchmarks/gpu_check.sh --small           # CPU sizes (the default without CUDA): a few minutes on 2 cores

Sections, in the order they run (each one's figures, or its error, go to one JSON, written after every
section: a call cut short keeps what finished; a failing section never stops the others):
  cuda_tests      the tests marked `cuda` (bf16 / channels_last / pinned memory / AMP against the CPU)
  backbones       images/s of SimpleBaseline-R50 and HRNet-W32 at 256x192, as the stages run them (bf16,
                  channels_last on CUDA)
  refiner_cost    the refiner's readings against the R50 forward (benchmarks/refiner_cost.py)
  sample          the sample end to end on this device (backbone, cache, ours, infer cached and online,
                  evaluate), then its inference again on the CPU: the APs agree within noise
  train           `sgpose train_refiner` (the paper's refiner, batch 48, AMP) from a sample cache of R50
                  features at 256x192 streamed from disk: samples/s, and what it means for full COCO; the
                  cache reader alone (first epoch, later epochs, one process) and the training step alone
  ddp             the same training under torchrun, one process (NCCL on a GPU, gloo on the CPU): the
                  single process's weights
  cache_stage     the cache stage against the pure backbone forward (benchmarks/cache_throughput.py)
  refiner_levers  the static reading's profile and its levers: cuDNN's heuristic against its autotuner,
                  NCHW, channels padded to 8, CUDA graphs, torch.compile (benchmarks/refiner_levers.py)
Prints one table of the measured figures against the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
from backbone_throughput import make
from cache_throughput import CACHE_STAGE, FORWARD, cache_rates, sample_crops, writer_rates
from refiner_cost import BACKBONE_ROW, STATIC_ROW, measure
from refiner_levers import levers
from sample_project import REPO, Project, mirror, sample_tree  # noqa: F401
from sgpose.cache.reader import features, shuffled_batches
from sgpose.config.schema import ComputeParams
from sgpose.config.selection import load_params
from sgpose.method.refine import draw_steps, guidance_spec, training_loss
from sgpose.method.refiner import build_unet
from sgpose.runtime import compute, threads
from sgpose.stages.train_refiner import training_source
from timing import timed

COCO_TRAIN = 149_813  # full COCO train2017 person instances (docs/method.md §4: 130 epochs)
PAPER_EPOCHS = 130
TARGETS = {"static_ratio": 0.25, "train_samples_per_s": 230.0, "cache_over_forward": 0.90, "ap_difference": 0.01}
SIZES = {  # per machine: GPU sizes fit the 8 minutes on one H100, CPU sizes a few minutes on 2 cores
    "gpu": dict(batch=64, big_batch=256, iters=10, crops=256, workers=8, train_samples=1536, train_epochs=3,
                backbone_epochs=20, refiner_epochs=10, keep=None),
    "cpu": dict(batch=4, big_batch=8, iters=1, crops=8, workers=0, train_samples=48, train_epochs=2, backbone_epochs=1,
                refiner_epochs=1, keep={"train": 48, "val": 16, "val_det": 16}),
}
PAPER_REFINER = {"base_channels": 32, "channel_mults": [1, 2, 4, 8], "time_dim": 64}  # profiles/paper.yaml
R50 = {"depth": 50, "deconv_channels": 256, "input_size": [256, 192], "heatmap_size": [64, 48]}


# ----------------------------------------------------------------------------------------- sections
def cuda_tests(size: dict, work: Path) -> dict:
    """pytest -m cuda over the test files holding such tests (collecting only those: the machine lacks DVC)."""
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                   if "pytest.mark.cuda" in p.read_text())
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files],
                          cwd=REPO, capture_output=True, text=True)
    (work / "cuda_tests.log").write_text(done.stdout + done.stderr)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    counts = {k: int(n) for n, k in (w.split() for w in summary.split(" in ")[0].split(", ") if len(w.split()) == 2)
              if n.isdigit()}
    return {"files": files, "summary": summary, "exit": done.returncode, **counts,
            **({"output_tail": done.stdout[-4000:]} if done.returncode else {})}


def backbones(size: dict, work: Path) -> dict:
    cp = ComputeParams()
    dev = compute.device(cp)
    out = {}
    for name in ("r50", "hrnet_w32"):
        model = compute.prepare_model(make(name), cp, dev)
        x = compute.to_device(torch.randn(size["batch"], 3, 256, 192), cp, dev)
        with compute.inference(cp, dev):
            out[f"{name}_images_per_s"] = size["batch"] / timed(lambda: model(x), size["iters"])
    return out | {"batch": size["batch"], **compute.effective(cp, dev)}


def refiner_cost(size: dict, work: Path) -> dict:
    """At the stages' batch and at a larger one: on a GPU the small UNet's kernels are launch-bound at
    batch 64 (1.0x the R50 forward on an H200, 2026-11-28), so the ratio depends on the batch."""
    out = {}
    for batch in (size["batch"], size["big_batch"]):
        rows = measure(batch, size["iters"])
        params = rows.pop("unet_params_m")
        base = rows[BACKBONE_ROW]
        out[f"batch_{batch}"] = {"ms": {k: 1e3 * v for k, v in rows.items()}, "ratio": {k: v / base for k, v in rows.items()},
                                 "static_ratio": rows[STATIC_ROW] / base}
    return out | {"static_ratio": min(v["static_ratio"] for v in out.values()), "unet_params_m": params}


def refiner_levers(size: dict, work: Path) -> dict:
    """Where the static reading's time goes and what CUDA graphs, NCHW and torch.compile would save
    (benchmarks/refiner_levers.py): the figures the next change to the refiner's GPU path needs."""
    return levers(size["batch"], size["iters"])


def cache_stage(size: dict, work: Path) -> dict:
    """The stage against the pure forward, and its writer alone: HDF5's filters on one thread (what the
    H200 run of 2026-11-28 measured, ~115 MB/s) against sgpose's chunk encoders on every core."""
    rates = cache_rates(sample_crops(size["crops"]), size["batch"], size["workers"])
    cores = threads.pool_threads()
    writer = writer_rates(max(size["crops"] // 4, 4), size["batch"], [0, cores], iters=1)
    return {"samples_per_s": rates, "cache_over_forward": rates[CACHE_STAGE] / rates[FORWARD], "crops": size["crops"],
            "writer_hdf5_filters_samples_per_s": writer[0], "writer_encoders_samples_per_s": writer[cores],
            "encoder_threads": cores}


def _train_project(size: dict, work: Path) -> Project:
    """R50 (untrained: throughput needs no trained weights) at 256x192 over sample crops, its train cache
    of `train_samples` instances (the sample's train rows repeated), the paper's refiner."""
    tree = sample_tree(refiner=PAPER_REFINER, train_backbone__epochs=0, train_backbone__num_workers=size["workers"],
                       cache__batch_size=size["batch"], train_refiner={"batch_size": 48, "epochs": size["train_epochs"],
                       "preload_gb": 0.0, "num_workers": size["workers"], "lr": 1e-4, "seed": 0, "devices": 1})
    tree["backbones"][next(iter(tree["backbones"]))] |= R50
    project = Project(work / "train", tree)
    project.run("prepare", "--split", "train")
    rows = pd.read_parquet(project.paths.instances("train"))
    reps = -(-size["train_samples"] // len(rows))
    pd.concat([rows] * reps).iloc[:size["train_samples"]].to_parquet(project.paths.instances("train"), index=False)
    project.run("train_backbone")
    project.run("cache", "--split", "train")
    return project


def train(size: dict, work: Path) -> dict:
    project = _train_project(size, work)
    start = len((project.root / "stages.log").read_text())
    project.run("train_refiner")
    # train_log.csv holds no wall time (equal work, equal bytes): the stage logs each epoch's seconds
    logged = (project.root / "stages.log").read_text()[start:]
    seconds = [float(s) for s in re.findall(r"refiner ours epoch \d+: loss \S+ \(([\d.]+) s\)", logged)]
    if len(seconds) != size["train_epochs"]:
        raise RuntimeError(f"expected {size['train_epochs']} epoch times in the train_refiner log, found {seconds}")
    timed_epochs = seconds[1:] or seconds  # the first epoch pays the warm-up (cudnn autotuning, page cache)
    rate = size["train_samples"] / (sum(timed_epochs) / len(timed_epochs))
    return {"samples_per_s": rate, "epoch_seconds": seconds, "samples": size["train_samples"],
            "full_coco_epochs_per_hour": 3600 * rate / COCO_TRAIN,
            "hours_for_130_epochs": PAPER_EPOCHS * COCO_TRAIN / rate / 3600, **train_parts(project)}


def train_parts(project: Project, batches: int = 16) -> dict:
    """Where the training time goes: the cache reader alone (an epoch's batches, the stage's workers and
    pinning, no model) and the training step alone (forward, backward, Adam on one batch on the device)."""
    params = load_params(project.params)
    cp, dev, tp = params.compute, compute.device(params.compute), params.train_refiner
    source = training_source(params, project.paths, dev)
    order = shuffled_batches(source.num_instances, tp.batch_size, torch.Generator().manual_seed(0), source.views)
    order = order[:batches]

    def rate(batches) -> tuple[float, list[dict]]:
        """Samples/s of reading `batches` onto the device."""
        t0 = time.perf_counter()
        loaded = [{k: compute.to_device(v, cp, dev) for k, v in b.items()} for b in batches]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return sum(len(b["heatmaps"]) for b in loaded) / (time.perf_counter() - t0), loaded

    first, loaded = rate(source.batches(order, 0))  # the reader processes start (once per run: EpochLoader)
    reader, _ = rate(source.batches(order, 1))  # the same processes again: what every later epoch reads at
    in_process, _ = rate(source.data[b] for b in order[:4])  # one process: HDF5 read + lz4 + checksum alone
    sample_mb = sum(v[0].numel() * v.element_size() for v in source.data[order[0][:1]].values()) / 1e6
    torch.manual_seed(0)
    unet = compute.prepare_model(build_unet(params.refiner, 17, source.features, "ours"), cp, dev)
    spec, opt = guidance_spec(params, "ours", project.paths.start_pose), torch.optim.Adam(unet.parameters(), lr=tp.lr)
    b = loaded[0]

    def step():
        with compute.autocast(cp, dev):
            loss = training_loss(unet, spec, features(b), b["heatmaps"], b["target"], b["target_weight"],
                                 draw_steps(spec, len(b["heatmaps"])), joints=b["joints"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"reader_samples_per_s": reader, "reader_first_epoch_samples_per_s": first,
            "reader_in_process_samples_per_s": in_process, "stored_mb_per_sample": sample_mb,
            "step_samples_per_s": len(b["heatmaps"]) / timed(step, 5), "reader_workers": tp.num_workers}


def ddp(size: dict, work: Path) -> dict:
    """One epoch in one process, then the same under torchrun (the DDP wrapper, the process group):
    the weights agree to the rounding of Adam steps (every step moves a weight by at most ~lr)."""
    project = Project(work / "train")  # the train section's R50 cache
    one_epoch = ("--set", "train_refiner.epochs=1")
    project.run("train_refiner", *one_epoch)
    single = torch.load(project.paths.refiner("ours"), weights_only=False)["state_dict"]
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1")
    project.run("train_refiner", *one_epoch, launcher=launcher)
    ddp_weights = torch.load(project.paths.refiner("ours"), weights_only=False)["state_dict"]
    diff = max((single[k].float() - ddp_weights[k].float()).abs().max().item() for k in single)
    steps = -(-size["train_samples"] // 48)
    bound = 2 * steps * 1e-4
    backend = "nccl" if compute.device(ComputeParams()).type == "cuda" else "gloo"
    return {"backend": backend, "max_weight_difference": diff, "bound": bound, "ok": diff <= bound}


def sample(size: dict, work: Path) -> dict:
    """The sample end to end on this device, then its inference again on the CPU from the same weights."""
    tree = sample_tree(train_backbone__epochs=size["backbone_epochs"], train_backbone__num_workers=size["workers"],
                       train_backbone__lr_steps=[], train_refiner__epochs=size["refiner_epochs"],
                       train_refiner__num_workers=size["workers"])
    here = Project(work / "sample_device", tree)
    here.run("prepare")
    here.keep(size["keep"])
    t0 = time.perf_counter()
    for stage in (("train_backbone",), ("cache",), ("train_refiner",)):
        here.run(*stage)
    trained = time.perf_counter() - t0
    cpu = Project(work / "sample_cpu", tree)
    shutil.copytree(here.paths.prepared, cpu.paths.prepared)
    for f in (here.paths.backbone, here.paths.refiner("ours")):
        (cpu.root / f.relative_to(here.root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, cpu.root / f.relative_to(here.root))
    t0 = time.perf_counter()
    _score(here)
    scored = time.perf_counter() - t0
    _score(cpu, "--set", "compute.device=cpu", cache=True)
    ap = {"device": {v: here.ap(v) for v in ("baseline", "ours")}, "cpu": {v: cpu.ap(v) for v in ("baseline", "ours")}}
    diff = max(abs(ap["device"][v][s] - ap["cpu"][v][s]) for v in ap["cpu"] for s in ap["cpu"][v])
    # an untrained backbone scores AP 0 on both: the comparison then proves the plumbing, not the numbers
    informative = any(a > 0 for v in ap["cpu"].values() for a in v.values())
    return {"ap": ap, "ap_difference": diff, "informative": informative, "train_seconds": trained, "infer_seconds": scored,
            "instances": {s: len(pd.read_parquet(here.paths.instances(s))) for s in ("train", "val", "val_det")}}


def _score(project: Project, *sets: str, cache: bool = False) -> None:
    """val from its cache (made here when `cache`), val_det online, both variants evaluated."""
    if cache:
        project.run("cache", "--split", "val", *sets)
    for variant in ("baseline", "ours"):
        project.run("infer", "--variant", variant, *sets)
    project.run("infer_online", *sets)
    for variant in ("baseline", "ours"):
        project.run("evaluate", "--variant", variant)


# in the order they run: what the issue must show first (a device call cut short keeps the finished
# sections), the exploratory levers last
SECTIONS = {"cuda_tests": cuda_tests, "backbones": backbones, "refiner_cost": refiner_cost, "sample": sample,
            "train": train, "ddp": ddp, "cache_stage": cache_stage, "refiner_levers": refiner_levers}


# --------------------------------------------------------------------------------------- the report
def table(report: dict) -> list[tuple[str, str, str]]:
    """(what, measured, target) rows of the printed table."""
    def get(section: str, *keys, fmt: str = "{:.3g}") -> str:
        node = report.get(section, {})
        if "error" in node:
            return f"FAILED ({node['error'].splitlines()[0][:60]})"
        for k in keys:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        return fmt.format(node) if isinstance(node, (int, float)) else str(node or "-")

    t = TARGETS
    return [
        ("CUDA tests (pytest -m cuda)", get("cuda_tests", "summary", fmt="{}"), "all pass"),
        ("R50 forward, images/s", get("backbones", "r50_images_per_s", fmt="{:.1f}"), "-"),
        ("HRNet-W32 forward, images/s", get("backbones", "hrnet_w32_images_per_s", fmt="{:.1f}"), "-"),
        *((f"refiner static reading / R50 forward, {k.replace('_', ' ')}", get("refiner_cost", k, "static_ratio"),
           f"<= {t['static_ratio']}") for k in report.get("refiner_cost", {}) if k.startswith("batch_")),
        ("cache stage / pure forward", get("cache_stage", "cache_over_forward"), f">= {t['cache_over_forward']}"),
        ("  cache writer alone, HDF5's filters, samples/s", get("cache_stage", "writer_hdf5_filters_samples_per_s",
                                                               fmt="{:.1f}"), "-"),
        (f"  the same, {report.get('cache_stage', {}).get('encoder_threads', '-')} encoder threads, samples/s",
         get("cache_stage", "writer_encoders_samples_per_s", fmt="{:.1f}"), "-"),
        ("refiner training, samples/s", get("train", "samples_per_s", fmt="{:.1f}"), f">= {t['train_samples_per_s']:g}"),
        ("  full COCO epochs per hour", get("train", "full_coco_epochs_per_hour", fmt="{:.2f}"), ">= 5.4"),
        ("  hours for 130 epochs", get("train", "hours_for_130_epochs", fmt="{:.1f}"), "< 24"),
        ("  cache reader alone (workers started), samples/s", get("train", "reader_samples_per_s", fmt="{:.1f}"), "-"),
        ("  the same, first epoch (workers starting)", get("train", "reader_first_epoch_samples_per_s", fmt="{:.1f}"),
         "-"),
        ("  the same, one process (HDF5 + lz4 alone)", get("train", "reader_in_process_samples_per_s", fmt="{:.1f}"),
         "-"),
        ("  training step alone (one batch on the device), samples/s", get("train", "step_samples_per_s", fmt="{:.1f}"),
         "-"),
        ("DDP via torchrun, 1 process: max |w - w_single|", get("ddp", "max_weight_difference", fmt="{:.2e}"),
         f"<= {report.get('ddp', {}).get('bound', '-')} ({report.get('ddp', {}).get('backend', '-')})"),
        *((f"lever {k}: static reading / R50 forward", get("refiner_levers", k, "ratio"), f"<= {t['static_ratio']}")
          for k in ("eager", "heuristic", "nchw", "pad8", "graph", "compile")),
        ("  kernels per static reading", get("refiner_levers", "profile", "kernels_per_reading", fmt="{:.0f}"), "-"),
        ("sample AP, device vs CPU: max |dAP|", get("sample", "ap_difference", fmt="{:.4f}"), f"<= {t['ap_difference']}"),
        ("  sample AP (device; ours val, val_det)", get("sample", "ap", "device", "ours", fmt="{}"),
         "> 0 for an informative comparison"),
    ]


def print_table(rows: list[tuple[str, str, str]], header: str) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{header}\n{'what':{width}s} | {'measured':>32s} | target")
    for what, measured, target in rows:
        print(f"{what:{width}s} | {measured:>32s} | {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "gpu_check", help="where the JSON goes")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "gpu_check" / "work",
                        help="where the sections make their projects (each replaces its own)")
    parser.add_argument("--small", action="store_true", help="CPU sizes (the default without CUDA)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()
    size = SIZES["cpu" if args.small or not on_gpu else "gpu"]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if on_gpu else f"no CUDA: CPU, {os.cpu_count()} cores"
    report: dict = {"env": {"torch": torch.__version__, "device": device, "cuda": on_gpu, "threads": torch.get_num_threads(),
                            "sizes": "cpu" if size is SIZES["cpu"] else "gpu", "mirror": str(mirror())}}
    print(f"# GPU check: torch {torch.__version__}, {device}, {report['env']['sizes']} sizes", flush=True)
    for name in args.sections:
        t0 = time.perf_counter()
        try:
            report[name] = SECTIONS[name](size, work)
        except Exception as err:  # noqa: BLE001 - a failed section is recorded, the others still run
            report[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        report[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {report[name]['seconds']} s{' FAILED: ' + report[name]['error'] if 'error' in report[name] else ''}",
              flush=True)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))  # a cut-off run keeps its sections
    report["targets"] = TARGETS
    report["table"] = table(report)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    print_table(report["table"], f"GPU check on {device} -> {args.out / 'gpu_check.json'}")
    sys.exit(1 if any("error" in v for v in report.values() if isinstance(v, dict)) else 0)


if __name__ == "__main__":
    main()
