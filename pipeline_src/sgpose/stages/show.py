"""`sgpose show`: one instance, everything the pipeline knows about it, as a PNG panel and as text.

Chosen by annotation id (`--ann-id`), image id (`--image-id`: its persons), or by rank over the split:
`--worst N` / `--best N` (the variant's OKS), `--most-improved N` (the variant's OKS minus `--against`'s,
default the baseline). For each: the OKS of every variant the run scored, each joint's pixel error of the
backbone and of the variant, and the panel (`sgpose.report.panel`): the crop with ground truth, the
backbone's and the refined pose, Y0 and the final heatmap of `--joint` (default all summed), the guidance
H(t) and the refiner's output at every step. It reads the cache, the predictions and the refiner the DAG
wrote; it recomputes only the refiner's steps of the one instance, to draw them (single view, on the CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sgpose.cache.reader import open_cache
from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core.errors import ChoiceError
from sgpose.core.keypoints import get_layout
from sgpose.core.variants import is_refined
from sgpose.data.transforms import image_to_heatmap
from sgpose.method.refine import guidance_spec, guided_steps
from sgpose.method.refiner import load_refiner
from sgpose.report import instances as iv
from sgpose.report.panel import InstanceView, draw
from sgpose.report.skeleton import load_crops
from sgpose.stages import Run

log = logging.getLogger(__name__)
BASELINE = "baseline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ann-id", type=int, metavar="ID", help="the person with this COCO annotation id")
    which.add_argument("--image-id", type=int, metavar="ID", help="every person of this image")
    which.add_argument("--worst", type=int, metavar="N", help="the N instances the variant scores lowest (OKS)")
    which.add_argument("--best", type=int, metavar="N", help="the N instances the variant scores highest")
    which.add_argument("--most-improved", type=int, metavar="N",
                       help="the N instances whose OKS the variant raises most over --against")
    parser.add_argument("--variant", default="ours", help="the refined variant shown (default: %(default)s)")
    parser.add_argument("--against", default=BASELINE, help="what --most-improved compares with (default: %(default)s)")
    parser.add_argument("--split", default="val", help="a ground-truth-box split (default: %(default)s)")
    parser.add_argument("--joint", default="all", help="the joint whose maps are drawn, e.g. left_wrist (default: all, "
                        "summed)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where the panels go (default: results/show/<dataset>/<backbone>/<variant>)")
    parser.add_argument("--json", action="store_true", help="print the instances as JSON instead of text")


def scored_variants(paths: Paths, split: str) -> list[str]:
    """The variants of this backbone with predictions on `split`, the unrefined ones first."""
    found = sorted(p.parent.parent.name for p in paths.backbone_dir.glob(f"*/predictions/{split}.json"))
    return sorted(found, key=lambda v: (is_refined(v), v != BASELINE, v))


def choose(args: argparse.Namespace, inst: iv.Instances, oks: dict[str, np.ndarray]) -> list[int]:
    """The cache rows the arguments select (ValueError naming an id that is not there)."""
    if args.ann_id is not None:
        return [inst.index(args.ann_id)]
    if args.image_id is not None:
        rows = np.flatnonzero(inst.image_id == args.image_id)
        if not len(rows):
            raise ChoiceError(f"image id {args.image_id} has no person in the {inst.split} split")
        return [int(r) for r in rows]
    if args.most_improved is not None:
        if args.against not in oks:
            raise ChoiceError(f"--against {args.against}: no predictions of it on {inst.split} (scored: {', '.join(oks)})")
        return [int(r) for r in iv.rank(oks[args.variant] - oks[args.against], args.most_improved, lowest=False)]
    n, lowest = (args.worst, True) if args.worst is not None else (args.best, False)
    return [int(r) for r in iv.rank(oks[args.variant], n, lowest=lowest)]


@torch.no_grad()
def steps_of(params: Params, paths: Paths, variant: str, h5, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Y0 (K, h, w), guidance H(t) (T, C, h, w), outputs (T, K, h, w)) of one cached instance, the refiner's
    reading `infer.mode` re-run for it (single view)."""
    num_joints = get_layout(params.layout).num_joints
    unet = load_refiner(paths.refiner(variant), params.refiner, num_joints, variant)
    spec = guidance_spec(params, variant, paths.start_pose)
    data = iv.cache_row(h5, row)
    y0 = torch.from_numpy(data["heatmaps"])
    pairs = list(guided_steps(unet, spec, [torch.from_numpy(f) for f in data["feat"]], y0, params.infer.mode))
    guidance = np.stack([m[0, :spec.in_channels - num_joints * spec.prev_heatmap].numpy() for m, _ in pairs])
    return y0[0].numpy(), guidance, np.stack([o[0].numpy() for _, o in pairs])


