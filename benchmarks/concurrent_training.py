"""Two refiner trainings at once on this machine: samples/s of each, threads left to torch ("before")
and one thread each (`sgpose <stage> --threads 1`, "after"; issue 16).

    python benchmarks/concurrent_training.py                  # 15 s per run, params.yaml's sample shapes
    python benchmarks/concurrent_training.py --seconds 10 --procs 2 --threads 1

Each process runs the refiner's real training step (`refine.training_loss` + Adam on `build_unet`
of params.yaml, batch `train_refiner.batch_size`) for --seconds on random cache-shaped inputs (the
primary backbone's feature channels, probed from `build_backbone`): what `train_refiner` does per
batch once a preloaded cache is in memory. Before: the processes never call
`threads.configure_threads`, so each lets torch take every core. After: each is configured as the
CLI does with `--threads`. Prints figures; this is not a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch
from sgpose.config import load_params
from sgpose.core.keypoints import get_layout
from sgpose.method.refine import draw_steps, guidance_spec, training_loss
from sgpose.method.refiner import build_unet
from sgpose.models.backbones import build_backbone, forward_views
from sgpose.models.features import feature_info
from sgpose.runtime import threads


def worker(params_file: str, seconds: float, n_threads: int) -> None:
    """Train for `seconds` after two warm-up steps; print `samples/s threads`."""
    if n_threads:
        threads.configure_threads(n_threads, "train_refiner")
    params = load_params(params_file)
    bp, k, b = params.backbone, get_layout(params.layout).num_joints, params.train_refiner.batch_size
    torch.manual_seed(0)
    with torch.no_grad():
        probe = forward_views(build_backbone(bp, k).eval(), torch.zeros(1, 3, *bp.input_size), False, None)
    feats = [torch.randn(b, *v.shape[1:]) for key, v in probe.items() if key.startswith("feat/")]
    h, w = bp.heatmap_size
    y0, target, weight = torch.rand(b, k, h, w), torch.rand(b, k, h, w), torch.ones(b, k)
    unet = build_unet(params.refiner, 17, feature_info([f.shape[1] for f in feats])).train()
    spec, opt, gen = guidance_spec(params), torch.optim.Adam(unet.parameters(), lr=1e-4), torch.Generator().manual_seed(0)

    def step() -> None:
        loss = training_loss(unet, spec, feats, y0, target, weight, draw_steps(spec, b, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(), step()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        done += b
    print(f"{done / (time.perf_counter() - t0):.1f} {torch.get_num_threads()}")


def concurrent(args: argparse.Namespace, n_threads: int) -> list[tuple[float, int]]:
    """Start `procs` workers at once; their (samples/s, torch threads)."""
    cmd = [sys.executable, __file__, "--worker", "--params", args.params, "--seconds", str(args.seconds),
           "--threads", str(n_threads)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.procs)]
    outs = [p.communicate()[0].split() for p in procs]
    return [(float(o[0]), int(o[1])) for o in outs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seconds", type=float, default=15.0, help="training time of each process per run")
    ap.add_argument("--procs", type=int, default=2, help="trainings at once")
    ap.add_argument("--threads", type=int, default=1, help="threads of each process after the fix")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.params, args.seconds, args.threads)
    print(f"{args.procs} refiner trainings at once on {threads.available_cores()} cores "
          f"({os.uname().machine}, torch {torch.__version__}); samples/s of each:")
    for label, n in (("before (threads unset)", 0), (f"after (--threads {args.threads})", args.threads)):
        rates = concurrent(args, n)
        each = ", ".join(f"{r:.1f} ({t} threads)" for r, t in rates)
        print(f"  {label:<24} {each}; total {sum(r for r, _ in rates):.1f}")


if __name__ == "__main__":
    main()
