"""Keypoint layouts (COCO-17, CrowdPose-14): the one source of names, flip pairs, skeleton,
OKS sigmas and the canonical start pose of the guidance sequence (docs/method.md §2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeypointLayout:
    """Everything that depends on which joints a dataset labels."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]  # OKS per-keypoint sigmas (COCO / CrowdPose toolkits)
    canonical: tuple[tuple[float, float], ...]  # start pose, (x/w, y/h) in the crop, facing the camera

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, joint: str) -> int:
        try:
            return self.names.index(joint)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {joint!r}; joints: {', '.join(self.names)}") from None

    def flip_permutation(self) -> np.ndarray:
        """perm[k] = the joint that k becomes under a horizontal flip."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def canonical_pose(self, heatmap_size: tuple[int, int]) -> np.ndarray:
        """The fixed standing pose P_start in heatmap pixels (x, y) for a (h, w) heatmap: (K, 2)."""
        h, w = heatmap_size
        return np.asarray(self.canonical, dtype=np.float32) * np.array([w - 1, h - 1], dtype=np.float32)


# Standing person, arms hanging, seen from the front (the person's left is the image's right),
# filling the 1.25-padded box: head top at y = 0.1, ankles at y = 0.88. The paper gives no numbers.
_BODY = {
    "left_shoulder": (0.63, 0.27), "right_shoulder": (0.37, 0.27),
    "left_elbow": (0.66, 0.41), "right_elbow": (0.34, 0.41),
    "left_wrist": (0.67, 0.56), "right_wrist": (0.33, 0.56),
    "left_hip": (0.58, 0.54), "right_hip": (0.42, 0.54),
    "left_knee": (0.58, 0.71), "right_knee": (0.42, 0.71),
    "left_ankle": (0.58, 0.88), "right_ankle": (0.42, 0.88),
}
_HEAD = {
    "nose": (0.50, 0.16), "left_eye": (0.53, 0.14), "right_eye": (0.47, 0.14),
    "left_ear": (0.57, 0.15), "right_ear": (0.43, 0.15),
    "head_top": (0.50, 0.10), "neck": (0.50, 0.24),
}


def _layout(name, names, skeleton_names, sigmas) -> KeypointLayout:
    idx = {n: i for i, n in enumerate(names)}
    pairs = tuple(
        (idx[n], idx["right_" + n[5:]]) for n in names if n.startswith("left_")
    )
    coords = {**_BODY, **_HEAD}
    return KeypointLayout(
        name=name,
        names=tuple(names),
        flip_pairs=pairs,
        skeleton=tuple((idx[a], idx[b]) for a, b in skeleton_names),
        sigmas=tuple(sigmas),
        canonical=tuple(coords[n] for n in names),
    )


_LIMBS = (
    ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"),
)

COCO = _layout(
    "coco",
    ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
     "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
     "left_knee", "right_knee", "left_ankle", "right_ankle"],
    _LIMBS + (("left_eye", "right_eye"), ("nose", "left_eye"), ("nose", "right_eye"),
              ("left_eye", "left_ear"), ("right_eye", "right_ear"), ("left_ear", "left_shoulder"),
              ("right_ear", "right_shoulder")),
    np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10,
)

CROWDPOSE = _layout(
    "crowdpose",
    ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
     "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
     "head_top", "neck"],
    _LIMBS + (("head_top", "neck"), ("right_shoulder", "neck"), ("left_shoulder", "neck")),
    np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10,
)

LAYOUTS: dict[str, KeypointLayout] = {layout.name: layout for layout in (COCO, CROWDPOSE)}


def get_layout(name: str) -> KeypointLayout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {', '.join(LAYOUTS)}") from None
