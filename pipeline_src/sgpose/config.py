"""Load and validate `params.yaml`; the one place that knows parameter names and output paths.

Every stage calls `load_params(path, overrides)` and `Paths(params)`: the same file names are used
by `dvc.yaml` and the Snakefile (they interpolate the same keys), so no path is typed twice in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    manifest: str
    raw_dir: str
    images_dir: str
    annotations: str  # train GT when val_annotations is set, else split by prepare.val_fraction
    val_annotations: str | None = None  # official val split (COCO val2017, CrowdPose val): no random split
    image_subdirs: dict[Literal["train", "val"], str] = {}  # per split, under images_dir (COCO: train2017/)


class PrepareParams(_Section):
    val_fraction: float = Field(0.2, gt=0, lt=1)
    split_seed: int = 0
    min_keypoints: int = Field(1, ge=0)
    padding: float = Field(1.25, gt=0)
    boxes: Literal["gt", "detections"] = "gt"  # val split person boxes (train always uses GT boxes)
    detections: str | None = None  # COCO detection results json (boxes: detections)
    det_score_threshold: float = Field(0.0, ge=0)  # SimpleBaseline keeps every AP-56 box (IMAGE_THRE 0.0)
    min_box_area: float = Field(0.0, ge=0)  # detections with w * h below this are dropped

    @model_validator(mode="after")
    def _detections_file(self) -> "PrepareParams":
        if self.boxes == "detections" and not self.detections:
            raise ValueError("prepare.boxes is detections but prepare.detections names no file")
        return self


class BackboneParams(_Section):
    name: str
    arch: Literal["simple_baseline", "hrnet"] = "simple_baseline"
    depth: Literal[18, 34, 50, 101, 152] = 50  # simple_baseline only
    width: Literal[32, 48] = 32  # hrnet only
    deconv_channels: int = Field(256, gt=0)
    input_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] = (64, 48)
    sigma: float = Field(2.0, gt=0)
    checkpoint: str | None = None

    @model_validator(mode="after")
    def _stride_four(self) -> "BackboneParams":
        h, w = self.input_size
        if h % 32 or w % 32:
            raise ValueError(f"input_size {self.input_size} must be multiples of 32 "
                             "(ResNet stride 32, three x2 deconvs; HRNet's lowest branch at stride 32)")
        if (h // 4, w // 4) != tuple(self.heatmap_size):
            raise ValueError(f"heatmap_size {self.heatmap_size} must be input_size {self.input_size} / 4")
        return self

    @property
    def heatmap_sigma(self) -> float:
        """Gaussian sigma at this heatmap size: `sigma` is quoted at 64x48 (SPEC 2)."""
        return self.sigma * self.heatmap_size[1] / 48.0


class TrainBackboneParams(_Section):
    epochs: int = Field(30, ge=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    lr_steps: list[int] = []
    seed: int = 0
    flip_prob: float = Field(0.5, ge=0, le=1)
    scale_factor: float = Field(0.35, ge=0, lt=1)
    rotation_factor: float = Field(45, ge=0)
    num_workers: int = Field(0, ge=0)


class CacheParams(_Section):
    batch_size: int = Field(32, gt=0)
    dtype: Literal["float16", "float32"] = "float16"
    flip_test: bool = True  # also store the mirrored crop's outputs (flip/*) for the val split
    shard_size: int = Field(0, ge=0)  # samples per shard file (0: one shard); sgpose.shards
    compression: Literal["none", "gzip", "lzf"] = "gzip"  # of the large datasets (docs/scale.md)


class GuidanceParams(_Section):
    S: int = Field(3, ge=1, le=16)
    schedule: Literal["cosine", "linear"] = "cosine"
    start_pose: Literal["canonical", "mean"] = "canonical"  # mean: the `start_pose` stage's artifact
    missing: Literal["literal", "keep_start", "blank"] = "literal"
    pred_threshold: float = Field(0.2, ge=0)
    a2_map: Literal["rendered", "raw"] = "rendered"  # A2's static map: Gaussian of P_pred, or Y0 itself
    a3_steps: Literal["clamp", "per_map"] = "clamp"  # A3: T = S+2 with H(t) = G^clamp(t-1), or T = S, H(t) = G^t

    @property
    def T(self) -> int:
        """Number of refinement steps, T = S + 2 (SPEC 2)."""
        return self.S + 2


class RefinerParams(_Section):
    base_channels: int = Field(32, gt=0)
    channel_mults: list[int] = [1, 2, 4]
    time_dim: int = Field(64, gt=0)
    prev_heatmap: bool = False  # also input the previous step's heatmap (Y0 at the first step)


class TrainRefinerParams(_Section):
    epochs: int = Field(40, ge=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-4, gt=0)
    seed: int = 0
    num_workers: int = Field(0, ge=0)  # cache reader processes (sgpose.data.cache_loader)


class InferParams(_Section):
    mode: Literal["static", "recursive", "recursive_from_pred"] = "static"  # SPEC 5 readings
    batch_size: int = Field(64, gt=0)
    flip_test: bool = True  # average with the mirrored crop's output where the cache holds flip/*


class EvaluateParams(_Section):
    split: Literal["train", "val"] = "val"
    backend: Literal["pycocotools", "faster_coco_eval"] = "pycocotools"  # identical numbers (tested)
    nms_threshold: float = Field(0.9, gt=0, le=1)  # OKS-NMS per image, detection-box runs only


class ReportParams(_Section):
    fig2_joint: str = "left_wrist"


class Params(_Section):
    dataset: str
    layout: Literal["coco", "crowdpose"] = "coco"
    variants: list[Literal["A1", "A2", "A3", "A4", "ours"]] = Field(["ours"], min_length=1)  # refined
    data: DataParams
    prepare: PrepareParams = PrepareParams()
    backbone: BackboneParams
    train_backbone: TrainBackboneParams = TrainBackboneParams()
    cache: CacheParams = CacheParams()
    guidance: GuidanceParams = GuidanceParams()
    refiner: RefinerParams = RefinerParams()
    train_refiner: TrainRefinerParams = TrainRefinerParams()
    infer: InferParams = InferParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()

    @model_validator(mode="after")
    def _unique_variants(self) -> "Params":
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants {self.variants} lists a variant twice")
        return self


class ParamsError(ValueError):
    """A params file that cannot be read or does not validate; the message names the file."""


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (`2`, `[1,2]`, `null`)."""
    if "=" not in assignment:
        raise ParamsError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    *parents, leaf = key.strip().split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ParamsError(f"--set {key}: {part!r} is not a parameter section")
        node = node[part]
    node[leaf] = yaml.safe_load(raw)


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Read, override and validate a params file; errors name the file and the offending keys."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter sections")
    for assignment in overrides or []:
        apply_override(tree, assignment)
    try:
        return Params.model_validate(tree)
    except ValidationError as err:
        raise ParamsError(f"{path}: invalid parameters:\n{err}") from None


