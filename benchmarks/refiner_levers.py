"""Where the refiner's static reading spends its time on this device, and what each lever saves.

    python benchmarks/refiner_levers.py                   # batch 64, the levers this device has
    python benchmarks/refiner_levers.py --batch 8 --levers autocast native profile

On an H200 (2026-12-04) the static reading as the stages ran it took 0.999x the SimpleBaseline-R50 forward
at batch 64 (target <= 0.35): 292 kernels, 92 of them copies (autocast casting weights and activations,
layout conversions) taking twice the device time of its 27 convolutions. Each lever against the R50
forward of the same batch (`refiner_cost.setup`), every reading as `Reading` runs it (the spec on the
device, H(t) from its non-zero maps):
  autocast       as the stages ran it before: float32 weights under bf16 autocast, channels_last, eager
  native         weights and features in the compute dtype (bf16 on CUDA; fp32 on the CPU), no autocast, eager
  native_nchw    the same in NCHW (GroupNorm has no NHWC kernel on CUDA: compute.refiner_channels_last)
  graph          native replayed from a CUDA graph (the stages' default: compute.refiner_cuda_graphs; CUDA only)
  graph_nchw     the same in NCHW
  compile        native compiled by torch.compile (fuses norms, activations and the guidance; compute.refiner_compile)
  compile_graph  compiled and replayed from a CUDA graph
  profile        torch.profiler over autocast and native: kernels per reading, copies (aten::copy_) and their
                 share of the device time (CPU time on the CPU), the costliest ops, and the device time per
                 part of the reading (P_pred, the guidance, the UNet)
The CPU has neither CUDA graphs nor, by default, torch.compile (minutes on 2 cores: --compile-on-cpu); its
`profile` runs the CUDA setting emulated (CPU autocast / bf16 weights, channels_last) for the op counts.
Prints figures (and returns them to benchmarks/gpu_check.py); this is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from refiner_cost import Bench, setup
from sgpose.config.schema import ComputeParams
from sgpose.inference.reading import Setup
from sgpose.runtime import compute
from timing import timed
from torch import nn

LEVERS = ("autocast", "native", "native_nchw", "graph", "graph_nchw", "compile", "compile_graph", "profile")
CUDA_ONLY = {"graph", "graph_nchw", "compile_graph"}
VIEWS = {"aten::view", "aten::_unsafe_view", "aten::reshape", "aten::as_strided", "aten::expand", "aten::slice",
         "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::t", "aten::transpose", "aten::permute",
         "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resize_", "aten::alias", "aten::detach",
         "aten::lift_fresh", "aten::result_type", "aten::is_nonzero", "aten::contiguous"}  # no kernel of their own


def native_setup(x: Bench, *, nchw: bool = False, graphs: bool = False, compiled: bool = False) -> Setup:
    """The reading infer runs on this device (`Setup.of`), its memory format, graphs and compile set."""
    base = Setup.of(x.cp, x.device, len(x.y0))
    on_cpu = x.device.type == "cpu"
    return Setup(base.dtype, base.channels_last and not nchw, graphs, ("inductor" if compiled else None),
                 len(x.y0)) if not on_cpu else Setup(batch=len(x.y0), compile="inductor" if compiled else None)


def timed_reading(x: Bench, iters: int, setup: Setup) -> dict:
    """Seconds per static reading (the first call, which captures or compiles, timed apart), and its
    largest difference to the eager native reading of the same weights."""
    reading, eager = x.reading("static", setup), x.reading("static", native_setup(x))
    t0 = time.perf_counter()
    out = reading(x.feats, x.y0)
    first = time.perf_counter() - t0
    expect = eager(x.feats, x.y0)
    return {"static_s": timed(lambda: reading(x.feats, x.y0), iters), "first_call_s": first,
            "max_abs_difference_to_native": (out.float() - expect.float()).abs().max().item(),
            "native_abs_max": expect.float().abs().max().item()}


def lever(name: str, x: Bench, iters: int, compile_on_cpu: bool) -> dict:
    if name == "autocast":
        return {"static_s": timed(x.before("static"), iters)}
    if name in CUDA_ONLY and x.device.type != "cuda":
        return {"skipped": "CUDA graphs need CUDA"}
    if name == "compile" and x.device.type != "cuda" and not compile_on_cpu:
        return {"skipped": "torch.compile measured on CUDA only (--compile-on-cpu to force)"}
    return timed_reading(x, iters, native_setup(x, nchw=name.endswith("_nchw"), graphs=name.startswith("graph")
                                                or name == "compile_graph", compiled=name.startswith("compile")))


# ----------------------------------------------------------------------------------------------- profile
def _emulated(x: Bench, native: bool):
    """On the CPU, the CUDA setting for op counts: bf16 (autocast, or weights converted) in channels_last."""
    if native:
        reading = x.reading("static", Setup(torch.bfloat16, True, batch=len(x.y0)))
        return lambda: reading(x.feats, x.y0), contextlib.nullcontext
    unet = x.unet.to(memory_format=torch.channels_last)
    feats = [f.contiguous(memory_format=torch.channels_last) for f in x.feats]
    from sgpose.method.refine import refine

    return (lambda: refine(unet, x.spec, feats, x.y0, "static"),
            lambda: torch.autocast("cpu", dtype=torch.bfloat16))


def profile_run(run, ctx, on_cuda: bool, iters: int, top: int = 10) -> dict:
    """Kernels (CUDA: device kernels; CPU: leaf aten ops that are not views), copies (aten::copy_) and their
    share of the device (CPU: self CPU) time per reading, and the costliest ops."""
    from torch.profiler import ProfilerActivity

    key = "self_device_time_total" if on_cuda else "self_cpu_time_total"
    with ctx(), torch.no_grad():
        run()
        with torch.profiler.profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_cuda else [])]) as prof:
            for _ in range(iters):
                run()
            if on_cuda:
                torch.cuda.synchronize()
    ops = [e for e in prof.events() if e.name.startswith("aten::")]
    leaves = [e for e in ops if e.name not in VIEWS and not any(c.name.startswith("aten::") for c in e.cpu_children)]
    averages = prof.key_averages()
    total = sum(getattr(e, key, 0.0) for e in averages)
    copy_time = sum(getattr(e, key, 0.0) for e in averages if e.key == "aten::copy_")
    kernels = ([e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA] if on_cuda else leaves)
    rows = sorted(averages, key=lambda e: getattr(e, key, 0.0), reverse=True)[:top]
    return {"kernels_per_reading": len(kernels) / iters, "copies_per_reading": sum(e.name == "aten::copy_" for e in leaves) / iters,
            "copy_share_of_time": copy_time / total if total else 0.0, f"{key}_us_per_reading": total / iters,
            "ops": [{"name": e.key, "calls_per_reading": e.count / iters, "us_per_reading": getattr(e, key) / iters}
                    for e in rows]}


def parts(x: Bench, iters: int) -> dict:
    """Milliseconds of each part of the native static reading run alone: P_pred (`guidance.pred_decode`), the
    UNet's input maps (H(T-1), the map of P_pred; Y0 with refiner.prev_heatmap), the UNet call."""
    reading = x.reading("static", native_setup(x))
    feats, y0 = reading.inputs(x.feats, x.y0)[:-1], x.y0.float().contiguous()
    spec, unet, T = reading.spec, reading.unet, reading.spec.T
    pose = spec.pred(y0)
    H = spec.inputs_at(pose, y0, T - 1)  # H(T-1), and Y0 as the previous heatmap when that input is on
    t = torch.full((len(y0),), T - 1, dtype=torch.long, device=x.device)
    with torch.no_grad():
        return {"p_pred_ms": 1e3 * timed(lambda: spec.pred(y0), iters),
                "guidance_ms": 1e3 * timed(lambda: spec.inputs_at(pose, y0, T - 1), iters),
                "unet_ms": 1e3 * timed(lambda: unet(feats, H, t), iters)}


