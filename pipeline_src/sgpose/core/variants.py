"""The paper's variants (docs/method.md §6) as small declarative descriptions, and the sweep variants of Figs. 5-6.

A variant says what guidance the UNet sees, whether it gets the step embedding, and which pose
builds the guidance path in training; everything else (the UNet, the loss, the decoding) is shared.
Every guidance kind is a (T, S) weight matrix over the rendered maps G^0..G^{S-1}
(`sgpose.method.guidance.step_weights`), so one batched code path serves them all.

    baseline  the backbone's own heatmaps (no refiner), decoded as `infer.decode` says
    baseline_dark  the backbone's own heatmaps, DARK-decoded whatever `infer.decode` says: the
              zero-cost decoding a refiner must beat (Table 2's "baseline + DARK")
    copy      the guidance's last map H(T-1) (the rendered P_pred) decoded: a refiner that returns its
              input; where the guidance alone leads, a refiner's ceiling when the features add nothing
    oracle    the training targets decoded: a perfect refiner (controlled backbones only: their ceiling)
    A1        UNet on the features only: no guidance, no step embedding, one step
    A2        the prediction's map as a static guidance: one step (guidance.a2_map: rendered | raw Y0)
    A3        the interpolated maps G^s as the sequence, no graduated fusion (guidance.a3_steps)
    A4        graduated sequence, built from ground truth in training and from the prediction at test
    ours      graduated sequence from the prediction in training and at test ("path consistency")
    ours_S<k> `ours` with guidance.S = k (Fig. 5);  ours_cosine / ours_linear: with that schedule (Fig. 6)
    <v>_seed<k>  refined variant <v> trained under train_refiner.seed + k (`ablation.seeds`: the report's
              spreads); seed 0 is <v> itself

No torch here: `sgpose.config` validates variant names with it.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from sgpose.core.modes import DecodeMode, Schedule, TrainPath


class GuidanceKind(StrEnum):
    """What guidance a variant's UNet sees; each is a (T, S) weight matrix (`sgpose.method.guidance.step_weights`)."""

    NONE = "none"  # no guidance map: the features only, one step (A1)
    PREDICTION = "prediction"  # the prediction's own map, one static step (A2)
    INTERPOLATED = "interpolated"  # the interpolated maps G^s as the sequence, no graduated fusion (A3)
    GRADUATED = "graduated"  # the graduated fusion H(t) = max_s w(t, s) G^s (docs/method.md §2; A4, ours)


BASELINE = "baseline"
BASELINE_DARK = "baseline_dark"
COPY = "copy"
ORACLE = "oracle"
SWEEP = re.compile(rf"^ours_(?:S(?P<S>[1-9][0-9]?)|(?P<schedule>{'|'.join(Schedule)}))$")
SEEDED = re.compile(r"^(?P<base>.+)_seed(?P<k>[1-9][0-9]?)$")  # another training seed of a refined variant


@dataclass(frozen=True)
class Variant:
    """What distinguishes one refined variant from another."""

    name: str
    guidance: GuidanceKind
    step_embedding: bool
    train_path: TrainPath  # the pose the guidance path ends at during training
    description: str
    S: int | None = None  # overrides guidance.S (a Fig. 5 sweep point)
    schedule: Schedule | None = None  # overrides guidance.schedule (Fig. 6)
    seed: int = 0  # added to train_refiner.seed (`<name>_seed<k>`: one more seed of the same variant)


class Readout(StrEnum):
    """The heatmaps an unrefined variant decodes (no UNet runs)."""

    BACKBONE = "backbone"  # the backbone's Y0
    GUIDANCE = "guidance"  # the last guidance map H(T-1) of `ours` (the rendered P_pred)
    TARGET = "target"  # the training targets (the cache's `target`)


@dataclass(frozen=True)
class Unrefined:
    """A variant without a refiner: the backbone's heatmaps (Table 2's baseline columns) or a ceiling."""

    name: str
    decode: DecodeMode | None  # the decoder it always uses; None: the configured infer.decode
    description: str
    readout: Readout = Readout.BACKBONE
    controlled_only: bool = False  # scored on controlled backbones only (their ground truth is the point)


