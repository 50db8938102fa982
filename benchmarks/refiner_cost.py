"""The refiner's cost beside the backbone's, at 256x192 (heatmaps 64x48) on the current device.

    python benchmarks/refiner_cost.py                    # batch 64, S = 3, UNet base 32, mults 1,2,4
    python benchmarks/refiner_cost.py --batch 8 --iters 2 --base 64

Times (median of --iters runs after one warm-up): the guidance sequence {H(t)} for the batch, one
UNet step, the static reading (one UNet call) and the full T-step refinement (the `recursive`
reading: T UNet calls plus a guidance rebuild per step) as infer runs them (sgpose.inference.reading:
on CUDA the weights and features in bf16, no autocast, replayed from a CUDA graph; fp32 and eager on
the CPU), the static reading as the stages ran it before (bf16 autocast over float32 weights, eager),
and the SimpleBaseline-R50 forward; each as a ratio to the backbone. Features are random tensors of
SimpleBaseline-R50's shapes (256@64x48, 256@32x24, 256@16x12). Prints figures; this is not a test.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass

import torch
from sgpose.config.schema import ComputeParams, GuidanceParams
from sgpose.core.keypoints import COCO
from sgpose.core.variants import get_variant
from sgpose.inference.reading import Reading, Setup
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
BEFORE_ROW = "static refinement, as before (autocast, eager)"


@dataclass
class Bench:
    """One batch of random inputs of SimpleBaseline-R50's shapes, the refiner and the R50 on one device, as
    the stages ran them before (fp32 weights, features float32, `compute.inference`'s autocast)."""

    cp: ComputeParams
    device: torch.device
    feats: list[torch.Tensor]
    y0: torch.Tensor
    start: torch.Tensor
    spec: GuidanceSpec
    unet: StructureGuidedUNet
    backbone: PoseResNet
    images: torch.Tensor

    def reading(self, mode: str = "static", setup: Setup | None = None) -> Reading:
        """The reading infer runs (`Setup.of` the compute section; or `setup`), on a copy of the UNet."""
        setup = setup or Setup.of(self.cp, self.device, len(self.y0))
        return Reading(copy.deepcopy(self.unet), self.spec, mode, self.device, setup)

    def before(self, mode: str = "static"):
        """The reading as the stages ran it before sgpose.inference.reading: autocast, eager."""
        def run():
            with compute.inference(self.cp, self.device):
                return refine(self.unet, self.spec, self.feats, self.y0, mode)
        return run


def setup(batch: int = 64, S: int = 3, base: int = 32, cp: ComputeParams | None = None) -> Bench:
    """The models and inputs on `cp`'s device the way the stages ran them before (`Bench`)."""
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
    cp, device, b = x.cp, x.device, batch
    pred = torch.rand(b, K, 2, device=device) * torch.tensor([47.0, 63.0], device=device)
    t_last = torch.full((b,), x.spec.T - 1, device=device)
    static, recursive = x.reading("static"), x.reading("recursive")
    unet = static.unet
    step_inputs = static.inputs(x.feats, x.y0)
    y0 = step_inputs[-1]
    step_maps = static.spec.inputs_at(static.spec.pred(y0), y0, x.spec.T - 1)  # what the static reading feeds
    with compute.inference(cp, device):
        rows = {BACKBONE_ROW: timed(lambda: x.backbone(x.images), iters),
                f"guidance sequence (B, T={x.spec.T}, K, 64, 48)": timed(
                    lambda: guidance.guidance_sequence(x.start, pred, S), iters),
                BEFORE_ROW: timed(x.before("static"), iters)}
    with torch.no_grad():
        rows |= {"one UNet step (weights in the compute dtype, eager)": timed(
                     lambda: unet(step_inputs[:-1], step_maps, t_last), iters),
                 STATIC_ROW: timed(lambda: static(x.feats, x.y0), iters),
                 f"full T-step refinement (recursive, {x.spec.T} calls)": timed(lambda: recursive(x.feats, x.y0), iters)}
    return rows | {"unet_params_m": sum(p.numel() for p in x.unet.parameters()) / 1e6,
                   "reading": {k: str(v) for k, v in vars(static.setup).items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--S", type=int, default=3)
    ap.add_argument("--base", type=int, default=32, help="UNet base channels")
    args = ap.parse_args()
    cp = ComputeParams()
    rows = measure(args.batch, args.iters, args.S, args.base, cp)
    params, reading = rows.pop("unet_params_m"), rows.pop("reading")
    print(f"device {compute.effective(cp, compute.device(cp))} ({torch.get_num_threads()} threads), batch {args.batch}, "
          f"256x192, S={args.S}, UNet base {args.base}, {params:.2f} M params; reading {reading}")
    for name, sec in rows.items():
        print(f"{name:52s} {sec * 1e3:10.1f} ms   {sec / rows[BACKBONE_ROW]:6.3f} x backbone")


if __name__ == "__main__":
    main()
