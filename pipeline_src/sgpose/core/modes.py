"""The modes chosen by a parameter, one enum each, defined once (STYLE.md pattern 5): the config schema
validates `params.yaml` against them and the code that acts on each compares with the members, never
with a string. Torch-free, so the schema (read by the DAG generator and both engines) and
`sgpose.core.variants` never import torch. Each mode's code: `Schedule`, `Missing` and `A3Steps` in
`sgpose.method.guidance` (alphas, interpolate, step weights), `StartPose`, `A2Map` and `TrainPath` in
`sgpose.method.refine`, `InferenceMode` in `sgpose.method.refine.refine` (docs/method.md, "Inference"),
`DecodeMode` in `sgpose.data.decoding`, `ColorOrder` in `sgpose.data.dataset`, `FeatureSource` in
`sgpose.stages.train_refiner`, `Amp` in `sgpose.runtime.compute`, `Compression` in `sgpose.cache.format`,
`EvalBackend` in `sgpose.evaluation.coco_eval`. The variants' guidance kind is
`sgpose.core.variants.GuidanceKind`, beside the variants.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Schedule(StrEnum):
    """alpha_s along the path P_start -> P_pred (docs/method.md §2; Fig. 6 compares them)."""

    COSINE = "cosine"  # 1 - abar(s / (S-1)), improved-DDPM's cosine abar (the paper's default)
    LINEAR = "linear"  # s / (S-1)


class Missing(StrEnum):
    """How a joint missing in P_pred (at (0, 0)) is read when interpolating (docs/paper_notes.md)."""

    LITERAL = "literal"  # interpolate toward (0, 0) as written; blank only where the pose is exactly (0, 0)
    KEEP_START = "keep_start"  # hold the start position; blank at the last map (the prediction's own)
    BLANK = "blank"  # blank at every s


class StartPose(StrEnum):
    """P_start of the guidance path (docs/method.md §2)."""

    CANONICAL = "canonical"  # the layout's canonical pose scaled to the heatmap
    MEAN = "mean"  # the mean training pose: the `start_pose` stage's artifact


class InferenceMode(StrEnum):
    """docs/method.md §5's readings of multi-step inference."""

    STATIC = "static"  # H(t) built once from P_start -> P_pred; each step's UNet call independent
    RECURSIVE = "recursive"  # P(0) = P_start; step t builds H(t) from P_start -> P(t), P(t+1) = decode
    RECURSIVE_FROM_PRED = "recursive_from_pred"  # the same with P(0) = P_pred


class DecodeMode(StrEnum):
    """How final heatmaps become sub-pixel joints (`infer.decode`; `sgpose.data.decoding`)."""

    STANDARD = "standard"  # argmax + quarter-pixel shift toward the higher neighbour (SimpleBaseline/HRNet)
    DARK = "dark"  # Gaussian modulation + Taylor step at the log-heatmap's maximum (Zhang et al., CVPR 2020)


class PredDecode(StrEnum):
    """How the guidance's P_pred is read off heatmaps (`guidance.pred_decode`; `sgpose.data.decoding`)."""

    ARGMAX = "argmax"  # the integer argmax (the paper's, docs/method.md §2): the guidance keeps whole pixels
    SUBPIXEL = "subpixel"  # argmax + the quarter-pixel shift of the standard decode (beyond the paper)
    DARK = "dark"  # DARK's sub-pixel maximum (beyond the paper)


class RefinerInit(StrEnum):
    """How the refiner's weights start (`refiner.init`; `sgpose.method.unet`)."""

    ZERO = "zero"  # guided-diffusion's: the output conv and every residual block's second conv at zero
    DEFAULT = "default"  # PyTorch's default initialisation everywhere


class ColorOrder(StrEnum):
    """The channel order a backbone checkpoint was trained on (its input tensors must match)."""

    RGB = "rgb"  # HRNet's official configs (DATASET.COLOR_RGB: true), mmpose's checkpoints, sgpose's own
    BGR = "bgr"  # the official SimpleBaseline configs (COLOR_RGB: false): OpenCV's order, never converted


class A2Map(StrEnum):
    """Ablation A2's static guidance map (`guidance.a2_map`)."""

    RENDERED = "rendered"  # the Gaussian map of P_pred, as every other variant's maps
    RAW = "raw"  # the backbone's heatmaps Y0 themselves


class A3Steps(StrEnum):
    """Ablation A3's steps (`guidance.a3_steps`): the interpolated maps without graduated fusion."""

    CLAMP = "clamp"  # T = S + 2 steps as `ours`, H(t) = G^clamp(t-1, 0, S-1): only the fusion differs
    PER_MAP = "per_map"  # T = S steps, H(t) = G^t


class TrainPath(StrEnum):
    """The pose the guidance path ends at during training (a variant's; A4 differs)."""

    PRED = "pred"  # the backbone's prediction P_pred ("path consistency", the paper's claim)
    GT = "gt"  # the ground truth (A4); inference still uses P_pred


class FeatureSource(StrEnum):
    """Where refiner training reads the backbone's features (`train_refiner.features`)."""

    CACHE = "cache"  # the HDF5 cache the cache stage wrote (one cached view per instance and epoch)
    ONLINE = "online"  # the frozen backbone run in the loop on freshly augmented crops


class CpuNumerics(StrEnum):
    """How the CPU computes (`compute.cpu_numerics`, sgpose.runtime.numerics)."""

    PORTABLE = "portable"  # the same bits on any x86-64 machine with AVX2
    NATIVE = "native"  # the fastest code for this processor: bits differ between machines


class Amp(StrEnum):
    """The autocast dtype on CUDA (`compute.amp`; never on the CPU)."""

    BF16 = "bf16"
    FP16 = "fp16"  # with GradScaler's loss scaling
    OFF = "off"


class Compression(StrEnum):
    """How the cache's large datasets are compressed (`cache.compression`; filters: `sgpose.cache.format`)."""

    NONE = "none"
    GZIP = "gzip"
    LZF = "lzf"
    LZ4 = "lz4"  # the default: encoded on every core by sgpose.cache.chunks
    BLOSC_LZ4 = "blosc_lz4"
    BLOSC_ZSTD = "blosc_zstd"


class CacheStore(StrEnum):
    """What the train cache holds of a SimpleBaseline's features (`cache.store`; docs/scale.md, "Bytes per
    sample"): its deconv head's outputs, or the trunk's last map, the frozen head rerun on the device by
    train_refiner (HRNet has no such split: always its features)."""

    HEAD = "head"  # feat/0..n-1: the three deconv outputs (R50 at 256x192: 2.06 MB a sample in fp16)
    TRUNK = "trunk"  # trunk: ResNet's C5 map (R50: 2048 x 8 x 6, 0.2 MB)


class EvalBackend(StrEnum):
    """The COCO evaluator (`evaluate.backend`): the same numbers (tested), faster_coco_eval ~2x faster."""

    PYCOCOTOOLS = "pycocotools"
    FASTER_COCO_EVAL = "faster_coco_eval"


def values(mode: type[Enum]) -> tuple[str, ...]:
    """The accepted spellings of a mode, for error messages and params validation."""
    return tuple(m.value for m in mode)
