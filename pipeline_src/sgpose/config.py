"""Load and validate `params.yaml`; the one place that knows parameter names and output paths.

The file describes the whole experiment grid (one DAG for DVC and Snakemake):

    datasets   name -> keypoint layout, data files, how instances are prepared
    backbones  name -> the dataset it runs on, architecture, weights, evaluation splits;
               every backbone gets `baseline` and `ours` (Tables 2-4)
    ablation   the extra refined variants (A1-A4, sweeps) of one backbone (Table 1, Figs. 4-6); its
               backbone is the primary one (the report's figures; a stage's default)
    ...        one section per stage, shared by every backbone (train_backbone, cache, guidance, ...)

A stage works on one dataset or one backbone: `load_params(path, overrides, backbone=..., dataset=...)`
returns the `Params` view of that selection (`params.backbone`, `params.data`, ... of it), and
`Paths(params)` its files, the same names `dvc.yaml` and the Snakefile use.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sgpose.resources import ResourcesParams
from sgpose.variants import BASELINE, Variant, check_name, get_variant

Split = Literal["train", "val", "val_det"]
EvalSplit = Literal["val", "val_det"]  # val: ground-truth boxes; val_det: detector boxes (Table 4)
SPLITS: tuple[str, ...] = get_args(Split)
DET_SPLIT = "val_det"  # val's images with detector boxes: val's images and ground truth


def gt_split(split: str) -> str:
    """The split whose images and ground truth `split` uses (val_det: val's)."""
    return "val" if split == DET_SPLIT else split


# dataset and backbone names become directories, DVC stage names and Snakemake wildcard values
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = {"datasets": ("metrics", "report", "predict", "test-artifacts"),  # beside them in results/
            "backbones": ("prepared",)}  # beside them in results/<dataset>/


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentParams(_Section):
    """Random scale, rotation and flip of a training crop (SimpleBaseline's recipe)."""

    flip_prob: float = Field(0.5, ge=0, le=1)
    scale_factor: float = Field(0.35, ge=0, lt=1)  # scale * clip(N(1, f), 1 - f, 1 + f)
    rotation_factor: float = Field(45, ge=0)  # degrees, clip(N(0, r), -2r, 2r), with probability 0.6


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
    aspect_ratio: float = Field(0.75, gt=0)  # crop width / height; every backbone of the dataset has it
    detections: str | None = None  # person detections json: the val_det split (Table 4)
    det_score_threshold: float = Field(0.0, ge=0)  # SimpleBaseline keeps every AP-56 box (IMAGE_THRE 0.0)
    min_box_area: float = Field(0.0, ge=0)  # detections with w * h below this are dropped


class DatasetParams(_Section):
    layout: Literal["coco", "crowdpose"] = "coco"  # keypoint layout (sgpose.keypoints)
    data: DataParams
    prepare: PrepareParams = PrepareParams()


class TrainBackboneParams(_Section):
    epochs: int = Field(30, ge=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    lr_steps: list[int] = []
    seed: int = 0
    augment: AugmentParams = AugmentParams()
    num_workers: int = Field(0, ge=0)


class BackboneParams(_Section):
    name: str = ""  # its key in `backbones` (filled in on load)
    dataset: str = ""  # a key of `datasets` (required in a params file; checked there)
    arch: Literal["simple_baseline", "hrnet"] = "simple_baseline"
    depth: Literal[18, 34, 50, 101, 152] = 50  # simple_baseline only
    width: Literal[32, 48] = 32  # hrnet only
    deconv_channels: int = Field(256, gt=0)
    input_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] = (64, 48)
    sigma: float = Field(2.0, gt=0)
    checkpoint: str | None = None
    evals: list[EvalSplit] = Field(["val"], min_length=1)  # splits baseline and ours are scored on (Params.evals_of)
    train: dict[str, Any] = {}  # this backbone's overrides of the train_backbone section

    @model_validator(mode="after")
    def _stride_four(self) -> "BackboneParams":
        h, w = self.input_size
        if h % 32 or w % 32:
            raise ValueError(f"input_size {self.input_size} must be multiples of 32 "
                             "(ResNet stride 32, three x2 deconvs; HRNet's lowest branch at stride 32)")
        if (h // 4, w // 4) != tuple(self.heatmap_size):
            raise ValueError(f"heatmap_size {self.heatmap_size} must be input_size {self.input_size} / 4")
        if len(set(self.evals)) != len(self.evals):
            raise ValueError(f"evals {self.evals} lists a split twice")
        return self

    @property
    def heatmap_sigma(self) -> float:
        """Gaussian sigma at this heatmap size: `sigma` is quoted at 64x48 (SPEC 2)."""
        return self.sigma * self.heatmap_size[1] / 48.0


class AblationParams(_Section):
    dataset: str  # the backbone's dataset (DVC builds paths from it; checked)
    backbone: str  # the primary backbone
    variants: list[str] = []  # refined variants besides `ours`: A1-A4, ours_S<k>, ours_<schedule>; may be empty

    @field_validator("variants")
    @classmethod
    def _names(cls, variants: list[str]) -> list[str]:
        for name in variants:
            check_name(name)
        if len(set(variants)) != len(variants) or BASELINE in variants or "ours" in variants:
            raise ValueError(f"ablation.variants {variants}: each once; baseline and ours run for every backbone")
        return variants


class CacheParams(_Section):
    batch_size: int = Field(32, gt=0)
    dtype: Literal["float16", "float32"] = "float16"
    flip_test: bool = True  # also store the mirrored crop's outputs (flip/*) for the evaluation splits
    shards: dict[Split, int] = {}  # shard files per split (default 1; Snakemake: a job each)
    compression: Literal["none", "gzip", "lzf", "lz4", "blosc_lz4", "blosc_zstd"] = "lz4"  # docs/scale.md
    feature_levels: list[int] | None = None  # backbone feature levels to store (None: all); 0 = highest resolution
    train_views: int = Field(1, ge=1)  # cached views per training instance: the plain crop + augmented ones
    augment: AugmentParams = AugmentParams()  # how views >= 1 are drawn

    @field_validator("shards")
    @classmethod
    def _positive(cls, shards: dict) -> dict:
        if any(n < 1 for n in shards.values()):
            raise ValueError(f"cache.shards {shards}: at least one shard per split")
        return shards

    @field_validator("feature_levels")
    @classmethod
    def _levels(cls, levels: list[int] | None) -> list[int] | None:
        if levels is not None and (not levels or levels != sorted(set(levels)) or levels[0] < 0):
            raise ValueError(f"cache.feature_levels {levels}: distinct levels >= 0 in increasing order")
        return levels

    def num_shards(self, split: str) -> int:
        """Shard files of one split (1 unless `shards` says otherwise)."""
        return self.shards.get(split, 1)


class ComputeParams(_Section):
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda | cuda:N
    amp: Literal["bf16", "fp16", "off"] = "bf16"  # autocast dtype on CUDA (never on CPU)
    channels_last: bool = True  # NHWC tensors on CUDA (never on CPU)


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

    def for_variant(self, variant: Variant) -> "GuidanceParams":
        """The section as a variant sees it: a sweep's S or schedule (Figs. 5-6) applied, validated."""
        update = {k: getattr(variant, k) for k in ("S", "schedule") if getattr(variant, k) is not None}
        return GuidanceParams.model_validate(self.model_dump() | update) if update else self


class RefinerParams(_Section):
    base_channels: int = Field(32, gt=0)
    channel_mults: list[int] = [1, 2, 4]  # one UNet level per cached backbone feature level
    time_dim: int = Field(64, gt=0)
    prev_heatmap: bool = False  # also input the previous step's heatmap (Y0 at the first step)


class TrainRefinerParams(_Section):
    epochs: int = Field(40, ge=0)
    batch_size: int = Field(32, gt=0)  # global: split over `devices` processes
    lr: float = Field(1e-4, gt=0)
    seed: int = 0
    features: Literal["cache", "online"] = "cache"  # online: run the frozen backbone on augmented crops
    num_workers: int = Field(0, ge=0)  # cache reader (or image decoding) processes
    preload_gb: float = Field(2.0, ge=0)  # read the whole training cache into memory when it is this small
    devices: int = Field(1, ge=1)  # DDP processes (torchrun): one per GPU, or gloo processes on CPU

    @model_validator(mode="after")
    def _a_sample_per_process(self) -> "TrainRefinerParams":
        if self.batch_size < self.devices:
            raise ValueError(f"train_refiner.batch_size {self.batch_size} is the global batch: it must be at least "
                             f"train_refiner.devices ({self.devices}), or some processes get no sample")
        return self


class InferParams(_Section):
    mode: Literal["static", "recursive", "recursive_from_pred"] = "static"  # SPEC 5 readings
    batch_size: int = Field(64, gt=0)
    flip_test: bool = True  # average with the mirrored crop's output where the cache holds flip/*


class EvaluateParams(_Section):
    backend: Literal["pycocotools", "faster_coco_eval"] = "pycocotools"  # identical numbers (tested)
    nms_threshold: float = Field(0.9, gt=0, le=1)  # OKS-NMS per image, detection-box splits only


class ReportParams(_Section):
    fig2_joint: str = "left_wrist"


class ParamsFile(_Section):
    """The whole params.yaml."""

    datasets: dict[str, DatasetParams] = Field(min_length=1)
    backbones: dict[str, BackboneParams] = Field(min_length=1)
    ablation: AblationParams
    train_backbone: TrainBackboneParams = TrainBackboneParams()
    cache: CacheParams = CacheParams()
    compute: ComputeParams = ComputeParams()
    guidance: GuidanceParams = GuidanceParams()
    refiner: RefinerParams = RefinerParams()
    train_refiner: TrainRefinerParams = TrainRefinerParams()
    infer: InferParams = InferParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    resources: ResourcesParams = ResourcesParams()  # job sizes (sgpose.resources)

    @model_validator(mode="before")
    @classmethod
    def _backbone_names(cls, tree: Any) -> Any:
        if isinstance(tree, dict) and isinstance(tree.get("backbones"), dict):
            tree = {**tree, "backbones": {k: {**v, "name": k} if isinstance(v, dict) else v
                                          for k, v in tree["backbones"].items()}}
        return tree

    @model_validator(mode="after")
    def _consistent(self) -> "ParamsFile":
        for section, reserved in RESERVED.items():
            for name in getattr(self, section):
                if not NAME.match(name) or name in reserved:
                    raise ValueError(f"{section}.{name}: a name is letters, digits, '_', '.', '-' (not first), and "
                                     f"not one of {', '.join(reserved)} (they share its directory)")
        for name, bp in self.backbones.items():
            if bp.dataset not in self.datasets:
                raise ValueError(f"backbones.{name}.dataset {bp.dataset!r} is not in datasets ({', '.join(self.datasets)})")
            prep = self.datasets[bp.dataset].prepare
            h, w = bp.input_size
            if abs(w / h - prep.aspect_ratio) > 1e-6:
                raise ValueError(f"backbones.{name}.input_size {list(bp.input_size)} has aspect {w / h:.4g}, "
                                 f"datasets.{bp.dataset}.prepare.aspect_ratio is {prep.aspect_ratio}")
            if DET_SPLIT in bp.evals and not prep.detections:
                raise ValueError(f"backbones.{name}.evals has val_det but datasets.{bp.dataset}.prepare.detections "
                                 "names no detection file")
            self.train_backbone_of(name)  # the overrides validate
        a = self.ablation
        for name in a.variants:  # a sweep's guidance value is a guidance value: the same bounds
            try:
                self.guidance.for_variant(get_variant(name))
            except ValidationError as err:
                raise ValueError(f"ablation.variants {name}: {err.errors()[0]['msg']}") from None
        if a.backbone not in self.backbones:
            raise ValueError(f"ablation.backbone {a.backbone!r} is not in backbones ({', '.join(self.backbones)})")
        if self.backbones[a.backbone].dataset != a.dataset:
            raise ValueError(f"ablation.dataset {a.dataset!r}: backbone {a.backbone} runs on "
                             f"{self.backbones[a.backbone].dataset!r}")
        if "val" not in self.backbones[a.backbone].evals:
            raise ValueError(f"backbones.{a.backbone}.evals must include val: Table 1 and Figs. 2, 4-9 of the "
                             "ablation are scored on the ground-truth boxes")
        unused = [d for d in self.datasets if all(bp.dataset != d for bp in self.backbones.values())]
        if unused:
            raise ValueError(f"datasets {', '.join(unused)}: no backbone in backbones runs on it (the DAG would "
                             "download and prepare it for nothing)")
        return self

    def train_backbone_of(self, backbone: str) -> TrainBackboneParams:
        """The train_backbone section with this backbone's `train` overrides applied."""
        overrides = self.backbones[backbone].train
        if not overrides:
            return self.train_backbone
        try:
            return TrainBackboneParams.model_validate(_merge(self.train_backbone.model_dump(), overrides))
        except ValidationError as err:
            raise ValueError(f"backbones.{backbone}.train: {err}") from None

    def variants_of(self, backbone: str) -> list[str]:
        """The refined variants a backbone trains: `ours`, and the ablation's when it is the ablation backbone."""
        return ["ours", *(self.ablation.variants if self.ablation.backbone == backbone else [])]

    def primary(self) -> str:
        """The backbone stages use when none is named: the ablation's."""
        return self.ablation.backbone


class Params:
    """The parameters of one selected backbone (and its dataset): what a stage reads.

    `backbone`, `dataset`, `layout`, `data`, `prepare` and `train_backbone` are the selection's;
    the other sections are shared; `file` is the whole validated file.
    """

    def __init__(self, file: ParamsFile, backbone: str | None = None, dataset: str | None = None):
        if backbone is not None and backbone not in file.backbones:
            raise ParamsError(f"--backbone {backbone}: not in backbones ({', '.join(file.backbones)})")
        if dataset is not None and dataset not in file.datasets:
            raise ParamsError(f"--dataset {dataset}: not in datasets ({', '.join(file.datasets)})")
        if backbone is None:
            on = [b for b, bp in file.backbones.items() if dataset in (None, bp.dataset)]
            if not on:
                raise ParamsError(f"dataset {dataset} has no backbone in backbones")
            backbone = file.primary() if file.primary() in on else on[0]
        if dataset is not None and file.backbones[backbone].dataset != dataset:
            raise ParamsError(f"--backbone {backbone} runs on dataset {file.backbones[backbone].dataset}, not {dataset}")
        self.file = file
        self.backbone: BackboneParams = file.backbones[backbone]
        self.dataset: str = self.backbone.dataset
        ds = file.datasets[self.dataset]
        self.layout: str = ds.layout
        self.data: DataParams = ds.data
        self.prepare: PrepareParams = ds.prepare
        self.train_backbone: TrainBackboneParams = file.train_backbone_of(backbone)
        self.variants: list[str] = file.variants_of(backbone)
        self.cache: CacheParams = file.cache
        self.compute: ComputeParams = file.compute
        self.guidance: GuidanceParams = file.guidance
        self.refiner: RefinerParams = file.refiner
        self.train_refiner: TrainRefinerParams = file.train_refiner
        self.infer: InferParams = file.infer
        self.evaluate: EvaluateParams = file.evaluate
        self.report: ReportParams = file.report

    @property
    def evals(self) -> list[str]:
        """The evaluation splits of the selected backbone (`val`, `val_det`)."""
        return list(self.backbone.evals)

    def evals_of(self, variant: str) -> list[str]:
        """The splits a variant is scored on: baseline and ours on every evaluation split of the
        backbone; the ablation's variants (Table 1, Figs. 5-6) on `val` (ground-truth boxes) only."""
        return self.evals if variant in (BASELINE, "ours") else ["val"]

    @property
    def splits(self) -> list[str]:
        """Every split the selected backbone caches: train, then its evaluation splits."""
        return ["train", *self.backbone.evals]

    def model_dump(self, **kwargs) -> dict:
        """The whole file as plain data."""
        return self.file.model_dump(**kwargs)


class ParamsError(ValueError):
    """A params file that cannot be read or does not validate; the message names the file."""


def _merge(base: dict, update: dict) -> dict:
    """`base` with `update` merged in recursively (a copy)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _alias(key: str, tree: dict, backbone: str | None, dataset: str | None) -> str:
    """`backbone.x` -> `backbones.<selected>.x`; `data.x`, `prepare.x`, `layout` -> `datasets.<selected>.`.

    The selection is the named one, else the file's primary (ablation) backbone and its dataset."""
    head = key.split(".", 1)[0]
    if head not in ("backbone", "data", "prepare", "layout"):
        return key
    backbones = tree.get("backbones") or {}
    if backbone is None:
        ablation = tree.get("ablation") or {}
        on = [b for b, v in backbones.items() if dataset is None or (v or {}).get("dataset") == dataset]
        backbone = ablation.get("backbone") if ablation.get("backbone") in on else (on or [None])[0]
    if head == "backbone":
        if backbone is None:
            raise ParamsError(f"--set {key}: no backbone selected")
        return f"backbones.{backbone}{key[len(head):]}"
    dataset = dataset or (backbones.get(backbone) or {}).get("dataset")
    if dataset is None:
        raise ParamsError(f"--set {key}: no dataset selected")
    return f"datasets.{dataset}.{key}"


def apply_override(tree: dict[str, Any], assignment: str, backbone: str | None = None,
                   dataset: str | None = None) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (`2`, `[1,2]`, `null`).

    `backbone.*`, `data.*`, `prepare.*` and `layout` address the selected backbone and its dataset."""
    if "=" not in assignment:
        raise ParamsError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    *parents, leaf = _alias(key.strip(), tree, backbone, dataset).split(".")
    node = tree
    for part in parents:  # an absent section starts empty (its defaults apply); an unknown one fails validation
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"--set {key}: {part!r} is not a parameter section")
    node[leaf] = yaml.safe_load(raw)


def read_params_file(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                     backbone: str | None = None, dataset: str | None = None) -> ParamsFile:
    """Read, override and validate a whole params file; errors name the file and the offending keys."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter sections")
    for flag, name, section in (("--backbone", backbone, "backbones"), ("--dataset", dataset, "datasets")):
        known = tree.get(section) if isinstance(tree.get(section), dict) else {}
        if name is not None and name not in known:  # before --set creates it
            raise ParamsError(f"{path}: {flag} {name}: not in {section} ({', '.join(known)})")
    for assignment in overrides or []:
        apply_override(tree, assignment, backbone, dataset)
    try:
        return ParamsFile.model_validate(tree)
    except ValidationError as err:
        raise ParamsError(f"{path}: invalid parameters:\n{err}") from None


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                backbone: str | None = None, dataset: str | None = None) -> Params:
    """The validated parameters of one backbone (default: the primary one, or the first of `dataset`)."""
    file = read_params_file(path, overrides, backbone, dataset)
    try:
        return Params(file, backbone, dataset)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None


