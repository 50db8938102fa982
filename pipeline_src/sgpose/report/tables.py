"""Tables of this run's metrics beside the paper's quoted numbers; CSV and Markdown writers."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sgpose.core.io import atomic_path
from sgpose.core.variants import BASELINE, BASELINE_DARK, COPY, ORACLE, UNREFINED
from sgpose.report import paper
from sgpose.report.seeds import SEEDS, SPREAD

# column -> metrics key; this run's numbers, in %
RUN_COLUMNS = {"AP (this run)": "AP", "AP50": "AP50", "AP75": "AP75", "APM": "APM", "APL": "APL", "AR": "AR"}
SEED_COLUMNS = ["AP spread", "seeds"]  # a variant trained under several seeds: AP's range (max - min) and n
PAPER_COLUMN = "paper AP (quoted)"
TABLE1_COLUMNS = ["variant", "description", *RUN_COLUMNS, *SEED_COLUMNS, PAPER_COLUMN]
TABLE2_COLUMNS = ["backbone", "directory", "input", "baseline AP (this run)", "baseline + DARK AP (this run)",
                  "copy AP (this run)", "ours AP (this run)", "gain (this run)", "gain over baseline + DARK (this run)",
                  "baseline AP (paper, quoted)", "ours AP (paper, quoted)", "gain (paper, quoted)"]
TABLE3_COLUMNS = {"AP": "AP", "AP50": "AP50", "AP75": "AP75", "AP(E)": "AP_easy", "AP(M)": "AP_medium",
                  "AP(H)": "AP_hard"}
TABLE4_COLUMNS = {"AP": "AP", "AP50": "AP50", "AP75": "AP75", "APM": "APM", "APL": "APL", "AR": "AR"}
QUOTED = "paper (quoted)"
NAN = float("nan")


# baseline, baseline_dark, the ceilings (copy, oracle), A1..A4, ours
ORDER = [*UNREFINED, *(v for v in paper.TABLE1 if v not in UNREFINED)]
CEILINGS = (COPY, ORACLE)  # rows of Table 1 where this run has them: what a refiner is measured against


def variant_order(variants) -> list[str]:
    """Table 1's order first (baseline, baseline_dark, A1..A4, ours), then any others (sweeps) sorted."""
    known = [v for v in ORDER if v in variants]
    return known + sorted(v for v in variants if v not in ORDER)


def _rank(variant: str) -> int:
    """Position in Table 1's order (baseline_dark beside baseline); other variants after."""
    return ORDER.index(variant) if variant in ORDER else len(ORDER)


def _run_values(m: dict | None, columns: dict[str, str]) -> dict[str, float]:
    """This run's metrics x100 for `columns` (column -> metrics key); NaN ('-') where absent, and where
    COCOeval reports -1: a category without ground truth (e.g. no easy CrowdPose image), undefined."""
    m = m or {}
    return {col: round(100.0 * float(m[key]), 2) if key in m and float(m[key]) >= 0 else NAN
            for col, key in columns.items()}


def seed_values(m: dict | None) -> dict[str, float]:
    """The seed columns of a variant's collapsed metrics (`sgpose.report.seeds`): its AP's spread (x100) and n,
    '-' for a variant with one run (no spread: an unrefined variant, or one seed)."""
    n = (m or {}).get(SEEDS)
    if not n or n < 2:
        return {"AP spread": NAN, "seeds": n if n else NAN}
    return {"AP spread": round(100.0 * float(m[SPREAD]), 2), "seeds": n}


