"""Read a params file (with `--set` overrides) and select one backbone's view of it: `Params`.

A stage works on one dataset or one backbone: `load_params(path, overrides, backbone=..., dataset=...)`
returns the `Params` view of that selection (`params.backbone`, `params.data`, ... of it), and
`sgpose.config.paths.Paths(params)` its files.
"""

from __future__ import annotations

import copy
import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sgpose.config.schema import (
    BackboneParams,
    CacheParams,
    ComputeParams,
    DataParams,
    EvaluateParams,
    GuidanceParams,
    InferParams,
    ParamsFile,
    PrepareParams,
    RefinerParams,
    ReportParams,
    TrainBackboneParams,
    TrainRefinerParams,
)
from sgpose.core.variants import seed_of


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

    def seeded(self, variant: str) -> "Params":
        """These params with train_refiner.seed moved by the variant's seed (`<variant>_seed<k>`: + k), so that
        every seed of a variant draws its own initial weights, batches and augmentations; themselves for seed 0."""
        k = seed_of(variant)[1]
        if not k:
            return self
        out = copy.copy(self)
        out.train_refiner = self.train_refiner.model_copy(update={"seed": self.train_refiner.seed + k})
        return out

    @property
    def features_backbone(self) -> BackboneParams:
        """The backbone whose network computes the selected one's features: itself, or a controlled
        backbone's `features_from` (`Paths.weights` is its backbone.pt)."""
        bp = self.backbone
        return self.file.backbones[bp.features_from] if bp.controlled else bp

    @property
    def evals(self) -> list[str]:
        """The evaluation splits of the selected backbone (`val`, `val_det`)."""
        return self.file.evals_of(self.backbone.name)

    def evals_of(self, variant: str) -> list[str]:
        """The splits a variant is scored on (ParamsFile.evals_of)."""
        return self.file.evals_of(self.backbone.name, variant)

    @property
    def online(self) -> list[str]:
        """The selected backbone's evaluation splits scored online, without a cache (ParamsFile.online_of)."""
        return self.file.online_of(self.backbone.name)

    def online_variants(self, split: str) -> list[str]:
        """Every variant scored on `split` (baseline, ours, the ablation's on val): one online pass writes them."""
        return self.file.online_variants(self.backbone.name, split)

    @property
    def splits(self) -> list[str]:
        """Every split the selected backbone caches: train, then its evaluation splits not scored online."""
        return self.file.splits_of(self.backbone.name)

    def model_dump(self, **kwargs) -> dict:
        """The whole file as plain data."""
        return self.file.model_dump(**kwargs)


class ParamsError(ValueError):
    """A params file that cannot be read or does not validate; the message names the file."""


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
        raise ParamsError(f"{path}: invalid parameters: {validation_message(err)}") from None


def validation_message(err: ValidationError) -> str:
    """pydantic's errors as one line: `key.path: what is wrong (got value)`, joined by `; ` (an unknown key
    says so, with the nearest known name when one is close)."""
    parts = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"]) or "the file"
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][-1]), _FIELD_NAMES, n=1)
            what = "unknown key" + (f" (did you mean {close[0]}?)" if close else "")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            what = msg[:1].lower() + msg[1:]
        got = "" if e["type"] in ("missing", "extra_forbidden", "value_error") or not e["loc"] else \
            f" (got {_short(e.get('input'))})"
        parts.append(f"{key}: {what}{got}")
    return "; ".join(parts)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_names(model: type[BaseModel], seen: set | None = None) -> set[str]:
    """Every field name of `model` and the models it holds (the vocabulary of a params file)."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in (field.annotation, *typing.get_args(field.annotation),
                    *(a for t in typing.get_args(field.annotation) for a in typing.get_args(t))):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg, seen)
    return names


_FIELD_NAMES = sorted(_field_names(ParamsFile))


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                backbone: str | None = None, dataset: str | None = None) -> Params:
    """The validated parameters of one backbone (default: the primary one, or the first of `dataset`)."""
    file = read_params_file(path, overrides, backbone, dataset)
    try:
        return Params(file, backbone, dataset)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None