def describe(params: Params, paths: Paths, args, inst: iv.Instances, row: int, preds: dict, oks: dict,
             crops: pd.DataFrame | None) -> dict:
    """One instance as text-ready values, with its panel drawn."""
    layout, bp = get_layout(params.layout), params.backbone
    base_xy, base_score = preds[BASELINE]
    ref_xy, ref_score = preds[args.variant]
    errors = {f"backbone ({BASELINE})": iv.joint_errors(base_xy, inst)[row], args.variant: iv.joint_errors(ref_xy, inst)[row]}
    joint = None if args.joint == "all" else layout.index(args.joint)
    with open_cache(paths.cache(inst.split)) as h5:
        y0, guidance, outputs = steps_of(params, paths, args.variant, h5, row)
    stride = bp.input_size[1] / bp.heatmap_size[1]
    to_crop = lambda xy: image_to_heatmap(xy[None], inst.center[row:row + 1], inst.scale[row:row + 1],  # noqa: E731
                                          tuple(bp.heatmap_size))[0] * stride
    crop = load_crops(crops, params.data.images_dir, inst.ann_id[row:row + 1], inst.center[row:row + 1],
                      inst.scale[row:row + 1], bp.input_size)[0]
    thr = params.guidance.pred_threshold
    title = (f"{params.dataset}/{bp.name} {inst.split}: annotation {inst.ann_id[row]} (image {inst.image_id[row]}, "
             f"instance {row + 1} of {len(inst)}); {args.variant}, reading {params.infer.mode}")
    view = InstanceView(title, crop, tuple(bp.input_size), to_crop(inst.gt[row]), inst.vis[row], to_crop(base_xy[row]),
                        to_crop(ref_xy[row]), base_score[row] > thr, ref_score[row] > thr, y0, guidance, outputs,
                        errors, {v: float(s[row]) for v, s in oks.items()})
    out = out_dir(params, paths, args) / f"ann{inst.ann_id[row]}.png"
    draw(out, view, layout, joint)
    return {"ann_id": int(inst.ann_id[row]), "image_id": int(inst.image_id[row]), "row": row,
            "oks": {v: round(float(s[row]), 4) for v, s in oks.items()},
            "joints": {name: {k: (None if np.isnan(e[j]) else round(float(e[j]), 2)) for k, e in errors.items()}
                       for j, name in enumerate(layout.names)},
            "panel": str(out)}


def out_dir(params: Params, paths: Paths, args: argparse.Namespace) -> Path:
    """Where the panels go: --out, else results/show/<dataset>/<backbone>/<variant>."""
    return Path(args.out) if args.out else paths.results / "show" / params.dataset / params.backbone.name / args.variant


def text(params: Params, d: dict) -> list[str]:
    """One instance in lines: ids, every variant's OKS, the per-joint errors, the panel's path."""
    lines = [f"{params.dataset}/{params.backbone.name} annotation {d['ann_id']} (image {d['image_id']}, cache row "
             f"{d['row']})", "  OKS: " + ", ".join(f"{v} {s:.3f}" for v, s in d["oks"].items())]
    labels = [label.split(" ")[0] for label in next(iter(d["joints"].values()))]
    lines.append(f"  {'joint (image px)':18s}" + "".join(f"{lab:>10s}" for lab in labels))
    for name, errs in d["joints"].items():
        cells = ["unlabelled"] if all(e is None for e in errs.values()) else [f"{e:.1f}" for e in errs.values()]
        lines.append(f"  {name:18s}" + "".join(f"{c:>10s}" for c in cells))
    lines.append(f"  panel: {d['panel']}")
    return lines


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    if not is_refined(args.variant):
        raise ChoiceError(f"--variant {args.variant}: not a refined variant (no refiner steps to show); try ours")
    if args.joint != "all" and args.joint not in get_layout(params.layout).names:
        raise ChoiceError(f"--joint {args.joint}: no such joint ({', '.join(get_layout(params.layout).names)}, or all)")
    inst = iv.load_instances(paths, args.split)
    layout = get_layout(params.layout)
    preds = {v: iv.load_predictions(paths.keypoints(v, args.split), inst) for v in scored_variants(paths, args.split)}
    for needed in (BASELINE, args.variant):
        if needed not in preds:
            raise FileNotFoundError(f"{paths.keypoints(needed, args.split)}: no predictions (run `sgpose infer "
                                    f"--backbone {params.backbone.name} --variant {needed} --split {args.split}`)")
    oks = {v: iv.instance_oks(xy, inst, layout.sigmas) for v, (xy, _) in preds.items()}
    table = paths.instances(args.split)
    crops = pd.read_parquet(table) if table.is_file() else None
    shown = [describe(params, paths, args, inst, row, preds, oks, crops) for row in choose(args, inst, oks)]
    if args.json:
        print(json.dumps(shown, indent=1))
    else:
        for d in shown:
            print("\n".join(text(params, d)))
