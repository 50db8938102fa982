"""What a rule of the DAG asks a scheduler for: the `resources:` section of params.yaml.

Each rule's defaults (full COCO on one GPU) are declared with the rule itself, in the stage table
(`sgpose.dag.table`); this section holds a params profile's changes to them, rule by rule, and may name
only the values it changes (`train_refiner: {runtime: 30}`). The Snakefile's rules read the merged values
(`threads:` and `resources:`), a stage run by hand or by DVC takes its thread count from them
(`sgpose.runtime.threads`). On SLURM the executor plugin turns them into `--cpus-per-task`, `--mem`, `-t`
and `--gpus` (docs/cluster.md); locally `gpu` only limits how many GPU jobs run at once.

Job sizes never change results: no stage lists `resources` among its params (only check_params, which
validates the whole file, re-runs, in seconds).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StageResources(BaseModel):
    """One rule's job: CPU threads, memory, wall time, GPUs (0: runs on the CPU, on any node)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(1, ge=1)  # Snakemake threads, SLURM --cpus-per-task, the stage's torch/OpenCV threads
    mem_mb: int = Field(4000, ge=100)  # SLURM --mem (MB)
    runtime: int = Field(60, ge=1)  # wall time in minutes, SLURM -t
    gpu: int = Field(0, ge=0)  # SLURM --gpus; 0: no GPU asked for (compute.device auto falls back to the CPU)

    def snakemake(self) -> dict[str, int]:
        """The rule's `resources:` (threads are a directive of their own)."""
        return {"mem_mb": self.mem_mb, "runtime": self.runtime, "gpu": self.gpu}

    def updated(self, change: ResourcesChange | None) -> StageResources:
        """These resources with a params file's change applied (None: unchanged)."""
        if change is None:
            return self
        return StageResources.model_validate(self.model_dump() | change.model_dump(exclude_none=True))


class ResourcesChange(BaseModel):
    """A params file's entry for one rule: the values it changes, the others None (the rule's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int | None = Field(None, ge=1)
    mem_mb: int | None = Field(None, ge=100)
    runtime: int | None = Field(None, ge=1)
    gpu: int | None = Field(None, ge=0)
