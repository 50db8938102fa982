"""Variants trained under several seeds (`ablation.seeds`: `<variant>` is seed 0, `<variant>_seed<k>` seed k),
collapsed for the tables and figures: each metric's mean over the seeds, the AP's spread (max - min) and n.

The spread is the range of the seeds' AP, not a standard error: with two or three seeds it is what was seen,
and the claims ledger's rule compares a difference with the two spreads added (docs/paper_notes.md,
"Verdicts"). An unrefined variant (baseline, copy, oracle) has no seed: it is computed, not trained, and
its spread is 0 with n = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgpose.core.variants import UNREFINED, seed_of

SPREAD, SEEDS = "AP_spread", "seeds"  # keys `collapse` adds to a variant's metrics


@dataclass(frozen=True)
class Spread:
    """One variant's AP over its seeds (fractions): the mean, the range max - min, how many seeds."""

    mean: float
    spread: float
    n: int

    @property
    def exact(self) -> bool:
        """An unrefined variant: computed without a seed (spread 0 is its truth, not a lack of seeds)."""
        return self.n == 0


def collapse(metrics: dict[str, dict]) -> dict[str, dict]:
    """{variant: metrics} with every `<v>_seed<k>` folded into `<v>`: each numeric metric's mean over the
    seeds, plus `AP_spread` (max - min of AP) and `seeds` (n). Variants with one seed keep their metrics,
    with spread 0 and n 1."""
    groups: dict[str, list[dict]] = {}
    for variant, m in metrics.items():
        groups.setdefault(seed_of(variant)[0], []).append(m)
    out = {}
    for base, runs in groups.items():
        keys = [k for k in runs[0] if all(isinstance(r.get(k), (int, float)) for r in runs)]
        mean = {k: sum(float(r[k]) for r in runs) / len(runs) for k in keys}
        aps = [float(r["AP"]) for r in runs if "AP" in r]
        out[base] = {**runs[0], **mean, SPREAD: (max(aps) - min(aps)) if aps else 0.0, SEEDS: len(runs)}
    return out


def spread_of(metrics: dict[str, dict], variant: str) -> Spread | None:
    """The AP spread of `variant` in collapsed metrics (None where it has no AP); n = 0 for an unrefined one."""
    m = metrics.get(variant)
    if m is None or "AP" not in m:
        return None
    return Spread(float(m["AP"]), float(m.get(SPREAD, 0.0)), 0 if variant in UNREFINED else int(m.get(SEEDS, 1)))
