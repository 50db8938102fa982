"""Backbone speed and size: images/s of the forward pass, parameter counts and GFLOPs at 256x192.

    python benchmarks/backbone_throughput.py                       # all five, batch 64, current device
    python benchmarks/backbone_throughput.py --backbones r50 hrnet_w32 --batch 8 --iters 3
    python benchmarks/backbone_throughput.py --bf16                # CUDA: bf16 autocast
    python benchmarks/backbone_throughput.py --flops               # params + GFLOPs only (docs/backbones.md)

GFLOPs are reported as the papers do: multiply-adds, i.e. torch.utils.flop_counter's FLOPs / 2
(convolutions, transposed convolutions and matmuls; BN, ReLU, upsampling and additions are not counted).
Prints figures; this is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from sgpose.config.schema import BackboneParams
from sgpose.models.backbones import build_backbone
from torch.utils.flop_counter import FlopCounterMode

BACKBONES = {
    "r50": dict(arch="simple_baseline", depth=50), "r101": dict(arch="simple_baseline", depth=101),
    "r152": dict(arch="simple_baseline", depth=152), "hrnet_w32": dict(arch="hrnet", width=32),
    "hrnet_w48": dict(arch="hrnet", width=48),
}


def make(name: str, num_joints: int = 17) -> torch.nn.Module:
    """The backbone at 256x192 with 17 joints, in eval mode."""
    return build_backbone(BackboneParams(name=name, **BACKBONES[name]), num_joints).eval()


def size_and_gmacs(model: torch.nn.Module, input_size: tuple[int, int] = (256, 192)) -> tuple[float, float]:
    """(parameters in millions, multiply-adds in G) for one image."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, *input_size))
    return sum(p.numel() for p in model.parameters()) / 1e6, counter.get_total_flops() / 2e9


def images_per_second(model: torch.nn.Module, batch: int, iters: int, device: torch.device, bf16: bool) -> float:
    """Forward passes per second x batch, after one warm-up pass (synchronised on CUDA)."""
    model = model.to(device)
    x = torch.randn(batch, 3, 256, 192, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad(), autocast:
        model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
        sync()
    return batch * iters / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--flops", action="store_true", help="print params and GFLOPs only")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.bf16 and device.type != "cuda":
        parser.error("--bf16 needs CUDA")
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# device: {where}; torch {torch.__version__}; input 256x192")
    for name in args.backbones:
        model = make(name)
        params, gmacs = size_and_gmacs(model)
        line = f"{name:10s} params {params:6.2f} M  GFLOPs (multiply-adds) {gmacs:6.2f}"
        if not args.flops:
            ips = images_per_second(model, args.batch, args.iters, device, args.bf16)
            line += f"  {ips:8.1f} images/s (batch {args.batch}, {args.iters} iters{', bf16' if args.bf16 else ''})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
