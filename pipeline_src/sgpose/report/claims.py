"""The paper's claims, each with this run's verdict by one stated rule (docs/paper_notes.md, "Verdicts").

A claim compares two variants (the paper's numbers quoted beside it). This run's difference d = mean(A) -
mean(B) over their seeds counts only when it exceeds the combined spread s = spread(A) + spread(B), each the
range (max - min) of its seeds' AP, 0 for an unrefined variant (computed, not trained):
    supported        d > s in the paper's direction
    contradicted     d < -s (beyond the spread, the other way)
    not resolved     |d| <= s, or a trained variant with one seed (no spread to compare with)
A claim of equality (Fig. 5: S = 3 and S = 5 both 73.7) can only be contradicted (|d| > s) or not resolved:
a difference within the spread is no proof of equality. Claims this run cannot test (the official backbones
on full COCO, CrowdPose, detector boxes) say so and name the profile that tests them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sgpose.core.modes import Schedule
from sgpose.report import paper
from sgpose.report.seeds import Spread, spread_of

SUPPORTED, CONTRADICTED = "supported", "contradicted"
COLUMNS = ["claim", "source", "paper (quoted)", "measured on", "this run", "difference", "combined spread",
           "verdict"]


@dataclass(frozen=True)
class Claim:
    """`a` scores above `b` (sign +1) or the same (sign 0), as the paper reports in `source`."""

    text: str
    source: str
    a: str
    b: str
    sign: int = 1

    @property
    def quoted(self) -> tuple[float | None, float | None]:
        return paper.paper_ap(self.a)[1], paper.paper_ap(self.b)[1]


CLAIMS = (
    Claim("Graduated guidance beats no guidance (the UNet on the features alone)", "Table 1", "ours", "A1"),
    Claim("Graduated guidance beats a static map of the prediction", "Table 1", "ours", "A2"),
    Claim("Graduated guidance beats the interpolated sequence without graduated fusion", "Table 1", "ours", "A3"),
    Claim("Training on the prediction's path beats training on ground-truth paths (path consistency)", "Table 1",
          "ours", "A4"),
    Claim("The structure-guided refiner gains over its backbone", "Table 1", "ours", "baseline"),
    Claim("S = 3 and S = 5 interpolated poses score the same (more steps help up to a point)", "Fig. 5", "ours",
          "ours_S5", sign=0),
    Claim("The cosine schedule beats the linear one", "Fig. 6", "ours", f"ours_{Schedule.LINEAR}"),
)
# the claims of Tables 2-4 need the paper's backbones (official checkpoints) in the paper's setting
UNTESTED = (
    ("The refiner adds 0.4-1.3 AP on five backbones (SimpleBaseline R50/R101/R152, HRNet W32/W48), COCO val2017",
     "Table 2", "profiles coco, paper (official checkpoints on full COCO)"),
    ("The refiner adds AP on CrowdPose (R152: 74.8, HRNet-W48: 77.6)", "Table 3", "profiles crowdpose, paper"),
    ("The refiner adds AP with detector boxes (R152: 73.5 -> 74.2, HRNet-W48: 75.1 -> 75.6)", "Table 4",
     "profiles coco, paper"),
)


def verdict(claim: Claim, a: Spread | None, b: Spread | None) -> tuple[str, float | None, float | None]:
    """(verdict, d, s) of one claim from its two variants' spreads (in AP fractions); d and s in AP points."""
    if a is None or b is None:
        missing = claim.a if a is None else claim.b
        return f"not tested: no {missing} in this run", None, None
    d, s = 100 * (a.mean - b.mean), 100 * (a.spread + b.spread)
    one = [v for v, x in ((claim.a, a), (claim.b, b)) if x.n == 1]
    if one:
        return f"not resolved at 1 seed ({', '.join(one)}: no spread; ablation.seeds)", d, None
    n = min(x.n for x in (a, b) if not x.exact)
    if claim.sign == 0:
        return (CONTRADICTED if abs(d) > s else f"not resolved at {n} seeds"), d, s
    if d > s:
        return SUPPORTED, d, s
    return (CONTRADICTED if d < -s else f"not resolved at {n} seeds"), d, s


def _fmt(name: str, x: Spread | None) -> str:
    if x is None:
        return f"{name} -"
    tail = "" if x.exact else (f" (spread {100 * x.spread:.2f}, n {x.n})" if x.n > 1 else " (1 seed)")
    return f"{name} {100 * x.mean:.2f}{tail}"


def ledger(metrics: dict[str, dict], where: str) -> pd.DataFrame:
    """One row per claim: the paper's numbers, this run's on `where` (collapsed metrics: `seeds.collapse`), the
    difference, the combined spread, the verdict; then the claims this run does not test."""
    rows = []
    for c in CLAIMS:
        a, b = spread_of(metrics, c.a), spread_of(metrics, c.b)
        v, d, s = verdict(c, a, b)
        qa, qb = c.quoted
        rows.append({"claim": c.text, "source": c.source, "paper (quoted)": f"{c.a} {qa} vs {c.b} {qb}",
                     "measured on": where, "this run": f"{_fmt(c.a, a)} vs {_fmt(c.b, b)}",
                     "difference": None if d is None else round(d, 2),
                     "combined spread": None if s is None else round(s, 2), "verdict": v})
    rows += [{"claim": text, "source": source, "paper (quoted)": "-", "measured on": "-", "this run": "-",
              "difference": None, "combined spread": None, "verdict": f"not tested in this run: {profile}"}
             for text, source, profile in UNTESTED]
    return pd.DataFrame(rows, columns=COLUMNS)