class Paths:
    """Output locations of every stage, derived from params (mirrored by dvc.yaml and the Snakefile)."""

    def __init__(self, params: Params, root: str | Path = "."):
        self._place(root, params.dataset, params.backbone.name)

    @classmethod
    def of(cls, dataset: str, backbone: str, root: str | Path = ".") -> "Paths":
        """The paths of any (dataset, backbone) directory pair, e.g. a run the report found under results/."""
        paths = cls.__new__(cls)
        paths._place(root, dataset, backbone)
        return paths

    def _place(self, root: str | Path, dataset: str, backbone: str) -> None:
        self.root = Path(root)
        self.results = self.root / "results"
        self.dataset = self.results / dataset
        self.backbone_dir = self.dataset / backbone

    @property
    def download_stamp(self) -> Path:
        """What `download` verified for this dataset (every file's checksum): the stage's tracked output."""
        return self.dataset / "download.json"

    @property
    def prepared(self) -> Path:
        """The `prepare` stage's directory: instance tables and ground truth per split."""
        return self.dataset / "prepared"

    def instances(self, split: str) -> Path:
        return self.prepared / f"instances_{split}.parquet"

    def split_annotations(self, split: str) -> Path:
        """COCO-format ground truth of one split's images (what evaluate scores; val_det: val's)."""
        return self.prepared / f"annotations_{gt_split(split)}.json"

    @property
    def backbone(self) -> Path:
        return self.backbone_dir / "backbone.pt"

    @property
    def backbone_log(self) -> Path:
        return self.backbone_dir / "train_log.csv"

    @property
    def cache_dir(self) -> Path:
        return self.backbone_dir / "cache"

    def cache(self, split: str) -> Path:
        return self.cache_dir / f"{split}.h5"

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

    def predictions_dir(self, variant: str) -> Path:
        return self.variant_dir(variant) / "predictions"

    def keypoints(self, variant: str, split: str) -> Path:
        """One split's predictions in COCO results format."""
        return self.predictions_dir(variant) / f"{split}.json"

    def metrics(self, variant: str) -> Path:
        """{split: COCO / CrowdPose metrics} of one variant (DVC metrics), in the one directory that
        collects every evaluation: results/metrics/<dataset>/<backbone>/<variant>.json."""
        return self.results / "metrics" / self.dataset.name / self.backbone_dir.name / f"{variant}.json"

    @property
    def report(self) -> Path:
        return self.results / "report"
