"""Where the refiner's static reading spends its time on this device, and what each lever would save.

    python benchmarks/refiner_levers.py                   # batch 64, the levers this device has
    python benchmarks/refiner_levers.py --batch 8 --levers eager profile

On an H200 the static reading (one UNet call plus its guidance) took 1.17x the SimpleBaseline-R50
forward at batch 64 (target <= 0.25), against 0.15x on the CPU, where the FLOPs decide. This measures
the candidates, each against the R50 forward of the same batch (`refiner_cost.setup`):
  eager         the stages' setting (bf16 autocast + channels_last + cuDNN's autotuner on CUDA; fp32 on the CPU)
  heuristic     the same with cuDNN's autotuner off (compute.cudnn_benchmark: false; what the H200 run of
                2026-11-28 measured: the stages had no autotuner then; CUDA only)
  nchw          the same with channels_last off (GroupNorm has no channels_last CUDA kernel)
  pad8          the UNet's first convolution with its 17 + 256 input channels padded to 24 + 256 (zero
                guidance channels, zero weights: the same output), as tensor cores want multiples of 8
  graph         the static reading replayed from one CUDA graph (no per-op launch cost; CUDA only)
  compile       torch.compile of the UNet (fused GroupNorm + SiLU + casts; CUDA only by default: the
                CPU's inductor compiles for minutes on 2 cores)
  profile       torch.profiler over the eager reading: kernels per reading, the time the host spends
                launching against the time the device computes, and the ops that take the most
Prints figures (and returns them to benchmarks/gpu_check.py); this is not a test.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from refiner_cost import Bench, setup
from sgpose.config.schema import ComputeParams
from sgpose.method.refine import refine
from sgpose.runtime import compute
from timing import timed
from torch import nn
from torch.nn import functional as F

LEVERS = ("eager", "heuristic", "nchw", "pad8", "graph", "compile", "profile")


def _static(x: Bench, unet=None):
    return lambda: refine(unet or x.unet, x.spec, x.feats, x.y0, "static")


def eager(x: Bench, iters: int) -> dict:
    with compute.inference(x.cp, x.device):
        return {"static_s": timed(_static(x), iters)}


def heuristic(x: Bench, iters: int) -> dict:
    """The static reading and the R50 forward with cuDNN's untimed heuristic choice of algorithms."""
    if x.device.type != "cuda":
        return {"skipped": "cuDNN's autotuner is CUDA only"}
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        with compute.inference(x.cp, x.device):
            return {"static_s": timed(_static(x), iters), "backbone_s": timed(lambda: x.backbone(x.images), iters)}
    finally:
        torch.backends.cudnn.benchmark = before


def padded_unet(unet, num_joints: int, multiple: int = 8):
    """The UNet as a callable whose level-0 input has its guidance maps padded with zero channels up to a
    multiple of `multiple` (and its first convolution zero weights for them): the same function."""
    extra = -num_joints % multiple
    unet = copy.deepcopy(unet)
    old = unet.downs[0][1]
    conv = nn.Conv2d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding)
    conv = conv.to(device=old.weight.device, dtype=old.weight.dtype, memory_format=torch.channels_last
                   if old.weight.is_contiguous(memory_format=torch.channels_last) else torch.preserve_format)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :num_joints] = old.weight[:, :num_joints]
        conv.weight[:, num_joints + extra:] = old.weight[:, num_joints:]
        conv.bias.copy_(old.bias)
    unet.downs[0][1] = conv
    return lambda feats, guidance, t: unet(feats, F.pad(guidance, (0, 0, 0, 0, 0, extra)), t)


def pad8(x: Bench, iters: int) -> dict:
    unet = padded_unet(x.unet, x.y0.shape[1])
    with compute.inference(x.cp, x.device):
        out, expect = _static(x, unet)(), _static(x)()
        return {"static_s": timed(_static(x, unet), iters), "eager_abs_max": expect.float().abs().max().item(),
                "max_abs_difference_to_eager": (out.float() - expect.float()).abs().max().item()}


def nchw(x: Bench, iters: int) -> dict:
    y = setup(len(x.y0), cp=x.cp.model_copy(update={"channels_last": False}))
    with compute.inference(y.cp, y.device):
        return {"static_s": timed(_static(y), iters), "backbone_s": timed(lambda: y.backbone(y.images), iters)}


