"""Tables of this run's metrics beside the paper's quoted numbers; CSV and Markdown writers."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sgpose.io import atomic_path
from sgpose.report import paper

# column -> metrics.json key; this run's numbers, in %
RUN_COLUMNS = {"AP (this run)": "AP", "AP50": "AP50", "AP75": "AP75", "APM": "APM", "APL": "APL", "AR": "AR"}
PAPER_COLUMN = "paper AP (quoted)"
TABLE1_COLUMNS = ["variant", "description", *RUN_COLUMNS, PAPER_COLUMN]


def variant_order(variants) -> list[str]:
    """Table 1's order first (baseline, A1..A4, ours), then any others (sweeps) sorted."""
    known = [v for v in paper.TABLE1 if v in variants]
    return known + sorted(v for v in variants if v not in paper.TABLE1)


def table1(metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per variant present: this run's metrics (x100, AP in %) and the paper's AP.

    `metrics` maps a variant name to its metrics.json content (fractions in [0, 1]).
    """
    rows = []
    for variant in variant_order(metrics):
        m = metrics[variant]
        desc, quoted = paper.paper_ap(variant)
        row = {"variant": variant, "description": desc}
        row.update({col: round(100.0 * float(m[key]), 2) for col, key in RUN_COLUMNS.items()})
        row[PAPER_COLUMN] = quoted if quoted is not None else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{round(value, 2):g}"
    return str(value).replace("|", "\\|")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no `tabulate` dependency); NaN prints as '-'."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, caption: str = "") -> None:
    """Write `df` as CSV and as Markdown (with an optional caption line), both atomically."""
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
        tmp.write_text((caption + "\n\n" if caption else "") + to_markdown(df))
