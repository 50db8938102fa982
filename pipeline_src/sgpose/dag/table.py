"""The stage table: every stage of the pipeline declared once.

A `Stage` names its entry module (its code dependencies are that module's import closure,
`sgpose.runtime.imports`), the grid it runs over, its command, the params keys it reads, its inputs and its
outputs (always from `sgpose.config.Paths`). `jobs(file)` expands the table over a validated params file
into concrete `Job`s; `sgpose.dag.dvc` writes them as dvc.yaml, `sgpose.dag.snakemake` turns each stage
into one Snakemake rule whose wildcards are the job keys. Both engines therefore see the same commands,
dependencies, params and outputs, and a change to any of them is made here, once.

Job keys (Snakemake wildcards): `ds` dataset, `bb` backbone, `variant`, `split`, `shard`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Literal

from sgpose.config import DET_SPLIT, ParamsFile, Paths
from sgpose.config.resources import StageResources
from sgpose.config.schema import DETECTION_KEYS, PREPARE_KEYS
from sgpose.core.variants import Readout, is_refined, readout, unrefined_of
from sgpose.dag import digests
from sgpose.runtime.imports import ROOT

Keys = dict[str, str]
STAGE_PACKAGE = "sgpose.stages"
WHOLE_FILE = "*"  # a params "key" meaning every key of the file (check_params)
CODE_STAGE = "code"  # DVC's stage that digests every entry's sources (sgpose.dag.digests)


@dataclass(frozen=True)
class Command:
    """One `sgpose` subcommand: the stage module it runs (`sgpose.stages.<name>`), its help, whether it reads
    the params file (`profile`, `dag` and `code` read it themselves, or not at all), the rule of the
    DAG an invocation runs (`rule(args)`; default the command's own name): its resources and threads,
    and the params key of the batch size that sets its memory (named when it runs out: `sgpose.cli`)."""

    name: str
    help: str
    reads_params: bool = True
    rule: Callable[[argparse.Namespace], str] | None = None
    batch_param: str | None = None

    @property
    def module(self) -> str:
        return f"{STAGE_PACKAGE}.{self.name}"

    def rule_of(self, args: argparse.Namespace) -> str:
        """The DAG rule an invocation of this command runs (`sgpose cache --shard 3`: cache_shard)."""
        return self.rule(args) if self.rule else self.name


@dataclass(frozen=True)
class Out:
    """One output: a file or directory, how DVC treats it (cached, persistent; a metric or a plot)."""

    path: str
    kind: Literal["out", "metric", "plot"] = "out"
    cache: bool = True  # DVC stores it (and can restore it from the run-cache)
    persist: bool = False  # DVC leaves it in place before the stage runs (resumable outputs)
    directory: bool = False


@dataclass(frozen=True)
class Job:
    """One run of a stage: its keys, command, dependencies (data and code), params keys, outputs."""

    stage: str
    keys: Keys
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[Out, ...]
    code: tuple[str, ...]  # the entry's import closure (Snakemake's inputs; DVC reads its digest)
    entry: str
    dvc_cmd: str | None = None  # where DVC runs another command than Snakemake

    @property
    def name(self) -> str:
        """The DVC stage name: `train_refiner.sb_r18.ours` (dots: names of the grid may hold '_' and '-')."""
        return ".".join([self.stage, *self.keys.values()])


@dataclass(frozen=True)
class Stage:
    """One stage: entry module, the grid it runs over, and how a job's command, inputs, params and
    outputs follow from its keys."""

    name: str
    command: str  # the `sgpose` subcommand it runs (its module's import closure is the code dependency)
    doc: str
    grid: Callable[[ParamsFile], list[Keys]]
    cmd: str  # a format string over the keys
    outs: Callable[[Keys], list[Out]]
    resources: StageResources = StageResources()  # a job's default size (full COCO); params `resources:` change it
    deps: Callable[[ParamsFile, Keys], list[str]] = lambda f, k: []
    params: Callable[[ParamsFile, Keys], list[str]] = lambda f, k: []
    engines: frozenset[str] = field(default=frozenset({"dvc", "snakemake"}))
    dvc_cmd: str | None = None  # a format string over the keys, where DVC runs another command

    @property
    def entry(self) -> str:
        """The stage module whose import closure is this stage's code."""
        return command(self.command).module

    def job(self, file: ParamsFile, keys: Keys) -> Job:
        return Job(self.name, keys, self.cmd.format(**keys), tuple(self.deps(file, keys)),
                   tuple(self.params(file, keys)), tuple(self.outs(keys)), code_files(self.entry), self.entry,
                   self.dvc_cmd.format(**keys) if self.dvc_cmd else None)

    def jobs(self, file: ParamsFile) -> Iterator[Job]:
        for keys in self.grid(file):
            yield self.job(file, keys)


@lru_cache(maxsize=None)
def code_files(entry: str) -> tuple[str, ...]:
    """The sources a stage runs, as paths relative to the project root (`pipeline_src/sgpose/...`)."""
    return tuple(digests.code_files(entry, ROOT.parents[1]))


def _paths(keys: Keys) -> Paths:
    return Paths.of(keys.get("ds", "{ds}"), keys.get("bb", "{bb}"))


# ------------------------------------------------------------------------------------------- grids
def per_dataset(file: ParamsFile) -> list[Keys]:
    return [{"ds": ds} for ds in file.datasets]


def with_detections(file: ParamsFile) -> list[Keys]:
    """Datasets some backbone scores on detector boxes (val_det)."""
    return [{"ds": ds} for ds in file.datasets
            if any(bp.dataset == ds and DET_SPLIT in file.evals_of(b) for b, bp in file.backbones.items())]


def per_backbone(file: ParamsFile) -> list[Keys]:
    return [{"ds": bp.dataset, "bb": bb} for bb, bp in file.backbones.items()]


def per_trained_backbone(file: ParamsFile) -> list[Keys]:
    """Backbones with weights of their own (a controlled one, oracle / perturbed, borrows `features_from`'s)."""
    return [k for k in per_backbone(file) if not file.backbones[k["bb"]].controlled]


def per_cache_split(file: ParamsFile) -> list[Keys]:
    return [{"ds": bp.dataset, "bb": bb, "split": s} for bb, bp in file.backbones.items()
            for s in file.splits_of(bb)]


def per_shard(file: ParamsFile) -> list[Keys]:
    return [k | {"shard": f"{i:05d}"} for k in per_cache_split(file)
            for i in range(file.cache.num_shards(k["split"]))]


def per_refiner(file: ParamsFile) -> list[Keys]:
    return [{"ds": bp.dataset, "bb": bb, "variant": v} for bb, bp in file.backbones.items()
            for v in file.variants_of(bb)]


def per_evaluation(file: ParamsFile) -> list[Keys]:
    """(backbone, variant) of every scored run, baselines included."""
    return [{"ds": bp.dataset, "bb": bb, "variant": v} for bb, bp in file.backbones.items()
            for v in file.scored_variants_of(bb)]


def per_prediction(file: ParamsFile) -> list[Keys]:
    """(backbone, variant, split) of every prediction read from a cache (online splits: `per_online_split`)."""
    return [k | {"split": s} for k in per_evaluation(file) for s in file.evals_of(k["bb"], k["variant"])
            if s not in file.online_of(k["bb"])]


def per_online_split(file: ParamsFile) -> list[Keys]:
    """(backbone, split) of every split scored online: one pass writes every variant's predictions."""
    return [{"ds": bp.dataset, "bb": bb, "split": s} for bb, bp in file.backbones.items() for s in file.online_of(bb)]


def once(file: ParamsFile) -> list[Keys]:
    return [{}]


# ------------------------------------------------------------------------------------ inputs, params
def _dataset_params(file: ParamsFile, ds: str, prepare: list[str]) -> list[str]:
    return [f"datasets.{ds}.layout", f"datasets.{ds}.data", *(f"datasets.{ds}.prepare.{k}" for k in prepare)]


def _train_refiner_deps(file: ParamsFile, k: Keys) -> list[str]:
    """The train cache and start pose; with train_refiner.features: online also the backbone and the crops
    (listed whatever the setting, so that switching it needs no new dvc.yaml: they change only with the cache;
    a controlled backbone reads the crops' instance table every epoch, and has `features_from`'s weights);
    the val cache and ground truth the validation AP is scored on (`train_refiner.val_every`; likewise)."""
    p = _paths(k)
    val = [str(p.cache("val")), str(p.split_annotations("val"))] if "val" in file.splits_of(k["bb"]) else []
    return [str(p.cache("train")), str(p.start_pose), str(_weights(file, k)), str(p.instances("train")),
            str(p.download_stamp), *val]


def _infer_deps(file: ParamsFile, k: Keys) -> list[str]:
    p = _paths(k)
    deps = [str(p.cache(k["split"]))]
    if is_refined(k["variant"]):
        deps += [str(p.refiner(k["variant"])), str(p.start_pose)]
    elif readout(k["variant"]) == Readout.GUIDANCE:  # the copy: `ours`' guidance, from its start pose
        deps += [str(p.start_pose)]
    return deps


def _infer_params(file: ParamsFile, k: Keys) -> list[str]:
    if is_refined(k["variant"]):
        return ["infer", "guidance", "refiner", "compute"]
    return ["infer", *(["guidance"] if readout(k["variant"]) == Readout.GUIDANCE else [])]


# the variants an online split is scored by: validation keeps the ablation's val cached, so an online split
# is always scored by the unrefined variants and ours (checked in _online_deps); Snakemake's output patterns
# need the list without the params file
ONLINE_VARIANTS = (*unrefined_of(controlled=False), "ours")


def _online_deps(file: ParamsFile, k: Keys) -> list[str]:
    p, variants = _paths(k), file.online_variants(k["bb"], k["split"])
    if variants != list(ONLINE_VARIANTS):
        raise ValueError(f"online.{k['bb']} {k['split']}: scored by {variants}, the table's infer_online writes "
                         f"{list(ONLINE_VARIANTS)}")
    deps = [str(p.backbone), str(p.instances(k["split"])), str(p.download_stamp)]
    for v in filter(is_refined, variants):
        deps += [str(p.refiner(v))]
    return deps + [str(p.start_pose)]  # every refiner's guidance and the copy's


def _evaluate_deps(file: ParamsFile, k: Keys) -> list[str]:
    p = _paths(k)
    splits = file.evals_of(k["bb"], k["variant"])
    return [*(str(p.keypoints(k["variant"], s)) for s in splits),
            *sorted({str(p.split_annotations(s)) for s in splits})]


def _report_deps(file: ParamsFile, k: Keys) -> list[str]:
    """What the tables and figures read: every evaluation, every backbone's val cache (its attributes),
    and for the figures the primary backbone's refiners, training logs and val instances."""
    deps = [str(_paths(e).metrics(e["variant"])) for e in per_evaluation(file)]
    deps += [str(_paths(b).cache("val")) for b in per_backbone(file) if "val" in file.splits_of(b["bb"])]
    bb = file.primary()
    p = Paths.of(file.backbones[bb].dataset, bb)
    deps += [str(p.instances("val")), str(p.backbone_log), str(p.start_pose)]
    for v in file.variants_of(bb):
        deps += [str(p.refiner(v))]
    deps += [str(_paths(k).refiner_log(k["variant"])) for k in per_refiner(file)]  # every refiner's val AP curve
    return deps


# ---------------------------------------------------------------------------------------- the commands
def _prepare_rule(args: argparse.Namespace) -> str:
    return "prepare_detections" if getattr(args, "splits", None) == [DET_SPLIT] else "prepare"


def _cache_rule(args: argparse.Namespace) -> str:
    if getattr(args, "gather", False):
        return "cache_gather"
    return "cache_shard" if getattr(args, "shard", None) is not None else "cache"


# every `sgpose` subcommand, in the DAG's order (`sgpose --help` lists them so)
COMMANDS: tuple[Command, ...] = (
    Command("code", "digest every stage's sources into results/code/ (the code dependency DVC tracks)",
            reads_params=False),
    Command("dag", "write dvc.yaml from the stage table and params.yaml's grid (--check: is it current?)",
            reads_params=False),
    Command("profile", "make profiles/NAME.yaml (sample, claims, coco, crowdpose, paper) the active params.yaml",
            reads_params=False),
    Command("check_params", "validate the whole params file (every section, value and name); write a stamp"),
    Command("download", "fetch and verify a dataset's files (URLs or SGPOSE_MIRROR)"),
    Command("prepare", "a dataset's person instances per split (GT boxes; val_det: detections), ground truth",
            rule=_prepare_rule),
    Command("train_backbone", "train a backbone where no official checkpoint is used (else import it)",
            batch_param="train_backbone.batch_size"),
    Command("cache", "run the frozen backbone once; write features, Y0, targets, crop meta to sharded HDF5",
            rule=_cache_rule, batch_param="cache.batch_size"),
    Command("start_pose", "mean training pose in crop coordinates (guidance.start_pose: mean)"),
    Command("train_refiner", "train the structure-guided UNet from the cache (docs/method.md, Training)",
            batch_param="train_refiner.batch_size"),
    Command("infer", "refine the cached heatmaps of each evaluation split; COCO results JSON (docs/method.md, "
            "Inference)", batch_param="infer.batch_size"),
    Command("infer_online", "every variant's predictions on the backbone's online splits: one pass through the "
            "backbone, no cache", batch_param="infer.batch_size"),
    Command("evaluate", "OKS keypoint AP (COCO or CrowdPose) per evaluation split; writes results/metrics/..."),
    Command("report", "tables (paper numbers beside ours) and figures from results/"),
    Command("predict", "run the trained backbone + ours refiner on an image: keypoints JSON + overlay PNG"),
    Command("show", "one instance, everything the pipeline knows: crop, poses, Y0, guidance and output per step, "
            "per-joint errors, OKS (PNG + text)"),
    Command("compare", "per-instance OKS of two variants: who gained and lost most, a scatter plot, per-joint errors"),
    Command("inspect", "what a feature cache holds: shards, datasets, bytes per sample, the params that made it "
            "(--verify: every chunk's checksum)", reads_params=False),
    Command("doctor", "does this machine compute the recorded bits? every numeric component's digest in seconds",
            reads_params=False),
    Command("verdict", "did this run reproduce the recorded one? dvc.lock's outputs against git HEAD's",
            reads_params=False),
)


def command(name: str) -> Command:
    """The subcommand `name` (KeyError naming the commands)."""
    for c in COMMANDS:
        if c.name == name:
            return c
    raise KeyError(f"no command {name!r} (commands: {', '.join(c.name for c in COMMANDS)})")


def _job(threads: int, mem_mb: int, runtime: int, gpu: int = 0) -> StageResources:
    """A rule's default job: full COCO on one GPU node (the profiles size their own: `resources:`)."""
    return StageResources(threads=threads, mem_mb=mem_mb, runtime=runtime, gpu=gpu)


# ------------------------------------------------------------------------------------------ the table
STAGES: tuple[Stage, ...] = (
    # DVC only: every other DVC job depends on its entry's digest, not on each file (sgpose.dag.digests)
    Stage(CODE_STAGE, "code", "the digest of every entry module's sources (DVC's code dependency)",
          once, "sgpose code", outs=lambda k: [Out(str(Paths.of("-", "-").code_digest(e))) for e in entries()],
          deps=lambda f, k: [digests.package_dir().as_posix()], engines=frozenset({"dvc"}),
          resources=_job(1, 1000, 10)),
    # every key of the file: a misspelt section, which no other stage reads, fails the run; under DVC also a
    # dvc.yaml that is stale for the file's grid
    Stage("check_params", "check_params", "validate the whole params file (and dvc.yaml's currency)",
          once, "sgpose check_params", outs=lambda k: [Out(str(Paths.of("-", "-").params_check))],
          params=lambda f, k: [WHOLE_FILE], dvc_cmd="sgpose check_params --dvc-yaml dvc.yaml",
          resources=_job(1, 1000, 10)),
    Stage("download", "download", "fetch and verify a dataset's files and its backbones' registry checkpoints",
          per_dataset, "sgpose download --dataset {ds}",
          outs=lambda k: [Out(str(_paths(k).download_stamp))],
          deps=lambda f, k: [f.datasets[k["ds"]].data.manifest],
          params=lambda f, k: [f"datasets.{k['ds']}.data", *(f"backbones.{b}.checkpoint" for b, bp in f.backbones.items()
                                                             if bp.dataset == k["ds"] and bp.checkpoint)],
          resources=_job(1, 4000, 240)),
    Stage("prepare", "prepare", "person instances and ground truth of train and val",
          per_dataset, "sgpose prepare --dataset {ds} --split train --split val",
          outs=lambda k: [Out(str(_paths(k).instances(s))) for s in ("train", "val")]
          + [Out(str(_paths(k).split_annotations(s))) for s in ("train", "val")],
          deps=lambda f, k: [str(_paths(k).download_stamp)],
          params=lambda f, k: _dataset_params(f, k["ds"], [p for p in PREPARE_KEYS if p not in DETECTION_KEYS]),
          resources=_job(1, 16000, 60)),
    Stage("prepare_detections", "prepare", "val's images with detector boxes (Table 4)",
          with_detections, "sgpose prepare --dataset {ds} --split val_det",
          outs=lambda k: [Out(str(_paths(k).instances(DET_SPLIT)))],
          deps=lambda f, k: [str(_paths(k).download_stamp)],
          params=lambda f, k: _dataset_params(f, k["ds"], list(PREPARE_KEYS)),
          resources=_job(1, 16000, 60)),
    Stage("train_backbone", "train_backbone", "train a backbone, or import its checkpoint",
          per_trained_backbone, "sgpose train_backbone --backbone {bb}",
          outs=lambda k: [Out(str(_paths(k).backbone)), Out(str(_paths(k).backbone_log), kind="plot")],
          deps=lambda f, k: [str(_paths(k).instances("train")), str(_paths(k).download_stamp)],
          params=lambda f, k: [f"backbones.{k['bb']}",
                               *([] if f.backbones[k["bb"]].checkpoint else ["train_backbone", "compute"])],
          resources=_job(8, 32000, 4320, gpu=1)),
    # DVC: one job per split (resumes at its first unfinished shard); Snakemake: a job per shard, then a gather
    Stage("cache", "cache", "features, Y0, targets and crop meta of one split, sharded HDF5",
          per_cache_split, "sgpose cache --backbone {bb} --split {split}",
          outs=lambda k: [Out(str(_paths(k).cache(k["split"])), cache=False, persist=True),
                          Out(str(_paths(k).cache(k["split"]).with_suffix(".shards")), cache=False, persist=True,
                              directory=True)],
          deps=lambda f, k: _cache_deps(f, k), params=lambda f, k: _cache_params(f, k),
          engines=frozenset({"dvc"}),
          resources=_job(8, 16000, 180, gpu=1)),
    Stage("cache_shard", "cache", "one shard of a split's cache (a scatter job)",
          per_shard, "sgpose cache --backbone {bb} --split {split} --shard {shard}",
          outs=lambda k: [Out(str(_paths(k).cache(k["split"]).with_suffix(".shards")) + f"/shard-{k['shard']}.h5")],
          deps=lambda f, k: _cache_deps(f, k), params=lambda f, k: _cache_params(f, k),
          engines=frozenset({"snakemake"}),
          resources=_job(8, 16000, 180, gpu=1)),
    Stage("cache_gather", "cache", "the manifest over a split's shards (the gather job)",
          per_cache_split, "sgpose cache --backbone {bb} --split {split} --gather",
          outs=lambda k: [Out(str(_paths(k).cache(k["split"])))],
          deps=lambda f, k: [str(_paths(k).cache(k["split"]).with_suffix(".shards")) + f"/shard-{i:05d}.h5"
                             for i in range(f.cache.num_shards(k["split"]))],
          engines=frozenset({"snakemake"}),
          resources=_job(1, 2000, 15)),
    Stage("start_pose", "start_pose", "the mean training pose (guidance.start_pose: mean)",
          per_backbone, "sgpose start_pose --backbone {bb}",
          outs=lambda k: [Out(str(_paths(k).start_pose))],
          deps=lambda f, k: [str(_paths(k).cache("train"))],
          resources=_job(1, 8000, 30)),
    Stage("train_refiner", "train_refiner", "train one refined variant from the cache (docs/method.md §4)",
          per_refiner, "sgpose train_refiner --backbone {bb} --variant {variant}",
          outs=lambda k: [Out(str(_paths(k).refiner(k["variant"]))),
                          Out(str(_paths(k).refiner_log(k["variant"])), kind="plot")],
          deps=_train_refiner_deps,
          params=lambda f, k: ["guidance", "refiner", "train_refiner", "compute"],
          resources=_job(8, 64000, 2880, gpu=1)),
    Stage("infer", "infer", "one variant's predictions on one split (docs/method.md §5)",
          per_prediction, "sgpose infer --backbone {bb} --variant {variant} --split {split}",
          outs=lambda k: [Out(str(_paths(k).keypoints(k["variant"], k["split"])))],
          deps=_infer_deps, params=_infer_params,
          resources=_job(1, 32000, 240, gpu=1)),
    # an online split (`online`): the frozen backbone over its crops once, every variant from the same forward
    Stage("infer_online", "infer_online", "every variant's predictions on one split, without a cache",
          per_online_split, "sgpose infer_online --backbone {bb} --split {split}",
          outs=lambda k: [Out(str(_paths(k).keypoints(v, k["split"]))) for v in ONLINE_VARIANTS],
          deps=_online_deps,
          params=lambda f, k: [f"backbones.{k['bb']}", "infer", "guidance", "refiner", "compute",
                               "cache.feature_levels"],
          resources=_job(4, 32000, 480, gpu=1)),
    Stage("evaluate", "evaluate", "OKS AP of one variant on its evaluation splits",
          per_evaluation, "sgpose evaluate --backbone {bb} --variant {variant}",
          outs=lambda k: [Out(str(_paths(k).metrics(k["variant"])), kind="metric")],
          deps=_evaluate_deps,
          params=lambda f, k: ["evaluate", f"datasets.{k['ds']}.layout"],
          resources=_job(1, 16000, 60)),
    Stage("report", "report", "every table and figure, and the page",
          once, "sgpose report",
          outs=lambda k: [Out(str(Paths.of("-", "-").report), directory=True)],
          deps=_report_deps, params=lambda f, k: ["report", "guidance", "refiner", "infer", "ablation", "evals"],
          resources=_job(1, 16000, 60)),
)


def _weights(file: ParamsFile, k: Keys):
    """The backbone.pt a backbone's cache (and online training) runs (`Paths.weights`)."""
    return _paths(k).weights(file.backbones[k["bb"]])


def _cache_deps(file: ParamsFile, k: Keys) -> list[str]:
    p = _paths(k)
    return [str(_weights(file, k)), str(p.instances(k["split"])), str(p.download_stamp)]


def _cache_params(file: ParamsFile, k: Keys) -> list[str]:
    """The keys that shape a shard (sgpose.stages.cache): the backbone, the storage, and the views of
    the train split or the flip view of an evaluation split; never the batch size or shard counts."""
    shaped = ["dtype", "compression", "feature_levels", *(("train_views", "augment", "store") if k["split"] == "train"
                                                           else ("flip_test",))]
    return [f"backbones.{k['bb']}", *(f"cache.{key}" for key in shaped), "compute"]


def entries() -> list[str]:
    """The entry modules the `code` stage digests: every other stage's."""
    return sorted({s.entry for s in STAGES if s.name != CODE_STAGE})


def stage(name: str) -> Stage:
    """The rule `name` (KeyError naming the rules)."""
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no rule {name!r} (rules: {', '.join(rule_names())})")


def jobs(file: ParamsFile, engine: str = "dvc") -> list[Job]:
    """Every job of the grid an engine runs, in DAG order."""
    return [j for s in STAGES if engine in s.engines for j in s.jobs(file)]


def rule_names() -> list[str]:
    """Every rule of the DAG (either engine's), in DAG order: the keys `resources:` may hold."""
    return [s.name for s in STAGES]


def check_resources(file: ParamsFile) -> None:
    """A `resources:` entry for a rule the DAG does not have is an error naming it and the rules."""
    unknown = sorted(set(file.resources) - set(rule_names()))
    if unknown:
        raise ValueError(f"resources: {', '.join(unknown)} is no rule of the DAG (rules: {', '.join(rule_names())})")


def resources_of(file: ParamsFile, rule: str) -> StageResources:
    """The job size of `rule`: the table's default with the params file's `resources.<rule>` applied."""
    return stage(rule).resources.updated(file.resources.get(rule))
