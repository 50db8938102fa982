"""Training/inference crops: one person per item, as SimpleBaseline's JointsDataset.

An item is read from the instance table (docs/architecture.md), augmented when training
(random scale, rotation, horizontal flip), warped to the input size, and given Gaussian heatmap
targets at the heatmap size. Joint coordinates go through the same affine matrices as the pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sgpose.config.schema import AugmentParams
from sgpose.core.keypoints import KeypointLayout
from sgpose.core.modes import ColorOrder
from sgpose.data.targets import encode_targets
from sgpose.data.transforms import affine_matrix, apply_affine, flip_joints, warp_crop


class ImageNorm:
    """ImageNet normalisation of images in [0, 1] (what the official backbones were trained on), in the
    channel order of the checkpoint that reads them: MEAN/STD apply by channel position, as the official
    code does for either order (a BGR checkpoint's channel 0, blue, is normalised with MEAN[0])."""

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    # (3, 256): channel position c's normalised value of each uint8 level, by the formula itself
    # (float32 throughout), so that a crop's normalisation is one table look-up per pixel: the same
    # floats as the formula applied per pixel, 8x faster (tests/data/test_dataset.py)
    TABLE = np.ascontiguousarray(((np.arange(256).astype(np.float32)[:, None] / 255.0 - MEAN) / STD).T)

    @classmethod
    def to_tensor(cls, rgb: np.ndarray, order: ColorOrder | str = ColorOrder.RGB) -> Tensor:
        """uint8 (h, w, 3) RGB -> normalised float (3, h, w), channels in `order` (the checkpoint's)."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 (h, w, 3) image, got {rgb.dtype} {rgb.shape}")
        planes = cv2.split(np.ascontiguousarray(rgb))  # R, G, B
        if ColorOrder(order) is ColorOrder.BGR:
            planes = planes[::-1]
        out = np.empty((3, *rgb.shape[:2]), np.float32)
        for c, plane in enumerate(planes):
            out[c] = cv2.LUT(plane, cls.TABLE[c])
        return torch.from_numpy(out)


JPEG_SOI, JPEG_EOI, PNG_MAGIC = b"\xff\xd8\xff", b"\xff\xd9", b"\x89PNG\r\n\x1a\n"
DATASET_FORMATS = (JPEG_SOI, PNG_MAGIC)  # what COCO / CrowdPose ship (JPEG); PNG for converted sets


def read_rgb(path: str | Path, formats: tuple[bytes, ...] | None = None) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3); a missing, truncated (JPEG) or undecodable file, or with
    `formats` one not starting with one of those magic bytes, is an error naming it (OpenCV decodes
    a truncated JPEG silently, grey below the cut: checked here)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found (has the download stage run?)")
    data = path.read_bytes()
    if formats and not data.startswith(formats):
        raise ValueError(f"{path}: not a JPEG (or PNG) image (starts with {data[:4].hex() or 'nothing'})")
    if data.startswith(JPEG_SOI) and JPEG_EOI not in data[-1024:]:
        raise ValueError(f"{path}: truncated JPEG (no end-of-image marker): download it again")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError(f"{path}: not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class CropDataset(Dataset):
    """Person crops and heatmap targets from an instance table.

    With `augment` (AugmentParams) each item draws scale s * clip(N(1, f), 1-f, 1+f), rotation
    clip(N(0, r), -2r, 2r) with probability 0.6, and a horizontal flip with probability flip_prob
    (SimpleBaseline); without it, the plain crop. Draws come from a generator seeded by
    (seed, epoch, index): reproducible for any worker count; call `set_epoch` to get new draws.
    `input_color` is the channel order of the backbone the crops feed (`BackboneParams.input_color`).
    """

    def __init__(self, instances: pd.DataFrame, images_dir: str | Path, input_size: tuple[int, int],
                 heatmap_size: tuple[int, int], sigma: float, layout: KeypointLayout,
                 augment: AugmentParams | None = None, seed: int = 0, input_color: ColorOrder | str = ColorOrder.RGB):
        self.rows = instances.reset_index(drop=True)
        self.images_dir = Path(images_dir)
        self.input_size = tuple(input_size)
        self.heatmap_size = tuple(heatmap_size)
        self.sigma = sigma
        self.layout = layout
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.input_color = ColorOrder(input_color)
        self._last: tuple[Path, np.ndarray] | None = None  # `image`'s last decoded file (each worker its own)

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _augment(self, index: int, epoch: int, image: np.ndarray, joints: np.ndarray, center: np.ndarray,
                 scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, bool]:
        """Random scale, rotation and flip; returns (image, joints, center, scale, rotation, flipped)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        sf, rf = self.augment.scale_factor, self.augment.rotation_factor
        scale = scale * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
        rot = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf)) if rng.random() <= 0.6 else 0.0
        flipped = bool(rng.random() < self.augment.flip_prob)
        if flipped:
            width = image.shape[1]
            image = image[:, ::-1]
            joints = flip_joints(joints, width, self.layout.flip_permutation())
            center = np.array([width - 1 - center[0], center[1]])
        return image, joints, center, scale, rot, flipped

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.item(index, self.epoch)

    def image(self, file_name: str) -> np.ndarray:
        """The decoded image (read-only): the last one is kept, so a pass in row order (prepare sorts the
        rows by image: the cache stage, online inference) decodes each image once, not once per person
        (COCO train: 2.6 persons per image, val2017's detector boxes 20; decoding is ~85% of a crop's cost)."""
        path = self.images_dir / file_name
        if self._last is None or self._last[0] != path:
            image = read_rgb(path, DATASET_FORMATS)
            image.flags.writeable = False  # shared by the crops of every person in it
            self._last = (path, image)
        return self._last[1]

    def item(self, index: int, epoch: int) -> dict[str, Tensor]:
        """Crop `index` with the augmentation draws of `epoch` (the plain crop without `augment`)."""
        row = self.rows.iloc[index]
        image = self.image(row["file_name"])
        if image.shape[:2] != (row["height"], row["width"]):
            raise ValueError(f"{self.images_dir / row['file_name']}: image is {image.shape[1]}x{image.shape[0]}, "
                             f"the annotations say {row['width']}x{row['height']} (wrong or damaged file)")
        joints = np.array(row["keypoints"], dtype=np.float64).reshape(-1, 3)  # a writable copy
        if len(joints) != self.layout.num_joints:
            raise ValueError(f"ann {row['ann_id']}: {len(joints)} keypoints, layout "
                             f"{self.layout.name!r} has {self.layout.num_joints}")
        center = np.array([row["center_x"], row["center_y"]], dtype=np.float64)
        scale = np.array([row["scale_w"], row["scale_h"]], dtype=np.float64)
        rot, flipped = 0.0, False
        if self.augment is not None:
            image, joints, center, scale, rot, flipped = self._augment(index, epoch, image, joints, center, scale)
        crop = warp_crop(np.ascontiguousarray(image), center, scale, rot, self.input_size)
        to_heatmap = affine_matrix(center, scale, rot, self.heatmap_size)
        hm_joints = torch.from_numpy(apply_affine(joints[:, :2], to_heatmap)).float()
        visible = torch.from_numpy(joints[:, 2]).float()
        target, weight = encode_targets(hm_joints[None], visible[None], self.heatmap_size, self.sigma)
        return {
            "image": ImageNorm.to_tensor(crop, self.input_color),
            "target": target[0],
            "target_weight": weight[0],
            "joints": torch.cat([hm_joints, visible[:, None]], dim=1),
            "center": torch.from_numpy(center).float(),
            "scale": torch.from_numpy(scale).float(),
            "image_id": torch.tensor(int(row["image_id"])),
            "ann_id": torch.tensor(int(row["ann_id"])),
            "score": torch.tensor(float(row["score"])),
            "bbox": torch.tensor([row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]], dtype=torch.float32),
            # the augmentation drawn: with these, an augmented crop maps back to the image
            # (a flipped crop's center is in the mirrored image, x' = width - 1 - x)
            "rotation": torch.tensor(rot, dtype=torch.float64),
            "flipped": torch.tensor(int(flipped)),
        }


class ViewCrops(Dataset):
    """`views` crops of every instance, interleaved: item i * views + v is view v of instance i,
    view 0 the plain crop and v >= 1 the augmentation draw of `epoch` v (seeded: reproducible)."""

    def __init__(self, plain: CropDataset, augmented: CropDataset, views: int):
        self.plain, self.augmented, self.views = plain, augmented, views

    def __len__(self) -> int:
        return len(self.plain) * self.views

    def __getitem__(self, j: int) -> dict:
        i, v = divmod(j, self.views)
        return {**(self.plain[i] if v == 0 else self.augmented.item(i, v)), "view": torch.tensor(v)}
