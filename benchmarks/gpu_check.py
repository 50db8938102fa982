"""The GPU check (issues 15, 26): the pipeline's GPU path exercised and measured in one command.

    benchmarks/gpu_check.sh                   # on a GPU machine (< 7 min on one H200); sets up the bundle
    benchmarks/gpu_check.sh --small           # CPU sizes (the default without CUDA): a few minutes on 2 cores

Sections, in the order they run (each one's figures, or its error, go to one JSON, written after every
section: a call cut short keeps what finished; a failing section never stops the others; a section that
would start after --budget seconds is skipped, saying so):
  backbones       images/s of SimpleBaseline-R50 and HRNet-W32 at 256x192, as the stages run them
  refiner_cost    the static reading as infer runs it (sgpose.inference.reading) and as it ran before
                  (autocast, eager) against the R50 forward, at batch 64 and 256 (benchmarks/refiner_cost.py)
  refiner_levers  the levers side by side: autocast, native (compute dtype), NCHW, CUDA graphs, torch.compile,
                  and the profile of the static reading: kernels, copies and their share of the device time,
                  the device time of its parts (benchmarks/refiner_levers.py)
  train           `sgpose train_refiner` (the paper's refiner, batch 48 (CPU sizes: 8), AMP) from a cache of R50 features at
                  256x192 streamed from disk, for each `cache.store` (trunk: the profiles'; head: the sample's):
                  samples/s, its time waiting for batches, what it means for full COCO; the cache reader alone
                  (the stage's workers; chunks decoded on threads) and the training step alone
  cache_stage     the cache stage itself (`write_shard`) over the train split's crops against the pure forward,
                  for each `cache.store`, with where its time went; crop loading and the writer alone
  cuda_tests      the tests marked `cuda` (bf16, CUDA graphs, torch.compile, prefetching, pinned memory, AMP
                  against the CPU)
  sample          the sample end to end on this device (backbone, cache, ours, infer cached and online,
                  evaluate), then its inference again on the CPU: the APs agree within noise
  ddp             the same training under torchrun, one process (NCCL on a GPU, gloo on the CPU): the
                  single process's weights
Prints one table: each figure before (BEFORE: the issue's H200 run) and now, against its target.
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
from cache_throughput import stage_rates, train_crops, writer_rates
from gpu_table import COCO_TRAIN, PAPER_EPOCHS, TARGETS, print_table, table
from refiner_cost import BACKBONE_ROW, BEFORE_ROW, STATIC_ROW, measure
from refiner_levers import levers
from sample_project import REPO, Project, mirror, sample_tree
from sgpose.cache.reader import CacheBatches, batch_loader, features, shuffled_batches
from sgpose.config.schema import ComputeParams
from sgpose.config.selection import load_params
from sgpose.method.refine import draw_steps, guidance_spec, training_loss
from sgpose.method.refiner import build_unet
from sgpose.runtime import compute, threads
from sgpose.stages.train_refiner import training_source
from sgpose.training.refiner import to_device
from timing import timed

STORES = ("trunk", "head")  # cache.store: the GPU profiles' first, the sample's second
SIZES = {  # per machine: GPU sizes fit the 8 minutes on one H200, CPU sizes a few minutes on 2 cores
    "gpu": dict(batch=64, big_batch=256, iters=10, crops=2048, workers=8, train_samples=1536, train_batch=48,
                step_iters=5, train_epochs=3, backbone_epochs=20, refiner_epochs=10, keep=None, budget=330.0),
    "cpu": dict(batch=4, big_batch=8, iters=1, crops=8, workers=0, train_samples=16, train_batch=8, train_epochs=2,
                step_iters=1, backbone_epochs=1, refiner_epochs=1, keep={"train": 48, "val": 16, "val_det": 16}, budget=None),
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
            "failures": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
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
    """The static reading as infer runs it and as it ran before, at the stages' batch and a larger one."""
    out = {}
    for batch in (size["batch"], size["big_batch"]):
        rows = measure(batch, size["iters"])
        params, reading = rows.pop("unet_params_m"), rows.pop("reading")
        base = rows[BACKBONE_ROW]
        out[f"batch_{batch}"] = {"ms": {k: 1e3 * v for k, v in rows.items()}, "ratio": {k: v / base for k, v in rows.items()},
                                 "static_ratio": rows[STATIC_ROW] / base, "before_ratio": rows[BEFORE_ROW] / base}
    return out | {"unet_params_m": params, "reading": reading}


def refiner_levers(size: dict, work: Path) -> dict:
    """Each lever side by side and the profile of the static reading (benchmarks/refiner_levers.py)."""
    return levers(size["batch"], size["iters"])


