"""COCO AP of a controlled backbone's baseline (decoded Y0) on a prepared val split, per error setting,
without training anything: the ground truth of every val instance is perturbed (sgpose.controlled.perturb, the
fixed evaluation draws), rendered, decoded (with the flip test, as `infer` does), mapped back to the
image and scored with sgpose's evaluation (pycocotools). Not a test: the numbers behind the defaults
of `sgpose.config.controlled.PERTURBED` (docs/paper_notes.md).

    python benchmarks/perturb_calibration.py [results/sample/prepared] [--size 32x24] [--sigma 1.0]
        [--decode standard|dark] [--only SETTING ...] [--seeds 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sgpose.config.controlled import ORACLE, PERTURBED, PerturbParams
from sgpose.controlled.perturb import KINDS, UNLABELLED, CropContext, instance_uniforms, perturb, render_y0
from sgpose.core.keypoints import get_layout
from sgpose.data.coco import read_instances
from sgpose.data.decoding import decode, flip_back
from sgpose.data.transforms import heatmap_to_image, image_to_heatmap
from sgpose.evaluation.coco_eval import evaluate_keypoints
from sgpose.evaluation.results import to_coco_results

SETTINGS: dict[str, PerturbParams] = {
    "oracle": ORACLE,
    "good only (ks 0.85-1)": PerturbParams(),
    "jitter .10": PerturbParams(jitter=0.10),
    "miss .05": PerturbParams(miss=0.05),
    "absent .05": PerturbParams(absent=0.05),
    "inversion .05": PerturbParams(inversion=0.05),
    "swap .05": PerturbParams(swap=0.05),
    "defaults (PERTURBED)": PERTURBED,
    "defaults x0.5": PerturbParams(jitter=0.04, inversion=0.01, swap=0.01, miss=0.015, absent=0.005),
    "defaults x1.5": PerturbParams(jitter=0.12, inversion=0.03, swap=0.03, miss=0.045, absent=0.015),
}


def baseline_ap(prepared: Path, p: PerturbParams, size: tuple[int, int], sigma: float, flip: bool = True,
                decode_mode: str = "standard") -> tuple[dict, dict]:
    """(COCO metrics of the decoded controlled Y0 on `prepared`'s val split, realised kind shares)."""
    layout = get_layout("coco")
    perm, rows = layout.flip_permutation(), read_instances(prepared / "instances_val.parquet")
    kps = np.stack([np.asarray(k, np.float64).reshape(-1, 3) for k in rows["keypoints"]])
    centers = rows[["center_x", "center_y"]].to_numpy(np.float64)
    scales = rows[["scale_w", "scale_h"]].to_numpy(np.float64)
    joints = torch.from_numpy(np.concatenate([image_to_heatmap(kps[..., :2], centers, scales, size), kps[..., 2:]], -1))
    ann = rows["ann_id"].to_numpy()
    others, area = CropContext(rows, perm)(ann, centers, scales, size)
    pos, drawn, kind = perturb(joints.float(), others, area, instance_uniforms(ann, p.seed, layout.num_joints), p,
                               layout.sigmas, perm, size)
    y0 = render_y0(pos, drawn, size, sigma)
    if flip:
        y0 = 0.5 * (y0 + flip_back(render_y0(pos, drawn, size, sigma, perm), perm))
    coords, scores = decode(y0, decode_mode, sigma)
    results = to_coco_results(rows["image_id"].to_numpy(), heatmap_to_image(coords.numpy(), centers, scales, size),
                              scores.numpy(), rows["score"].to_numpy())
    labelled = kind != UNLABELLED
    shares = {k: float((kind[labelled] == i).float().mean()) for i, k in enumerate(KINDS)}
    return evaluate_keypoints(prepared / "annotations_val.json", results, layout.sigmas), shares


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prepared", nargs="?", default="results/sample/prepared", type=Path)
    ap.add_argument("--size", default="32x24", help="heatmap h x w (the sample's backbones: 32x24)")
    ap.add_argument("--sigma", type=float, default=1.0, help="Gaussian sigma at that size (sample: 2.0 * 24/48)")
    ap.add_argument("--decode", default="standard", choices=["standard", "dark"], help="infer.decode")
    ap.add_argument("--only", nargs="*", help="settings to run (default: all)")
    ap.add_argument("--seeds", type=int, default=5, help="perturb seeds per setting (the spread of the draws)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(f"{'setting':24s} {'AP x100 (per seed)':32s} AR    realised shares of labelled joints")
    for name, p in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        runs = [baseline_ap(args.prepared, p.model_copy(update={"seed": s}), size, args.sigma, decode_mode=args.decode)
                for s in range(args.seeds if p != ORACLE else 1)]
        aps = " ".join(f"{100 * m['AP']:5.1f}" for m, _ in runs)
        shares = " ".join(f"{k} {v:.3f}" for k, v in runs[0][1].items() if v)
        print(f"{name:24s} {aps:32s} {100 * runs[0][0]['AR']:5.1f} {shares}")


if __name__ == "__main__":
    main()
