"""The refiner's cost beside the backbone's, at 256x192 (heatmaps 64x48) on the current device.

    python benchmarks/refiner_cost.py                    # batch 64, S = 3, UNet base 32, mults 1,2,4
    python benchmarks/refiner_cost.py --batch 8 --iters 2 --base 64

Times (median of --iters runs after one warm-up): the guidance sequence {H(t)} for the batch, one
UNet step, the full T-step refinement (the `recursive` reading: T UNet calls plus a guidance
rebuild per step), the static reading (one UNet call), and the SimpleBaseline-R50 forward; each
as a ratio to the backbone. Both run as the stages run them (sgpose.runtime.compute: bf16 autocast and
channels_last on CUDA; fp32 on the CPU). Features are random tensors of SimpleBaseline-R50's shapes
(256@64x48, 256@32x24, 256@16x12). Prints figures; this is not a test.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from sgpose.config.schema import ComputeParams, GuidanceParams
from sgpose.core.keypoints import COCO
from sgpose.core.variants import get_variant
from sgpose.method import guidance
from sgpose.method.refine import GuidanceSpec, refine
from sgpose.method.unet import StructureGuidedUNet
from sgpose.models.features import feature_info
from sgpose.models.simple_baseline import PoseResNet
from sgpose.runtime import compute
from timing import timed

SIZE, HEATMAP, K = (256, 192), (64, 48), 17


BACKBONE_ROW = "backbone forward (SimpleBaseline-R50)"
STATIC_ROW = "static refinement (1 UNet call)"


@dataclass
class Bench:
    """One batch of random inputs of SimpleBaseline-R50's shapes, the refiner and the R50 on one device."""

    cp: ComputeParams
    device: torch.device
    feats: list[torch.Tensor]
    y0: torch.Tensor
    start: torch.Tensor
    spec: GuidanceSpec
    unet: StructureGuidedUNet
    backbone: PoseResNet
    images: torch.Tensor


def setup(batch: int = 64, S: int = 3, base: int = 32, cp: ComputeParams | None = None) -> Bench:
    """The models and inputs on `cp`'s device the way the stages run them (sgpose.runtime.compute: bf16 autocast
    and channels_last on CUDA, plain fp32 on the CPU)."""
    cp = cp or ComputeParams()
    device = compute.device(cp)
    torch.manual_seed(0)
    b = batch
    feats = [compute.to_device(torch.randn(b, 256, HEATMAP[0] >> i, HEATMAP[1] >> i), cp, device) for i in range(3)]
    y0 = compute.to_device(torch.rand(b, K, *HEATMAP), cp, device)
    start = torch.from_numpy(COCO.canonical_pose(HEATMAP)).to(device)
    spec = GuidanceSpec(GuidanceParams(S=S), get_variant("ours"), start, 2.0, HEATMAP, guidance.fusion_weights(S))
    unet = compute.prepare_model(StructureGuidedUNet(K, feature_info([256] * 3), base, [1, 2, 4], 64), cp, device).eval()
    backbone = compute.prepare_model(PoseResNet(50, K), cp, device).eval()
    images = compute.to_device(torch.randn(b, 3, *SIZE), cp, device)
    return Bench(cp, device, feats, y0, start, spec, unet, backbone, images)


def measure(batch: int = 64, iters: int = 3, S: int = 3, base: int = 32, cp: ComputeParams | None = None) -> dict:
    """Median seconds of each row for one batch (`setup`)."""
    x = setup(batch, S, base, cp)
    cp, device, feats, y0, start, spec, unet, backbone, images = (
        x.cp, x.device, x.feats, x.y0, x.start, x.spec, x.unet, x.backbone, x.images)
    b, gp = batch, spec.params
    pred = torch.rand(b, K, 2, device=device) * torch.tensor([47.0, 63.0], device=device)
    t_last = torch.full((b,), gp.T - 1, device=device)
    with compute.inference(cp, device):
        return {
            BACKBONE_ROW: timed(lambda: backbone(images), iters),
            f"guidance sequence (B, T={gp.T}, K, 64, 48)": timed(
                lambda: guidance.guidance_sequence(start, pred, S), iters),
            "one UNet step": timed(lambda: unet(feats, y0, t_last), iters),
            STATIC_ROW: timed(lambda: refine(unet, spec, feats, y0, "static"), iters),
            f"full T-step refinement (recursive, {gp.T} calls)": timed(
                lambda: refine(unet, spec, feats, y0, "recursive"), iters),
            "unet_params_m": sum(p.numel() for p in unet.parameters()) / 1e6,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--S", type=int, default=3)
    ap.add_argument("--base", type=int, default=32, help="UNet base channels")
    args = ap.parse_args()
    cp = ComputeParams()
    rows = measure(args.batch, args.iters, args.S, args.base, cp)
    params = rows.pop("unet_params_m")
    print(f"device {compute.effective(cp, compute.device(cp))} ({torch.get_num_threads()} threads), batch {args.batch}, "
          f"256x192, S={args.S}, UNet base {args.base}, {params:.2f} M params")
    for name, sec in rows.items():
        print(f"{name:48s} {sec * 1e3:10.1f} ms   {sec / rows[BACKBONE_ROW]:6.3f} x backbone")


if __name__ == "__main__":
    main()