def table1(metrics: dict[str, dict]) -> pd.DataFrame:
    """Table 1: one row per paper variant (baseline, A1..A4, ours), this run's metrics (x100, in %)
    where a metrics file exists ('-' where not), and the paper's quoted AP; after the baseline, the
    ceilings this run has (copy: the guidance returned; oracle: the targets), which the paper does not report.

    `metrics` maps a variant name to its metrics (one split) (fractions in [0, 1]), seeds collapsed
    (`sgpose.report.seeds.collapse`: the mean, with its spread and n); other variants (sweeps) belong to
    Figs. 5-6 and are not listed here.
    """
    rows = []
    for variant, (desc, quoted) in paper.TABLE1.items():
        m = metrics.get(variant)
        row = {"variant": variant, "description": desc} | _run_values(m, RUN_COLUMNS) | seed_values(m)
        rows.append(row | {PAPER_COLUMN: quoted})
        if variant == BASELINE:
            rows += [{"variant": c, "description": UNREFINED[c].description} | _run_values(metrics[c], RUN_COLUMNS)
                     | seed_values(metrics[c]) | {PAPER_COLUMN: NAN} for c in CEILINGS if c in metrics]
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def table2(backbones: list[dict]) -> pd.DataFrame:
    """Table 2: baseline, baseline + DARK (the zero-cost decoding a refiner must beat) and ours per
    backbone, with ours' gain over each. `backbones`: dicts with `dir`, `paper_name` (or None),
    `input_size` and `metrics` (variant -> metrics). The paper's five backbones are always rows
    (this run '-' where no directory matches); found backbones the paper lacks follow."""
    rows, used = [], set()
    for name, (q_base, q_ours) in paper.TABLE2.items():
        matches = [b for b in backbones if b["paper_name"] == name] or [None]
        for b in matches:
            rows.append(_table2_row(name, b, q_base, q_ours))
            used.add(id(b))
    rows += [_table2_row(b["paper_name"] or b["dir"], b, NAN, NAN) for b in backbones if id(b) not in used]
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def _table2_row(name: str, b: dict | None, q_base: float, q_ours: float) -> dict:
    m = (b or {}).get("metrics", {})
    base, dark, copy, ours = (_run_values(m.get(v), {"x": "AP"})["x"] for v in (BASELINE, BASELINE_DARK, COPY, "ours"))
    size = (b or {}).get("input_size")
    return {"backbone": name, "directory": (b or {}).get("dir", "-"),
            "input": "x".join(map(str, size)) if size else "-",
            "baseline AP (this run)": base, "baseline + DARK AP (this run)": dark, "copy AP (this run)": copy,
            "ours AP (this run)": ours,
            "gain (this run)": round(ours - base, 2), "gain over baseline + DARK (this run)": round(ours - dark, 2),
            "baseline AP (paper, quoted)": q_base, "ours AP (paper, quoted)": q_ours,
            "gain (paper, quoted)": round(q_ours - q_base, 2)}


def quoted_vs_runs(quoted: dict[str, float], runs: list, columns: dict[str, str]) -> pd.DataFrame:
    """Tables 3-4: the paper's quoted rows (AP only; its other columns '-'), then one row per run of
    this pipeline (baseline and refined variants) with every column of `columns` computed."""
    rows = [{"method": method, "source": QUOTED, **{c: NAN for c in columns}, "AP": ap}
            for method, ap in quoted.items()]
    for r in sorted(runs, key=lambda r: (r.dataset, r.backbone, _rank(r.variant), r.variant)):
        rows.append({"method": f"{r.backbone} {r.variant}", "source": f"this run ({r.dataset})"}
                    | _run_values(r.metrics, columns))
    return pd.DataFrame(rows, columns=["method", "source", *columns])


def table3(runs: list) -> pd.DataFrame:
    """Table 3 (CrowdPose val): quoted literature + paper rows, then this pipeline's CrowdPose runs."""
    return quoted_vs_runs(paper.TABLE3_CROWDPOSE, runs, TABLE3_COLUMNS)


def table4(runs: list) -> pd.DataFrame:
    """Table 4 (COCO val, detection boxes): quoted rows, then this pipeline's detection-box runs."""
    return quoted_vs_runs(paper.TABLE4_COCO_DET, runs, TABLE4_COLUMNS)


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