class Paths:
    """Output locations of every stage, derived from params (mirrored by dvc.yaml and the Snakefile)."""

    def __init__(self, params: Params, root: str | Path = "."):
        self.root = Path(root)
        self.results = self.root / "results"
        self.dataset = self.results / params.dataset
        self.backbone_dir = self.dataset / params.backbone.name

    def instances(self, split: str) -> Path:
        return self.dataset / f"instances_{split}.parquet"

    def split_annotations(self, split: str) -> Path:
        """COCO-format ground truth restricted to one split's images (what evaluate scores against)."""
        return self.dataset / f"annotations_{split}.json"

    @property
    def backbone(self) -> Path:
        return self.backbone_dir / "backbone.pt"

    @property
    def backbone_log(self) -> Path:
        return self.backbone_dir / "train_log.csv"

    def cache(self, split: str) -> Path:
        return self.backbone_dir / "cache" / f"{split}.h5"

    @property
    def start_pose(self) -> Path:
        """The mean training pose in crop coordinates (`guidance.start_pose: mean`)."""
        return self.backbone_dir / "start_pose.json"

    def variant_dir(self, variant: str) -> Path:
        return self.backbone_dir / variant

    def refiner(self, variant: str) -> Path:
        return self.variant_dir(variant) / "refiner.pt"

    def refiner_log(self, variant: str) -> Path:
        return self.variant_dir(variant) / "train_log.csv"

    def keypoints(self, variant: str, split: str) -> Path:
        return self.variant_dir(variant) / f"{split}_keypoints.json"

    def metrics(self, variant: str) -> Path:
        return self.variant_dir(variant) / "metrics.json"

    @property
    def report(self) -> Path:
        return self.results / "report"
