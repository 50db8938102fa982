"""sgpose.report.seeds and sgpose.report.claims: seeds collapsed to mean, spread and n; the verdict rule on
constructed numbers (supported, contradicted, not resolved)."""

from __future__ import annotations

import pytest
from sgpose.report import claims, seeds
from sgpose.report.seeds import Spread

OURS = claims.CLAIMS[2]  # ours vs A3
EQUAL = next(c for c in claims.CLAIMS if c.sign == 0)  # ours vs ours_S5


def test_seeds_collapse_to_their_mean_spread_and_count():
    metrics = {"ours": {"AP": 0.70, "AR": 0.8}, "ours_seed1": {"AP": 0.74, "AR": 0.9}, "ours_seed2": {"AP": 0.72, "AR": 0.7},
               "A3": {"AP": 0.75, "AR": 0.8}, "baseline": {"AP": 0.60}}
    out = seeds.collapse(metrics)
    assert set(out) == {"ours", "A3", "baseline"}
    assert out["ours"]["AP"] == pytest.approx(0.72) and out["ours"]["AR"] == pytest.approx(0.8)
    assert out["ours"][seeds.SPREAD] == pytest.approx(0.04) and out["ours"][seeds.SEEDS] == 3
    assert seeds.spread_of(out, "A3") == Spread(0.75, 0.0, 1)
    assert seeds.spread_of(out, "baseline").exact  # computed, not trained: no seed


@pytest.mark.parametrize("a, b, verdict", [
    (Spread(0.75, 0.01, 2), Spread(0.72, 0.01, 2), claims.SUPPORTED),  # d 3.0 > s 2.0
    (Spread(0.72, 0.01, 2), Spread(0.75, 0.01, 2), claims.CONTRADICTED),  # d -3.0 < -2.0
    (Spread(0.735, 0.01, 3), Spread(0.72, 0.01, 2), "not resolved at 2 seeds"),  # d 1.5 within s 2.0
    (Spread(0.80, 0.0, 1), Spread(0.70, 0.01, 3), "not resolved at 1 seed (ours: no spread; ablation.seeds)"),
])
def test_a_difference_counts_only_beyond_the_combined_spread(a, b, verdict):
    got, d, s = claims.verdict(OURS, a, b)
    assert got == verdict
    assert d == pytest.approx(100 * (a.mean - b.mean))


def test_an_unrefined_variant_has_no_spread_to_add():
    """ours vs baseline: the baseline is computed (spread 0 is its truth), so ours' spread alone decides."""
    gain = next(c for c in claims.CLAIMS if c.b == "baseline")
    assert claims.verdict(gain, Spread(0.70, 0.02, 2), Spread(0.68, 0.0, 0))[0] == "not resolved at 2 seeds"  # 2 <= 2
    assert claims.verdict(gain, Spread(0.71, 0.02, 2), Spread(0.68, 0.0, 0))[0] == claims.SUPPORTED  # 3 > 2


def test_an_equality_claim_is_contradicted_or_not_resolved_never_supported():
    assert claims.verdict(EQUAL, Spread(0.73, 0.01, 2), Spread(0.73, 0.01, 2))[0] == "not resolved at 2 seeds"
    assert claims.verdict(EQUAL, Spread(0.76, 0.01, 2), Spread(0.73, 0.01, 2))[0] == claims.CONTRADICTED


def test_the_ledger_names_what_it_cannot_test():
    table = claims.ledger(seeds.collapse({"ours": {"AP": 0.7}, "baseline": {"AP": 0.6}}), "sample/x")
    assert table.loc[table.source == "Table 1", "verdict"].tolist()[0] == "not tested: no A1 in this run"
    untested = table[table.source.isin(["Table 2", "Table 3", "Table 4"])]
    assert len(untested) == 3 and untested.verdict.str.startswith("not tested in this run: profile").all()
