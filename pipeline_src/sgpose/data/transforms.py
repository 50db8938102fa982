"""Crop geometry of top-down pose estimation (SimpleBaseline/HRNet conventions).

A crop is (center (2,), scale (2,), rotation): `scale` is the crop's (w, h) in image pixels
(mmpose's `scale * 200`), already aspect-corrected and padded. A point maps to the output by
    x_out = (x - c_x) * w_out / s_w + w_out / 2   (rotated about the centre when rot != 0)
"""

from __future__ import annotations

import cv2
import numpy as np


def box_to_center_scale(bbox: np.ndarray, aspect: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, w, h) boxes (..., 4) -> centres and (w, h) scales with w/h = aspect, enlarged by `padding`."""
    bbox = np.asarray(bbox, dtype=np.float64)
    x, y, w, h = np.moveaxis(bbox, -1, 0)
    center = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    w_fit = np.where(w > aspect * h, w, h * aspect)
    h_fit = np.where(w > aspect * h, w / aspect, h)
    return center, np.stack([w_fit, h_fit], axis=-1) * padding


def affine_matrix(center, scale, rot: float, output_size: tuple[int, int], inverse: bool = False) -> np.ndarray:
    """2x3 matrix mapping image -> output (h, w) crop, or back with `inverse`; rot in degrees."""
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    h_out, w_out = output_size
    theta = np.deg2rad(rot)
    sx, sy = w_out / s[0], h_out / s[1]
    cos, sin = np.cos(theta), np.sin(theta)
    # out = R(rot) * diag(sx, sy) * (p - c) + (w_out/2, h_out/2); rotation counter-clockwise in the image
    lin = np.array([[cos * sx, sin * sy], [-sin * sx, cos * sy]])
    offset = np.array([w_out / 2, h_out / 2]) - lin @ c
    mat = np.concatenate([lin, offset[:, None]], axis=1)
    return cv2.invertAffineTransform(mat) if inverse else mat


def apply_affine(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply a 2x3 matrix to points (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ mat[:, :2].T + mat[:, 2]


def warp_crop(image: np.ndarray, center, scale, rot: float, output_size: tuple[int, int]) -> np.ndarray:
    """Crop an (H, W, 3) image to output_size (h, w) with bilinear interpolation, zero padding."""
    mat = affine_matrix(center, scale, rot, output_size)
    h, w = output_size
    return cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR)


def heatmap_to_image(coords: np.ndarray, center: np.ndarray, scale: np.ndarray, heatmap_size: tuple[int, int]) -> np.ndarray:
    """Joints (N, K, 2) in heatmap pixels of unrotated crops -> image pixels (vectorised)."""
    h, w = heatmap_size
    center = np.asarray(center, dtype=np.float64)[:, None, :]
    scale = np.asarray(scale, dtype=np.float64)[:, None, :]
    size = np.array([w, h], dtype=np.float64)
    return (np.asarray(coords, dtype=np.float64) - size / 2) * scale / size + center


def image_to_heatmap(points: np.ndarray, center: np.ndarray, scale: np.ndarray, heatmap_size: tuple[int, int]) -> np.ndarray:
    """Inverse of heatmap_to_image for unrotated crops: image pixels (N, K, 2) -> heatmap pixels."""
    h, w = heatmap_size
    center = np.asarray(center, dtype=np.float64)[:, None, :]
    scale = np.asarray(scale, dtype=np.float64)[:, None, :]
    size = np.array([w, h], dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - center) * size / scale + size / 2


def flip_joints(joints: np.ndarray, width: int, flip_perm: np.ndarray) -> np.ndarray:
    """Mirror joints (..., K, D>=2) horizontally inside an image/crop of `width` and swap left/right."""
    out = np.array(joints, dtype=np.float64, copy=True)
    out[..., 0] = width - 1 - out[..., 0]
    return out[..., flip_perm, :]