UNREFINED: dict[str, Unrefined] = {u.name: u for u in (
    Unrefined(BASELINE, None, "backbone heatmaps, no refinement"),
    Unrefined(BASELINE_DARK, DecodeMode.DARK, "backbone heatmaps, DARK decoding, no refinement"),
    Unrefined(COPY, None, "the guidance's last map decoded: a refiner returning its input", Readout.GUIDANCE),
    Unrefined(ORACLE, None, "the training targets decoded: a perfect refiner", Readout.TARGET, controlled_only=True),
)}
BASELINES = (BASELINE, BASELINE_DARK)  # the backbone's own heatmaps

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("A1", GuidanceKind.NONE, False, TrainPath.PRED, "UNet on backbone features only"),
    Variant("A2", GuidanceKind.PREDICTION, False, TrainPath.PRED, "+ static predicted heatmap"),
    Variant("A3", GuidanceKind.INTERPOLATED, True, TrainPath.PRED, "+ interpolated heatmap sequence, no graduated fusion"),
    Variant("A4", GuidanceKind.GRADUATED, True, TrainPath.GT, "graduated sequence from ground truth in training"),
    Variant("ours", GuidanceKind.GRADUATED, True, TrainPath.PRED, "graduated sequence from the prediction (path consistency)"),
)}
REFINED = tuple(VARIANTS)  # the paper's refined variants (Table 1)
ALL = (*UNREFINED, *REFINED)


def is_refined(name: str) -> bool:
    """True for a variant with a refiner (a UNet to train); False for the backbone's own heatmaps."""
    return name not in UNREFINED


def unrefined_of(controlled: bool) -> list[str]:
    """The unrefined variants a backbone is scored with: every one, the ceilings of controlled ones only there."""
    return [u.name for u in UNREFINED.values() if controlled or not u.controlled_only]


def readout(variant: str) -> Readout | None:
    """What an unrefined variant decodes; None for a refined one (its UNet's output)."""
    return UNREFINED[variant].readout if variant in UNREFINED else None


def decode_mode(variant: str, configured: DecodeMode | str) -> DecodeMode:
    """The decoder a variant's final heatmaps go through: an unrefined variant's own when it has
    one (baseline_dark: DARK), else the configured `infer.decode` (baseline and every refined variant)."""
    own = UNREFINED[variant].decode if variant in UNREFINED else None
    return own or DecodeMode(configured)


def seed_of(name: str) -> tuple[str, int]:
    """(the variant, the seed offset) of a variant name: `ours_seed2` -> (ours, 2), `A3` -> (A3, 0)."""
    m = SEEDED.match(name)
    return (m["base"], int(m["k"])) if m and m["base"] not in UNREFINED else (name, 0)


def get_variant(name: str) -> Variant:
    """The description of a refined variant, sweeps and seeds included; an unknown name is an error saying
    what is accepted."""
    base, k = seed_of(name)
    if k:
        v = get_variant(base)
        return replace(v, name=name, seed=k, description=f"{v.description}, seed {k}")
    if name in VARIANTS:
        return VARIANTS[name]
    if m := SWEEP.match(name):
        ours = VARIANTS["ours"]
        if m["S"]:
            return replace(ours, name=name, S=int(m["S"]), description=f"ours with S = {m['S']} (Fig. 5)")
        return replace(ours, name=name, schedule=Schedule(m["schedule"]),
                       description=f"ours with the {m['schedule']} schedule (Fig. 6)")
    raise ValueError(f"unknown refined variant {name!r}; expected one of {', '.join(REFINED)}, "
                     f"ours_S<k> (k = 1..99) or {' / '.join(f'ours_{s}' for s in Schedule)}, each optionally with "
                     "_seed<k> (k = 1..99)")


def check_name(name: str) -> str:
    """`name` if it is an unrefined (baseline, baseline_dark) or a refined variant (for argparse and
    pydantic), else ValueError."""
    if name not in UNREFINED:
        get_variant(name)
    return name


def argument(name: str) -> str:
    """argparse type of `--variant`: an unrefined or a refined variant, with the accepted names on error."""
    try:
        return check_name(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def refined_argument(name: str) -> str:
    """argparse type of `--variant` where only a refined variant makes sense (training a refiner)."""
    if name in UNREFINED:
        raise argparse.ArgumentTypeError(f"{name} has no refiner")
    return argument(name)