def cache_stage(size: dict, work: Path) -> dict:
    """The stage's shard writer over a train split's crops against the pure forward, for each store; the
    writer alone (head, R50 with the flip view) with HDF5's filters and with every core's encoders."""
    crops, workers = train_crops(size["crops"]), size["workers"] and max(size["workers"], threads.available_cores() - 2)
    out: dict = {"encoder_threads": threads.pool_threads()}
    for store in STORES:
        out[store] = _part(lambda store=store: stage_rates(crops, size["batch"], workers, store))
    writer = writer_rates(max(size["crops"] // 16, 4), size["batch"], [0, threads.pool_threads()], iters=1)
    return out | {"writer_hdf5_filters_samples_per_s": writer[0], "writer_encoders_samples_per_s": writer[threads.pool_threads()]}


def _part(fn) -> dict:
    """fn()'s figures, or its error (the other parts of the section still run)."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - recorded, printed in the table
        return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def _train_project(size: dict, work: Path, store: str) -> Project:
    """R50 (untrained: throughput needs no trained weights) at 256x192 over sample crops, its train cache
    of `train_samples` instances (the sample's train rows repeated) with `cache.store` `store`, the paper's
    refiner; the stages get every core (resources)."""
    cores = threads.available_cores()
    tree = sample_tree(refiner=PAPER_REFINER, train_backbone__epochs=0, train_backbone__num_workers=size["workers"],
                       cache__batch_size=size["batch"], cache__store=store,
                       train_refiner={"batch_size": size["train_batch"], "epochs": size["train_epochs"],
                                      "preload_gb": 0.0,
                                      "num_workers": size["workers"], "lr": 1e-4, "seed": 0, "devices": 1,
                                      "val_every": 0},  # no val cache here: throughput only
                       resources={rule: {"threads": cores} for rule in ("cache", "train_refiner", "train_backbone")})
    tree["backbones"][next(iter(tree["backbones"]))] |= R50
    project = Project(work / f"train_{store}", tree)
    project.run("prepare", "--split", "train")
    rows = pd.read_parquet(project.paths.instances("train"))
    reps = -(-size["train_samples"] // len(rows))
    pd.concat([rows] * reps).iloc[:size["train_samples"]].to_parquet(project.paths.instances("train"), index=False)
    project.run("train_backbone")
    project.run("cache", "--split", "train")
    return project


def train(size: dict, work: Path) -> dict:
    return {store: _part(lambda store=store: train_store(size, work, store)) for store in STORES}


def train_store(size: dict, work: Path, store: str) -> dict:
    project = _train_project(size, work, store)
    start = len((project.root / "stages.log").read_text())
    project.run("train_refiner")
    # train_log.csv holds no wall time (equal work, equal bytes): the stage logs each epoch's seconds
    logged = (project.root / "stages.log").read_text()[start:]
    epochs = [(float(a), float(b)) for a, b in re.findall(
        r"refiner ours epoch \d+: loss \S+ \(([\d.]+) s, ([\d.]+) s waiting for batches\)", logged)]
    if len(epochs) != size["train_epochs"]:
        raise RuntimeError(f"expected {size['train_epochs']} epoch times in the train_refiner log, found {epochs}")
    timed_epochs = epochs[1:] or epochs  # the first epoch pays the warm-up (cudnn autotuning, page cache)
    seconds = sum(e for e, _ in timed_epochs) / len(timed_epochs)
    rate = size["train_samples"] / seconds
    parts = train_parts(project, iters=size["step_iters"])
    return {"samples_per_s": rate, "epoch_seconds": [e for e, _ in epochs], "samples": size["train_samples"],
            "waiting_share": sum(w for _, w in timed_epochs) / len(timed_epochs) / seconds,
            "full_coco_epochs_per_hour": 3600 * rate / COCO_TRAIN, "hours_for_130_epochs": PAPER_EPOCHS * COCO_TRAIN / rate / 3600,
            "train_over_min": rate / min(parts["reader_samples_per_s"], parts["step_samples_per_s"]), **parts}


def train_parts(project: Project, iters: int, batches: int = 16) -> dict:
    """Where the training time goes: the cache reader alone (an epoch's batches on the device, the stage's
    workers and pinning, a trunk cache's head included; no model), the same in one process with the chunks
    decoded on its threads, and the training step alone (forward, backward, Adam on one batch)."""
    params = load_params(project.params)
    cp, dev, tp = params.compute, compute.device(params.compute), params.train_refiner
    source = training_source(params, project.paths, dev)
    order = shuffled_batches(source.num_instances, tp.batch_size, torch.Generator().manual_seed(0), source.views)
    order = order[:batches]

    def rate(loaded_batches) -> tuple[float, list[dict]]:
        """Samples/s of reading `loaded_batches` onto the device."""
        t0 = time.perf_counter()
        loaded = [to_device(b, cp, dev) for b in loaded_batches]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return sum(len(b["heatmaps"]) for b in loaded) / (time.perf_counter() - t0), loaded

    first, loaded = rate(source.batches(order, 0))  # the reader processes start (once per run: EpochLoader)
    reader, _ = rate(source.batches(order, 1))  # the same processes again: what every later epoch reads at
    data = CacheBatches(source.data.path, source.data.keys, as_stored=True, decoders=threads.pool_threads())
    expand = source.head.expand if source.head is not None else (lambda b: b)
    in_threads, _ = rate(map(expand, batch_loader(data, order[:4], 0, dev.type == "cuda")))
    sample_mb = sum(v[0].numel() * v.element_size() for v in source.data[order[0][:1]].values()) / 1e6
    torch.manual_seed(0)
    unet = compute.prepare_refiner(build_unet(params.refiner, 17, source.features, "ours"), cp, dev)
    spec = guidance_spec(params, "ours", project.paths.start_pose).to(dev)
    opt, b = torch.optim.Adam(unet.parameters(), lr=tp.lr), loaded[0]
    t = draw_steps(spec, len(b["heatmaps"])).to(dev)

    def step():
        with compute.autocast(cp, dev):
            loss = training_loss(unet, spec, features(b), b["heatmaps"], b["target"], b["target_weight"], t,
                                 joints=b["joints"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"reader_samples_per_s": reader, "reader_first_epoch_samples_per_s": first,
            "reader_threads_samples_per_s": in_threads, "stored_mb_per_sample": sample_mb,
            "step_samples_per_s": len(b["heatmaps"]) / timed(step, iters), "reader_workers": tp.num_workers,
            "decoder_threads": threads.pool_threads()}


def ddp(size: dict, work: Path) -> dict:
    """One epoch in one process, then the same under torchrun (the DDP wrapper, the process group):
    the weights agree to the rounding of Adam steps (every step moves a weight by at most ~lr)."""
    project = Project(work / f"train_{STORES[0]}")  # the train section's R50 cache
    one_epoch = ("--set", "train_refiner.epochs=1")
    project.run("train_refiner", *one_epoch)
    single = torch.load(project.paths.refiner("ours"), weights_only=False)["state_dict"]
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1")
    project.run("train_refiner", *one_epoch, launcher=launcher)
    ddp_weights = torch.load(project.paths.refiner("ours"), weights_only=False)["state_dict"]
    diff = max((single[k].float() - ddp_weights[k].float()).abs().max().item() for k in single)
    steps = -(-size["train_samples"] // size["train_batch"])
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


# in the order they run: the targets first (a device call cut short, or a spent budget, keeps them),
# the checks of correctness after (cuda_tests after the levers: torch.compile's cache is warm by then)
SECTIONS = {"backbones": backbones, "refiner_cost": refiner_cost, "refiner_levers": refiner_levers, "train": train,
            "cache_stage": cache_stage, "cuda_tests": cuda_tests, "sample": sample, "ddp": ddp}


# ------------------------------------------------------------------------------------------------ main
def run_sections(names: list[str], size: dict, work: Path, out: Path, report: dict, budget: float | None) -> None:
    """Each section in turn, its figures or error (or a skip, past `budget` seconds) saved after each."""
    t_start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        if budget is not None and t0 - t_start > budget:
            report[name] = {"skipped": f"the check's budget of {budget:.0f} s was spent ({t0 - t_start:.0f} s)"}
        else:
            report[name] = _part(lambda name=name: SECTIONS[name](size, work))
        report[name]["seconds"] = round(time.perf_counter() - t0, 1)
        notes = [f"FAILED{' ' + where if where else ''}: {why}" for where, why in errors(report[name])]
        notes += [f"skipped: {report[name]['skipped']}"] if "skipped" in report[name] else []
        print(f"{name}: {report[name]['seconds']} s" + "".join(f"\n  {n}" for n in notes), flush=True)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))  # a cut-off run keeps its sections


def errors(node: dict, where: str = "") -> list[tuple[str, str]]:
    """(where, first line of the error) of every failed section or part below `node`."""
    if "error" in node:
        return [(where, str(node["error"]).splitlines()[0])]
    return [e for k, v in node.items() if isinstance(v, dict) for e in errors(v, f"{where}.{k}".strip("."))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "gpu_check", help="where the JSON goes")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "gpu_check" / "work",
                        help="where the sections make their projects (each replaces its own)")
    parser.add_argument("--small", action="store_true", help="CPU sizes (the default without CUDA)")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--budget", type=float, help="seconds after which no section starts (GPU sizes: 330)")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()
    size = SIZES["cpu" if args.small or not on_gpu else "gpu"]
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if on_gpu else f"no CUDA: CPU, {os.cpu_count()} cores"
    report: dict = {"env": {"torch": torch.__version__, "device": device, "cuda": on_gpu, "threads": torch.get_num_threads(),
                            "sizes": "cpu" if size is SIZES["cpu"] else "gpu", "mirror": str(mirror())}}
    print(f"# GPU check: torch {torch.__version__}, {device}, {report['env']['sizes']} sizes", flush=True)
    run_sections(args.sections, size, args.work, args.out, report, args.budget if args.budget else size["budget"])
    report["targets"] = TARGETS
    report["table"] = table(report)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    print_table(report["table"], f"GPU check on {device} -> {args.out / 'gpu_check.json'} (before: the H200 run of "
                "2026-12-04, issue 26)")
    sys.exit(1 if errors(report) else 0)


if __name__ == "__main__":
    main()
