"""The Snakemake form of the stage table: one rule per stage, its wildcards the job keys.

The Snakefile loads params.yaml through `sgpose.config` (validated, defaults filled in: nothing typed a
second time) and calls `rules(file)`; each `Rule` gives the output patterns, and functions of the
wildcards for the inputs (data and code), the params values (Snakemake's params rerun-trigger then
matches DVC's params tracking) and the command. Each job's log goes to logs/<stage>/<keys>.log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sgpose.config import ParamsFile
from sgpose.dag.table import STAGES, WHOLE_FILE, Keys, Stage, check_resources, jobs

KEYS = ("ds", "bb", "variant", "split", "shard")
LOG_DIR = "logs"


@dataclass(frozen=True)
class Rule:
    """What the Snakefile needs of one stage."""

    stage: Stage
    file: ParamsFile
    wildcards: tuple[str, ...]  # the job keys, in order

    @property
    def name(self) -> str:
        return self.stage.name

    def _keys(self, wildcards: Any) -> Keys:
        return {k: str(getattr(wildcards, k)) if not isinstance(wildcards, dict) else str(wildcards[k])
                for k in self.wildcards}

    def outputs(self) -> dict[str, Any]:
        """Named output patterns ({ds}, {bb}, ... wildcards), directories as Snakemake's `directory()`."""
        from snakemake.io import directory  # only where Snakemake reads the Snakefile

        pattern = {k: "{" + k + "}" for k in self.wildcards}
        return {f"out{i}": directory(o.path) if o.directory else o.path
                for i, o in enumerate(self.stage.outs(pattern))}

    def log(self) -> str:
        return f"{LOG_DIR}/{self.name}/" + ("-".join("{" + k + "}" for k in self.wildcards) or "all") + ".log"

    def inputs(self, wildcards: Any) -> list[str]:
        keys = self._keys(wildcards)
        job = self.stage.job(self.file, keys)
        return [*job.deps, *job.code]

    def params(self, wildcards: Any) -> dict[str, Any]:
        """{key: value} of every params key the job reads (validated values, defaults included)."""
        job = self.stage.job(self.file, self._keys(wildcards))
        tree = self.file.model_dump(mode="json")
        return {key: tree if key == WHOLE_FILE else lookup(tree, key) for key in job.params}

    def command(self, wildcards: Any) -> str:
        """The job's command. A params value, not the rule's shell string: the Snakefile defines its rules in
        a loop, and Snakemake evaluates a shell string when the job runs, when the loop variable is the
        last rule's."""
        return self.stage.cmd.format(**self._keys(wildcards))

    def constraints(self) -> dict[str, str]:
        """Wildcard regexes: exactly the values of the grid (no rule can claim another's file)."""
        values: dict[str, set[str]] = {k: set() for k in self.wildcards}
        for job in self.stage.jobs(self.file):
            for k in self.wildcards:
                values[k].add(job.keys[k])
        return {k: "|".join(re.escape(v) for v in sorted(vals)) or "(?!)" for k, vals in values.items()}


def lookup(tree: dict, key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def rules(file: ParamsFile) -> list[Rule]:
    """One Rule per stage Snakemake runs, in DAG order (a `resources:` key that is no rule: ValueError)."""
    check_resources(file)
    out = []
    for stage in STAGES:
        if "snakemake" not in stage.engines:
            continue
        grid = list(stage.jobs(file))
        if not grid:  # e.g. no backbone scored on detector boxes: no prepare_detections rule
            continue
        wildcards = tuple(k for k in KEYS if k in grid[0].keys)
        out.append(Rule(stage, file, wildcards))
    return out


def targets(file: ParamsFile) -> list[str]:
    """What `snakemake` builds by default: the outputs of the leaves (metrics, the report, the params check)."""
    return [o.path for j in jobs(file, "snakemake") if j.stage in ("evaluate", "report", "check_params")
            for o in j.outs]
