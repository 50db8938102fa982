"""The schema of `params.yaml`: one pydantic section per part of the file, validated as a whole.

The file describes the whole experiment grid (one DAG for DVC and Snakemake):

    datasets   name -> keypoint layout, data files, how instances are prepared
    backbones  name -> the dataset it runs on, architecture, weights, evaluation splits;
               every backbone gets `baseline`, `baseline_dark` and `ours` (Tables 2-4)
    ablation   the extra refined variants (A1-A4, sweeps) of one backbone (Table 1, Figs. 4-6); its
               backbone is the primary one (the report's figures; a stage's default)
    ...        one section per stage, shared by every backbone (train_backbone, cache, guidance, ...)

`sgpose.config.selection` reads a file into `ParamsFile` and selects one backbone's view of it.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from sgpose.config.controlled import EvidenceParams, PerturbParams
from sgpose.config.resources import ResourcesChange
from sgpose.core.modes import (
    A2Map,
    A3Steps,
    Amp,
    CacheStore,
    ColorOrder,
    Compression,
    CpuNumerics,
    DecodeMode,
    EvalBackend,
    FeatureSource,
    InferenceMode,
    Missing,
    PredDecode,
    RefinerInit,
    Schedule,
    StartPose,
)
from sgpose.core.variants import BASELINE, ORACLE, UNREFINED, Variant, check_name, get_variant, seed_of, unrefined_of

Split = Literal["train", "val", "val_det"]
EvalSplit = Literal["val", "val_det"]  # val: ground-truth boxes; val_det: detector boxes (Table 4)
SPLITS: tuple[str, ...] = get_args(Split)
DET_SPLIT = "val_det"  # val's images with detector boxes: val's images and ground truth


def gt_split(split: str) -> str:
    """The split whose images and ground truth `split` uses (val_det: val's)."""
    return "val" if split == DET_SPLIT else split


DEVICE = r"^(auto|cpu|cuda(:\d+)?)$"  # compute.device values sgpose.runtime.compute.device understands

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


PREPARE_KEYS: tuple[str, ...] = tuple(PrepareParams.model_fields)
DETECTION_KEYS = ("detections", "det_score_threshold", "min_box_area")  # only the val_det split reads them


class DatasetParams(_Section):
    layout: Literal["coco", "crowdpose"] = "coco"  # keypoint layout (sgpose.core.keypoints)
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
    grad_clip_norm: float | None = Field(None, gt=0)  # clip the gradients' 2-norm to this (None: off)


class BackboneParams(_Section):
    name: str = ""  # its key in `backbones` (filled in on load)
    dataset: str = ""  # a key of `datasets` (required in a params file; checked there)
    # oracle | perturbed: a controlled backbone (sgpose.controlled.perturb): Y0 rendered from the ground truth
    # (perturbed: with `perturb`'s synthetic errors), features from the real backbone `features_from`
    arch: Literal["simple_baseline", "hrnet", "oracle", "perturbed"] = "simple_baseline"
    features_from: str | None = None  # controlled only: a trained/imported backbone of the same dataset
    perturb: PerturbParams | None = None  # perturbed only (None: the calibrated defaults)
    evidence: EvidenceParams | None = None  # controlled only: synthetic pose evidence in the features (None: none)
    depth: Literal[18, 34, 50, 101, 152] = 50  # simple_baseline only
    width: Literal[32, 48] = 32  # hrnet only
    deconv_channels: int = Field(256, gt=0)
    input_size: tuple[PositiveInt, PositiveInt] = (256, 192)
    heatmap_size: tuple[PositiveInt, PositiveInt] = (64, 48)
    sigma: float = Field(2.0, gt=0)
    checkpoint: str | None = None
    # channel order of the input tensors: the checkpoint's (a registry checkpoint's must match, models.zoo);
    # bgr for the official SimpleBaseline .pth files (their configs: DATASET.COLOR_RGB false)
    input_color: ColorOrder = ColorOrder.RGB
    train: dict[str, Any] = {}  # this backbone's overrides of the train_backbone section

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
    def controlled(self) -> bool:
        """An oracle or perturbed backbone: no weights of its own, Y0 from the ground truth."""
        return self.arch in ("oracle", "perturbed")

    @property
    def heatmap_sigma(self) -> float:
        """Gaussian sigma at this heatmap size: `sigma` is quoted at 64x48 (docs/method.md §2)."""
        return self.sigma * self.heatmap_size[1] / 48.0


class AblationParams(_Section):
    dataset: str  # the backbone's dataset (DVC builds paths from it; checked)
    backbone: str  # the primary backbone (the report's Table 1 and Fig. 2; a stage's default)
    # every backbone that runs the variants (None: [backbone]); a primary left out runs ours only, and
    # Figs. 4-6 are drawn for the first listed (`figures_on`)
    backbones: list[str] | None = Field(None, min_length=1)
    variants: list[str] = []  # refined variants besides `ours`: A1-A4, ours_S<k>, ours_<schedule>; may be empty
    # seeds of each seeded variant on the backbones that run the ablation (seed 0 is the variant itself; seed k
    # its `<variant>_seed<k>`, trained under train_refiner.seed + k): the report's mean and spread
    seeds: int = Field(1, ge=1, le=99)
    seeded: list[str] | None = None  # the variants trained under `seeds` seeds (None: ours and every one listed)

    @property
    def runs_on(self) -> list[str]:
        """The backbones that train and score the ablation's variants: the primary one first when it is
        one of them (the paper's setting), else `backbones` as listed."""
        if self.backbones is None:
            return [self.backbone]
        return [b for b in self.backbones if b == self.backbone] + [b for b in self.backbones if b != self.backbone]

    @property
    def figures_on(self) -> str:
        """The backbone whose variants Figs. 4-6 draw: the first that runs them (the primary when it does)."""
        return self.runs_on[0]

    @field_validator("seeded")
    @classmethod
    def _seeded(cls, seeded: list[str] | None) -> list[str] | None:
        for name in seeded or []:
            check_name(name)
            if name in UNREFINED:
                raise ValueError(f"ablation.seeded: {name} is computed, not trained: it has no seed")
        return seeded

    def seeded_variants(self) -> list[str]:
        """The extra seeds' variant names (`<variant>_seed<k>`, k = 1..seeds-1) of every seeded variant that runs
        (`seeded` names refined variants; those not among ours and `variants` train nothing)."""
        base = ["ours", *self.variants] if self.seeded is None else [v for v in ["ours", *self.variants]
                                                                    if v in self.seeded]
        return [f"{v}_seed{k}" for v in base for k in range(1, self.seeds)]

    @field_validator("variants")
    @classmethod
    def _names(cls, variants: list[str]) -> list[str]:
        for name in variants:
            check_name(name)
            if seed_of(name)[1]:
                raise ValueError(f"ablation.variants: {name} is a seed of a variant; set ablation.seeds instead")
        if len(set(variants)) != len(variants) or set(UNREFINED) & set(variants) or "ours" in variants:
            raise ValueError(f"ablation.variants {variants}: each once; {', '.join(UNREFINED)} and ours run for "
                             "every backbone")
        return variants


class CacheParams(_Section):
    batch_size: int = Field(32, gt=0)
    dtype: Literal["float16", "float32"] = "float16"
    flip_test: bool = True  # also store the mirrored crop's outputs (flip/*) for the evaluation splits
    shards: dict[Split, int] = {}  # shard files per split (default 1; Snakemake: a job each)
    compression: Compression = Compression.LZ4  # docs/scale.md
    feature_levels: list[int] | None = None  # backbone feature levels to store (None: all); 0 = highest resolution
    train_views: int = Field(1, ge=1)  # cached views per training instance: the plain crop + augmented ones
    store: CacheStore = CacheStore.HEAD  # the train split of a SimpleBaseline: its features, or its trunk's map
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
    device: str = Field("auto", pattern=DEVICE)  # auto (CUDA when available) | cpu | cuda | cuda:N
    amp: Amp = Amp.BF16  # autocast dtype on CUDA (never on CPU)
    channels_last: bool = True  # NHWC tensors on CUDA (never on CPU)
    cudnn_benchmark: bool = True  # cuDNN autotunes each convolution shape on CUDA (the official CUDNN.BENCHMARK)
    cpu_numerics: CpuNumerics = CpuNumerics.PORTABLE  # portable: equal bits on any AVX2 machine | native: fast
    cpu_threads: int = Field(2, ge=1)  # torch's threads under portable (a sum's bits depend on the count)
    # the refiner on CUDA (never on the CPU; docs/scale.md, "The refiner on a GPU"): its memory format, and at
    # inference its reading replayed from a CUDA graph and compiled by torch.compile
    refiner_channels_last: bool = True
    refiner_cuda_graphs: bool = True
    refiner_compile: bool = False


class GuidanceParams(_Section):
    S: int = Field(3, ge=1, le=16)
    schedule: Schedule = Schedule.COSINE
    start_pose: StartPose = StartPose.CANONICAL
    missing: Missing = Missing.LITERAL
    pred_threshold: float = Field(0.2, ge=0)
    pred_decode: PredDecode = PredDecode.ARGMAX  # P_pred: integer argmax (the paper) | subpixel | dark
    a2_map: A2Map = A2Map.RENDERED  # A2's static map: Gaussian of P_pred, or Y0 itself
    a3_steps: A3Steps = A3Steps.CLAMP  # A3: T = S+2 with H(t) = G^clamp(t-1), or T = S, H(t) = G^t

    @property
    def T(self) -> int:
        """Number of refinement steps, T = S + 2 (docs/method.md §2)."""
        return self.S + 2

    def for_variant(self, variant: Variant) -> "GuidanceParams":
        """The section as a variant sees it: a sweep's S or schedule (Figs. 5-6) applied, validated."""
        update = {k: getattr(variant, k) for k in ("S", "schedule") if getattr(variant, k) is not None}
        return GuidanceParams.model_validate(self.model_dump() | update) if update else self


class RefinerParams(_Section):
    base_channels: int = Field(32, gt=0)
    channel_mults: list[PositiveInt] = Field([1, 2, 4], min_length=1)  # one UNet level per cached feature level
    time_dim: int = Field(64, gt=0)
    prev_heatmap: bool = False  # also input the previous step's heatmap (Y0, as in training: docs/paper_notes.md)
    init: RefinerInit = RefinerInit.ZERO  # zero: guided-diffusion's zero output and residual convs | default
    guidance_gain: float = Field(1.0, gt=0)  # the guidance maps x this at the UNet input (1: as rendered, the paper)


class TrainRefinerParams(_Section):
    epochs: int = Field(40, ge=0)
    batch_size: int = Field(32, gt=0)  # global: split over `devices` processes
    lr: float = Field(1e-4, gt=0)
    lr_steps: list[int] = []  # x0.1 at these epochs (MultiStepLR); [] constant, as the paper
    seed: int = 0
    features: FeatureSource = FeatureSource.CACHE  # online: run the frozen backbone on augmented crops
    num_workers: int = Field(0, ge=0)  # cache reader (or image decoding) processes
    decoders: int = Field(0, ge=0)  # threads per reading process decoding the cache's chunks (0: HDF5's filters)
    preload_gb: float = Field(2.0, ge=0)  # read the whole training cache into memory when it is this small
    prefetch_gb: float = Field(2.0, gt=0)  # bytes of batches the reader processes hold ready, all together
    grad_clip_norm: float | None = Field(None, gt=0)  # clip the gradients' 2-norm to this (None: off, as the paper)
    devices: int = Field(1, ge=1)  # DDP processes (torchrun): one per GPU, or gloo processes on CPU
    val_every: int = Field(0, ge=0)  # score the val split every N epochs and at the last (0: never), training log
    p_last: float | None = Field(None, ge=0, le=1)  # P(t = T-1) per training draw, else U{0..T-2}; None: U{0..T-1}

    @model_validator(mode="after")
    def _a_sample_per_process(self) -> "TrainRefinerParams":
        if self.batch_size < self.devices:
            raise ValueError(f"train_refiner.batch_size {self.batch_size} is the global batch: it must be at least "
                             f"train_refiner.devices ({self.devices}), or some processes get no sample")
        return self


class InferParams(_Section):
    mode: InferenceMode = InferenceMode.STATIC  # docs/method.md §5 readings
    batch_size: int = Field(64, gt=0)
    flip_test: bool = True  # average with the mirrored crop's output where the cache holds flip/*
    decode: DecodeMode = DecodeMode.STANDARD  # final heatmaps -> joints, baseline and refined alike (data.decoding)


class EvaluateParams(_Section):
    backend: EvalBackend = EvalBackend.PYCOCOTOOLS  # identical numbers (tested)
    nms_threshold: float = Field(0.9, gt=0, le=1)  # OKS-NMS per image, detection-box splits only


class ReportParams(_Section):
    fig2_joint: str = "left_wrist"


class ParamsFile(_Section):
    """The whole params.yaml."""

    datasets: dict[str, DatasetParams] = Field(min_length=1)
    backbones: dict[str, BackboneParams] = Field(min_length=1)
    ablation: AblationParams
    # backbone -> the splits its baseline and ours are scored on (val: ground-truth boxes, val_det: detector
    # boxes, Table 4); a backbone not listed: [val]. Apart from `backbones` so that adding a split re-runs
    # no backbone training.
    evals: dict[str, list[EvalSplit]] = {}
    # backbone -> the evaluation splits of `evals` scored without a cache: one streaming pass (`sgpose
    # infer_online --split S`) runs the frozen backbone and every variant scored on S; the cache stage skips
    # them (docs/scale.md). A backbone not listed: none.
    online: dict[str, list[EvalSplit]] = {}
    train_backbone: TrainBackboneParams = TrainBackboneParams()
    cache: CacheParams = CacheParams()
    compute: ComputeParams = ComputeParams()
    guidance: GuidanceParams = GuidanceParams()
    refiner: RefinerParams = RefinerParams()
    train_refiner: TrainRefinerParams = TrainRefinerParams()
    infer: InferParams = InferParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    # rule -> the job-size values a profile changes (sgpose.config.resources; each rule's defaults and the
    # check that every key is a rule: sgpose.dag.table)
    resources: dict[str, ResourcesChange] = {}

    @model_validator(mode="before")
    @classmethod
    def _backbone_names(cls, tree: Any) -> Any:
        if isinstance(tree, dict) and isinstance(tree.get("backbones"), dict):
            moved = [k for k, v in tree["backbones"].items() if isinstance(v, dict) and "evals" in v]
            if moved:  # the schema before evals became a section of its own
                example = ", ".join(f"{k}: {tree['backbones'][k]['evals']}" for k in moved)
                raise ValueError(f"backbones.{moved[0]}.evals has moved to the top-level section `evals` "
                                 f"(write `evals: {{{example}}}` and delete the backbones' evals keys)")
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
        for name, splits in self.evals.items():
            if name not in self.backbones:
                raise ValueError(f"evals.{name}: not in backbones ({', '.join(self.backbones)})")
            if not splits or len(set(splits)) != len(splits):
                raise ValueError(f"evals.{name} {splits}: one or more splits, each once")
        for name, splits in self.online.items():
            if name not in self.backbones:
                raise ValueError(f"online.{name}: not in backbones ({', '.join(self.backbones)})")
            if len(set(splits)) != len(splits) or not set(splits) <= set(self.evals_of(name)):
                raise ValueError(f"online.{name} {splits}: each once, each a split of evals.{name} {self.evals_of(name)}")
        for name, bp in self.backbones.items():
            if bp.dataset not in self.datasets:
                raise ValueError(f"backbones.{name}.dataset {bp.dataset!r} is not in datasets ({', '.join(self.datasets)})")
            prep = self.datasets[bp.dataset].prepare
            h, w = bp.input_size
            if abs(w / h - prep.aspect_ratio) > 1e-6:
                raise ValueError(f"backbones.{name}.input_size {list(bp.input_size)} has aspect {w / h:.4g}, "
                                 f"datasets.{bp.dataset}.prepare.aspect_ratio is {prep.aspect_ratio}")
            if DET_SPLIT in self.evals_of(name) and not prep.detections:
                raise ValueError(f"evals.{name} has val_det but datasets.{bp.dataset}.prepare.detections "
                                 "names no detection file")
            self.train_backbone_of(name)  # the overrides validate
        a = self.ablation
        for name in a.variants:  # a sweep's guidance value is a guidance value: the same bounds
            try:
                self.guidance.for_variant(get_variant(name))
            except ValidationError as err:
                raise ValueError(f"ablation.variants {name}: {err.errors()[0]['msg']}") from None
        self._check_ablation_backbone(a.backbone)
        if "val" in self.online_of(a.backbone):
            raise ValueError(f"online.{a.backbone} must not hold val: the report's figures (Figs. 2, 7-16) read the "
                             "ablation backbone's val cache")
        if a.backbones is not None and len(set(a.backbones)) != len(a.backbones):
            raise ValueError(f"ablation.backbones {a.backbones}: each once")
        for bb in a.runs_on:
            if bb != a.backbone:
                self._check_ablation_backbone(bb)
        self._check_controlled()
        unused = [d for d in self.datasets if all(bp.dataset != d for bp in self.backbones.values())]
        if unused:
            raise ValueError(f"datasets {', '.join(unused)}: no backbone in backbones runs on it (the DAG would "
                             "download and prepare it for nothing)")
        return self

    def _check_ablation_backbone(self, bb: str) -> None:
        a = self.ablation
        key = "ablation.backbone" if bb == a.backbone else "ablation.backbones"
        if bb not in self.backbones:
            raise ValueError(f"{key} {bb!r} is not in backbones ({', '.join(self.backbones)})")
        if self.backbones[bb].dataset != a.dataset:
            raise ValueError(f"ablation.dataset {a.dataset!r}: {key} {bb} runs on {self.backbones[bb].dataset!r}")
        if "val" not in self.evals_of(bb):
            raise ValueError(f"evals.{bb} must include val: Table 1 and Figs. 2, 4-9 of the "
                             "ablation are scored on the ground-truth boxes")

    def _check_controlled(self) -> None:
        """Controlled backbones (oracle / perturbed) borrow a real backbone's features and geometry."""
        for name, bp in self.backbones.items():
            where = f"backbones.{name}"
            if not bp.controlled:
                if bp.features_from is not None or bp.perturb is not None or bp.evidence is not None:
                    raise ValueError(f"{where}: features_from, perturb and evidence are for arch oracle | perturbed, "
                                     f"not {bp.arch}")
                continue
            src = self.backbones.get(bp.features_from or "")
            if src is None or src.controlled or src.dataset != bp.dataset:
                raise ValueError(f"{where}.features_from {bp.features_from!r}: must name a real (trained or imported) "
                                 f"backbone of dataset {bp.dataset!r} in backbones")
            if (tuple(src.input_size), tuple(src.heatmap_size)) != (tuple(bp.input_size), tuple(bp.heatmap_size)):
                raise ValueError(f"{where}: input_size/heatmap_size must be those of {bp.features_from} "
                                 f"({list(src.input_size)}, {list(src.heatmap_size)}): its features are used")
            if bp.checkpoint is not None or bp.train:
                raise ValueError(f"{where}: a controlled backbone has no weights: no checkpoint, no train overrides")
            if self.evals_of(name) != ["val"]:
                raise ValueError(f"evals.{name} {self.evals_of(name)}: a controlled backbone renders the ground truth "
                                 "of each box, so only val (ground-truth boxes) exists")
            if self.online_of(name):
                raise ValueError(f"online.{name}: a controlled backbone is scored from its cache (its Y0 is rendered "
                                 "there), never online")
            if bp.perturb is not None and bp.arch != "perturbed":
                raise ValueError(f"{where}.perturb: only for arch perturbed (the oracle has no errors)")

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
        """The refined variants a backbone trains: `ours`, and the ablation's on the ablation's backbones."""
        ablation = self.ablation
        if backbone not in ablation.runs_on:
            return ["ours"]
        return ["ours", *ablation.variants, *ablation.seeded_variants()]

    def scored_variants_of(self, backbone: str) -> list[str]:
        """Every variant of a backbone that is scored: the unrefined ones (baseline, baseline_dark, copy; the
        oracle for a controlled backbone) and the refined ones."""
        return [*unrefined_of(self.backbones[backbone].controlled), *self.variants_of(backbone)]

    def evals_of(self, backbone: str, variant: str = BASELINE) -> list[str]:
        """The splits a variant is scored on: the unrefined ones (baseline, baseline_dark) and ours on every
        evaluation split of the backbone (`evals`); the ablation's variants (Table 1, Figs. 5-6) on `val`
        (ground-truth boxes) only."""
        splits = list(self.evals.get(backbone, ["val"]))
        return splits if variant in (*UNREFINED, "ours") and variant != ORACLE else ["val"]

    def online_of(self, backbone: str) -> list[str]:
        """The evaluation splits of a backbone scored online, without a cache (`online`)."""
        return list(self.online.get(backbone, []))

    def online_variants(self, backbone: str, split: str) -> list[str]:
        """Every variant of a backbone scored on `split`: what one online pass over the split writes."""
        return [v for v in self.scored_variants_of(backbone) if split in self.evals_of(backbone, v)]

    def splits_of(self, backbone: str) -> list[str]:
        """Every split a backbone caches: train, then its evaluation splits not scored online."""
        return ["train", *(s for s in self.evals_of(backbone) if s not in self.online_of(backbone))]

    def primary(self) -> str:
        """The backbone stages use when none is named: the ablation's."""
        return self.ablation.backbone


def _merge(base: dict, update: dict) -> dict:
    """`base` with `update` merged in recursively (a copy)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
