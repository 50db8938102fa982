"""What each rule of the DAG asks a scheduler for: the `resources:` section of params.yaml.

One entry per Snakemake rule (threads, mem_mb, runtime in minutes, gpu); the Snakefile's rules read
them (`threads:` and `resources:`), so a params profile sizes its own jobs: the sample grid asks for
minutes and a few GB without a GPU, the paper's for GPUs and days. On SLURM the executor plugin turns
them into `--cpus-per-task`, `--mem`, `-t` and `--gpus` (docs/cluster.md); locally `gpu` only limits
how many GPU jobs run at once (the local profile's `resources: [gpu=N]`).

A stage's entry may name only the values it changes: the rest keep that stage's defaults below
(full COCO on one GPU). Job sizes never change results: no stage lists `resources` among its params
(only check_params, which validates the whole file, re-runs, in seconds).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StageResources(BaseModel):
    """One rule's job: CPU threads, memory, wall time, GPUs (0: runs on the CPU, on any node)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(1, ge=1)  # Snakemake threads, SLURM --cpus-per-task
    mem_mb: int = Field(4000, ge=100)  # SLURM --mem (MB)
    runtime: int = Field(60, ge=1)  # wall time in minutes, SLURM -t
    gpu: int = Field(0, ge=0)  # SLURM --gpus; 0: no GPU asked for (compute.device auto falls back to the CPU)

    def snakemake(self) -> dict[str, int]:
        """The rule's `resources:` (threads are a directive of their own)."""
        return {"mem_mb": self.mem_mb, "runtime": self.runtime, "gpu": self.gpu}


def _job(threads: int, mem_mb: int, runtime: int, gpu: int = 0) -> StageResources:
    return StageResources(threads=threads, mem_mb=mem_mb, runtime=runtime, gpu=gpu)


# full COCO on one GPU (the sizes the rules had before this section): what a stage left out gets
DEFAULTS: dict[str, StageResources] = {
    "check_params": _job(1, 1000, 10),
    "download": _job(1, 4000, 240),
    "prepare": _job(1, 16000, 60),
    "prepare_detections": _job(1, 16000, 60),
    "train_backbone": _job(8, 32000, 4320, gpu=1),
    "cache_shard": _job(8, 16000, 180, gpu=1),
    "cache_gather": _job(1, 2000, 15),
    "start_pose": _job(1, 8000, 30),
    "train_refiner": _job(8, 64000, 2880, gpu=1),
    "infer": _job(1, 32000, 240, gpu=1),
    "infer_online": _job(4, 32000, 480, gpu=1),
    "evaluate": _job(1, 16000, 60),
    "report": _job(1, 16000, 60),
}


class ResourcesParams(BaseModel):
    """rule name -> its job's resources; every rule of the DAG has an entry (DEFAULTS fill the gaps)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check_params: StageResources = DEFAULTS["check_params"]
    download: StageResources = DEFAULTS["download"]
    prepare: StageResources = DEFAULTS["prepare"]
    prepare_detections: StageResources = DEFAULTS["prepare_detections"]
    train_backbone: StageResources = DEFAULTS["train_backbone"]
    cache_shard: StageResources = DEFAULTS["cache_shard"]
    cache_gather: StageResources = DEFAULTS["cache_gather"]
    start_pose: StageResources = DEFAULTS["start_pose"]
    train_refiner: StageResources = DEFAULTS["train_refiner"]
    infer: StageResources = DEFAULTS["infer"]
    infer_online: StageResources = DEFAULTS["infer_online"]
    evaluate: StageResources = DEFAULTS["evaluate"]
    report: StageResources = DEFAULTS["report"]

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, tree: Any) -> Any:
        """A stage's partial entry ({runtime: 10}) keeps that stage's other defaults, not the generic ones."""
        if not isinstance(tree, dict):
            return tree
        unknown = sorted(set(tree) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"resources: {', '.join(map(str, unknown))} is no rule of the DAG "
                             f"(rules: {', '.join(DEFAULTS)})")
        return {rule: DEFAULTS[rule].model_dump() | entry if isinstance(entry, dict) else entry
                for rule, entry in tree.items()}

    def of(self, rule: str) -> StageResources:
        """The resources of a rule, by name (KeyError names the rules)."""
        if rule not in DEFAULTS:
            raise KeyError(f"no resources for rule {rule!r} (rules: {', '.join(DEFAULTS)})")
        return getattr(self, rule)


def read_resources(config: dict) -> ResourcesParams:
    """The validated `resources:` section of a params tree (Snakemake's `config`); defaults when absent.

    Raises ValueError naming params.yaml and the bad value, as the stages' own validation does.
    """
    try:
        return ResourcesParams.model_validate(config.get("resources") or {})
    except ValueError as err:
        raise ValueError(f"params.yaml: invalid resources section: {err}") from None
