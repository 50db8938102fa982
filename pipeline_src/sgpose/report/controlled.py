"""The controlled-error benchmark in the report: Table 1's variants on oracle / perturbed backbones
(sgpose.controlled.perturb), each in its own table beside the paper-setting Table 1, never mixed with it.

A controlled backbone's Y0 is the ground truth rendered with synthetic errors, so its numbers say
how much the refiner recovers from known errors at a realistic AP; they are not comparable with the
paper's (no paper column) and are kept out of Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.controlled.perturb import ARCHS
from sgpose.core.variants import UNREFINED
from sgpose.report import discover, paper, seeds, tables
from sgpose.report.page import Section

LABEL = "controlled-error benchmark"
GAIN = "gain over baseline"


@dataclass(frozen=True)
class Controlled:
    """A backbone directory whose Y0 is rendered from the ground truth."""

    dataset: str
    backbone: str
    arch: str
    features_from: str | None


def find(params: Params, paths: Paths, runs: list[discover.Run]) -> list[Controlled]:
    """Every (dataset, backbone) with runs whose backbone is controlled: by its val cache's `backbone`
    attribute, else by the current params' entry of that name."""
    out = []
    for ds, bb in sorted({(r.dataset, r.backbone) for r in runs}):
        spec = discover.cache_attrs_of(Paths.of(ds, bb, paths.root)).get("backbone")
        if not isinstance(spec, dict) and bb in params.file.backbones and params.file.backbones[bb].dataset == ds:
            spec = params.file.backbones[bb].model_dump()
        if isinstance(spec, dict) and spec.get("arch") in ARCHS:
            out.append(Controlled(ds, bb, spec["arch"], spec.get("features_from")))
    return out


def table(metrics: dict[str, dict]) -> pd.DataFrame:
    """Table 1's rows (baseline, A1-A4, ours) then the sweeps, this run's metrics (x100) and the AP gain
    over this backbone's baseline; no paper column (a different setting)."""
    rows = []
    described = {v: d for v, (d, _) in paper.TABLE1.items()} | {v: u.description for v, u in UNREFINED.items()}
    for variant in tables.variant_order(set(paper.TABLE1) | set(metrics)):
        other = "sweep (Figs. 5-6)" if variant.startswith("ours_") else ""
        row = {"variant": variant, "description": described.get(variant, other)}
        m = metrics.get(variant)
        rows.append(row | tables._run_values(m, tables.RUN_COLUMNS) | tables.seed_values(m))
    df = pd.DataFrame(rows, columns=["variant", "description", *tables.RUN_COLUMNS, *tables.SEED_COLUMNS])
    df[GAIN] = (df["AP (this run)"] - df.loc[df.variant == "baseline", "AP (this run)"].squeeze()).round(2) \
        if (df.variant == "baseline").any() else float("nan")
    return df


def sections(params: Params, paths: Paths, runs: list[discover.Run], out: Path) -> list[Section]:
    """One Table 1 per controlled backbone with runs, written as CSV + Markdown."""
    found = []
    for c in find(params, paths, runs):
        df = table(seeds.collapse(discover.by_variant(discover.select(runs, c.dataset, c.backbone, "val"))))
        source = f", features of {c.features_from}" if c.features_from else ""
        caption = (f"Table 1, {LABEL}: {c.dataset}/{c.backbone} (AP in %, split val, ground-truth boxes). Y0 is "
                   f"the ground truth rendered {'exactly' if c.arch == 'oracle' else 'with synthetic errors'} "
                   f"(arch {c.arch}{source}): NOT the paper's setting and not comparable with its numbers.")
        key = f"table1_{c.dataset}_{c.backbone}"
        tables.write_table(df, out / f"{key}.csv", out / f"{key}.md", caption)
        found.append(Section(key, f"Table 1 ({LABEL}): {c.backbone}", caption, table=df,
                             links=[f"{key}.csv", f"{key}.md"]))
    return found


def excluded(found: list[Controlled], runs: list[discover.Run]) -> list[discover.Run]:
    """`runs` without those of controlled backbones (Tables 2-4 are the paper's setting)."""
    skip = {(c.dataset, c.backbone) for c in found}
    return [r for r in runs if (r.dataset, r.backbone) not in skip]