def graph(x: Bench, iters: int) -> dict:
    """The whole static reading (decode, guidance, UNet) captured once and replayed on the same buffers."""
    if x.device.type != "cuda":
        return {"skipped": "CUDA graphs need CUDA"}
    run = _static(x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), compute.inference(x.cp, x.device):
        for _ in range(3):  # warm-up off the capture stream, as torch.cuda.graphs asks
            run()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g), compute.inference(x.cp, x.device):
        out = run()
    with compute.inference(x.cp, x.device):
        expect = run()
    g.replay()
    torch.cuda.synchronize()
    return {"static_s": timed(g.replay, iters), "max_abs_difference_to_eager": (out.float() - expect.float()).abs().max().item()}


def compiled(x: Bench, iters: int, on_cpu: bool = False) -> dict:
    if x.device.type != "cuda" and not on_cpu:
        return {"skipped": "torch.compile measured on CUDA only (--compile-on-cpu to force)"}
    unet = torch.compile(x.unet)
    t0 = time.perf_counter()
    with compute.inference(x.cp, x.device):
        out = _static(x, unet)()
        compile_s = time.perf_counter() - t0
        expect = _static(x)()
        return {"static_s": timed(_static(x, unet), iters), "compile_s": compile_s,
                "max_abs_difference_to_eager": (out.float() - expect.float()).abs().max().item()}


def profile(x: Bench, iters: int, top: int = 12) -> dict:
    """Kernels and host time per static reading, and its most expensive ops (device time on CUDA)."""
    from torch.profiler import ProfilerActivity

    on_cuda = x.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_cuda else [])]
    run = _static(x)
    with compute.inference(x.cp, x.device):
        run()
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(iters):
                run()
            if on_cuda:
                torch.cuda.synchronize()
    events = prof.key_averages()
    key = "self_device_time_total" if on_cuda else "self_cpu_time_total"
    rows = sorted(events, key=lambda e: getattr(e, key, 0.0), reverse=True)[:top]
    device_us = sum(getattr(e, key, 0.0) for e in events) / iters
    out = {"ops": [{"name": e.key, "calls_per_reading": e.count / iters, f"{key}_us_per_reading": getattr(e, key) / iters}
                   for e in rows],
           f"{key}_us_per_reading": device_us}
    if on_cuda:  # kernels launched per reading: each one costs the host a few microseconds
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        out["kernels_per_reading"] = len(kernels) / iters
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


def levers(batch: int = 64, iters: int = 5, which: tuple[str, ...] = LEVERS, compile_on_cpu: bool = False) -> dict:
    """Each lever's figures; every `static_s` also as a ratio to the R50 forward of the same batch. A
    failing lever is recorded with its error; the others still run."""
    x = setup(batch, cp=ComputeParams())
    drawn(x.unet)
    with compute.inference(x.cp, x.device):
        backbone_s = timed(lambda: x.backbone(x.images), iters)
    out: dict = {"batch": batch, "backbone_s": backbone_s, **compute.effective(x.cp, x.device)}
    runs = {"eager": eager, "heuristic": heuristic, "nchw": nchw, "pad8": pad8, "graph": graph, "profile": profile,
            "compile": lambda x, i: compiled(x, i, compile_on_cpu)}
    for name in which:
        try:
            out[name] = runs[name](x, iters)
        except Exception as err:  # noqa: BLE001 - a lever that fails here is a finding, not the end
            out[name] = {"error": f"{type(err).__name__}: {err}"}
        if "static_s" in out[name]:
            out[name]["ratio"] = out[name]["static_s"] / out[name].get("backbone_s", backbone_s)
    return out


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
            print(f"{name:8s} static reading {r['static_s'] * 1e3:8.2f} ms  {r['ratio']:6.3f} x backbone")
        elif name != "profile":
            print(f"{name:8s} {r.get('skipped') or r.get('error')}")
    if "ops" in out.get("profile", {}):
        p = out["profile"]
        total = next(v for k, v in p.items() if k.endswith("_us_per_reading"))
        kernels = f", {p['kernels_per_reading']:.0f} kernels" if "kernels_per_reading" in p else ""
        print(f"profile: {total:.0f} us per reading{kernels}")
        for op in p["ops"]:
            us = next(v for k, v in op.items() if k.endswith("_us_per_reading"))
            print(f"  {op['name'][:50]:50s} {op['calls_per_reading']:6.1f} calls {us:10.1f} us")
    elif "error" in out.get("profile", {}):
        print(f"profile  {out['profile']['error']}")


if __name__ == "__main__":
    main()
