"""`sgpose predict IMAGE [--boxes x,y,w,h ...] [--out DIR]`: the trained pipeline on a user's image.

Each box (default: the whole image) is cropped as in training, run through the backbone of
params/paths (flip test as `infer.flip_test`) and refined by the trained `ours` refiner (reading
`infer.mode`). Writes `<stem>_keypoints.json` (COCO results format, refined) and `<stem>_overlay.png`
(backbone blue, refined green) into DIR (default results/predict).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sgpose.config.paths import Paths  # noqa: E402
from sgpose.config.selection import Params  # noqa: E402
from sgpose.core.io import atomic_path, write_json  # noqa: E402
from sgpose.core.keypoints import get_layout  # noqa: E402
from sgpose.data.dataset import ImageNorm, read_rgb  # noqa: E402
from sgpose.data.decoding import decode  # noqa: E402
from sgpose.data.transforms import box_to_center_scale, heatmap_to_image, warp_crop  # noqa: E402
from sgpose.evaluation.results import to_coco_results  # noqa: E402
from sgpose.stages import Run  # noqa: E402

log = logging.getLogger(__name__)
VARIANT = "ours"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="an image file (jpg, png, ...)")
    parser.add_argument("--boxes", nargs="+", default=[], metavar="X,Y,W,H",
                        help="person boxes in image pixels (default: the whole image)")
    parser.add_argument("--out", default=None, help="output directory (default: results/predict)")


def parse_boxes(specs: list[str], width: int, height: int) -> np.ndarray:
    """(N, 4) boxes from 'x,y,w,h' strings; the whole image when none; errors name the bad box. A box
    with a NaN or infinite value, or one that does not overlap the image, is an error (never NaN or
    far-away keypoints in the JSON)."""
    if not specs:
        return np.array([[0.0, 0.0, float(width), float(height)]])
    boxes = []
    for spec in specs:
        try:
            box = [float(v) for v in spec.split(",")]
        except ValueError:
            box = []
        if len(box) != 4 or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"--boxes {spec!r}: expected x,y,w,h (finite numbers) with w, h > 0")
        x, y, w, h = box
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(f"--boxes {spec!r}: outside the {width}x{height} image")
        boxes.append(box)
    return np.asarray(boxes, dtype=np.float64)


def image_id_of(path: Path) -> int:
    """COCO image id: the file stem when numeric (000000000785.jpg -> 785), else 0."""
    return int(path.stem) if path.stem.isdigit() else 0


def crops(image: np.ndarray, boxes: np.ndarray, params: Params) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Normalised input crops (N, 3, h, w) and their centres and scales, as the val crops are made."""
    h, w = params.backbone.input_size
    center, scale = box_to_center_scale(boxes, params.prepare.aspect_ratio, params.prepare.padding)
    order = params.backbone.input_color  # the checkpoint's channel order
    images = [ImageNorm.to_tensor(warp_crop(image, c, s, 0.0, (h, w)), order) for c, s in zip(center, scale)]
    return torch.stack(images), center, scale


def models(params: Params, paths: Paths):
    """(backbone, refiner); a missing checkpoint names the stage that makes it."""
    from sgpose.inference.cached import refiner_for
    from sgpose.models.checkpoints import load_backbone

    ckpt = paths.backbone
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no backbone (run `sgpose train_backbone`; it imports backbones.<name>.checkpoint "
                                "when one is set)")
    backbone = load_backbone(ckpt, params.backbone, get_layout(params.layout).num_joints)
    refiner = paths.refiner(VARIANT)
    if not refiner.is_file():
        raise FileNotFoundError(f"{refiner}: no trained refiner (run `sgpose train_refiner --variant {VARIANT}`)")
    return backbone, refiner_for(params, paths, VARIANT, torch.device("cpu"))


def heatmaps(params: Params, backbone, refiner, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(backbone heatmaps, refined heatmaps), both flip-averaged as `infer` does."""
    from sgpose.inference.cached import Setting, final_heatmaps
    from sgpose.models.backbones import forward_views

    with torch.no_grad():
        # the backbone levels the refiner was trained on (its cache's `cache.feature_levels`)
        batch = forward_views(backbone, images, params.infer.flip_test, refiner.unet.levels)
    s = Setting.of(params)
    return final_heatmaps(batch, None, s), final_heatmaps(batch, refiner, s)


def to_image(hm: torch.Tensor, center: np.ndarray, scale: np.ndarray, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """(joints (N, K, 2) in image px, scores (N, K)) of final heatmaps, decoded as `infer.decode` says."""
    coords, scores = decode(hm, params.infer.decode, params.backbone.heatmap_sigma)
    return heatmap_to_image(coords.numpy(), center, scale, tuple(params.backbone.heatmap_size)), scores.numpy()


def draw_overlay(path: Path, image: np.ndarray, base: np.ndarray, refined: np.ndarray, layout) -> None:
    """The image with every person's backbone (blue) and refined (green) skeleton."""
    from sgpose.report.skeleton import COLORS, draw_skeleton

    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(8, 8 * h / max(w, 1)))
    ax.imshow(image)
    for n, (b, r) in enumerate(zip(base, refined)):
        draw_skeleton(ax, b, np.ones(len(b), bool), layout, COLORS["backbone"], "backbone" if n == 0 else None)
        draw_skeleton(ax, r, np.ones(len(r), bool), layout, COLORS["refined"], "refined" if n == 0 else None)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    path = Path(args.image)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    image = read_rgb(path)
    boxes = parse_boxes(args.boxes, image.shape[1], image.shape[0])
    backbone, refiner = models(params, paths)
    images, center, scale = crops(image, boxes, params)
    (base, _), (refined, scores) = (to_image(hm, center, scale, params) for hm in heatmaps(params, backbone, refiner, images))
    out = Path(args.out) if args.out else paths.results / "predict"
    results = to_coco_results(np.full(len(boxes), image_id_of(path)), refined, scores, np.ones(len(boxes)))
    write_json(out / f"{path.stem}_keypoints.json", results)
    draw_overlay(out / f"{path.stem}_overlay.png", image, base, refined, get_layout(params.layout))
    log.info("%s: %d person(s) -> %s", path, len(boxes), out)