def profile(x: Bench, iters: int) -> dict:
    on_cuda = x.device.type == "cuda"
    out = {}
    for name, native in (("autocast", False), ("native", True)):
        if on_cuda:
            run = (lambda r: lambda: r(x.feats, x.y0))(x.reading("static", native_setup(x))) if native else x.before()
            out[name] = profile_run(run, contextlib.nullcontext, True, iters)
        else:
            out[name] = profile_run(*_emulated(x, native), False, iters)
    return out | {"emulated": not on_cuda, "parts": parts(x, iters)}


def levers(batch: int = 64, iters: int = 5, which: tuple[str, ...] = LEVERS, compile_on_cpu: bool = False) -> dict:
    """Each lever's figures; every `static_s` also as a ratio to the R50 forward of the same batch. A
    failing lever is recorded with its error; the others still run."""
    x = setup(batch, cp=ComputeParams())
    drawn(x.unet)
    with compute.inference(x.cp, x.device):
        backbone_s = timed(lambda: x.backbone(x.images), iters)
    out: dict = {"batch": batch, "backbone_s": backbone_s, **compute.effective(x.cp, x.device)}
    for name in which:
        try:
            out[name] = profile(x, iters) if name == "profile" else lever(name, x, iters, compile_on_cpu)
        except Exception as err:  # noqa: BLE001 - a lever that fails here is a finding, not the end
            out[name] = {"error": f"{type(err).__name__}: {err}"}
        if "static_s" in out[name]:
            out[name]["ratio"] = out[name]["static_s"] / backbone_s
    return out


def drawn(unet: nn.Module, std: float = 0.05) -> nn.Module:
    """`unet` with its zero-initialised parameters drawn at random: a fresh UNet outputs zeros whatever it
    computes, which would make every lever's difference to the eager output 0 without saying anything."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in unet.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return unet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--levers", nargs="+", choices=LEVERS, default=list(LEVERS))
    ap.add_argument("--compile-on-cpu", action="store_true", help="measure torch.compile on the CPU too (minutes)")
    args = ap.parse_args()
    out = levers(args.batch, args.iters, tuple(args.levers), args.compile_on_cpu)
    print(f"device {out['device']} (amp {out['amp']}, channels_last {out['channels_last']}), batch {out['batch']}, "
          f"R50 forward {out['backbone_s'] * 1e3:.2f} ms")
    for name in args.levers:
        r = out[name]
        if "static_s" in r:
            print(f"{name:14s} static reading {r['static_s'] * 1e3:8.2f} ms  {r['ratio']:6.3f} x backbone")
        elif name != "profile":
            print(f"{name:14s} {r.get('skipped') or r.get('error')}")
    for name, p in out.get("profile", {}).items():
        if isinstance(p, dict) and "ops" in p:
            print(f"profile {name}{' (CUDA setting emulated on the CPU)' if out['profile']['emulated'] else ''}: "
                  f"{p['kernels_per_reading']:.0f} kernels, {p['copies_per_reading']:.0f} copies "
                  f"({100 * p['copy_share_of_time']:.0f}% of the time)")
            for op in p["ops"][:6]:
                print(f"  {op['name'][:50]:50s} {op['calls_per_reading']:6.1f} calls {op['us_per_reading']:10.1f} us")
    if "parts" in out.get("profile", {}):
        print("parts of the native reading (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in out["profile"]["parts"].items()))
    if "error" in out.get("profile", {}):
        print(f"profile  {out['profile']['error']}")


if __name__ == "__main__":
    main()
