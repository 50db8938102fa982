"""Figs. 4-6 (this run beside the paper's quoted points) and the training curves; each PNG comes
with the CSV of the numbers it draws. Missing data draws a "no runs yet" panel, never fails.

This run and the paper are drawn in separate panels: a smoke-scale run's AP and the paper's
72-77 do not share a useful axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sgpose.core.io import atomic_path  # noqa: E402
from sgpose.report import paper  # noqa: E402

NO_RUNS = "no runs yet"
RUN_COLOR, PAPER_COLOR = "#2a7ab0", "#b0b0b0"


def save(fig: plt.Figure, path: Path, data: pd.DataFrame) -> pd.DataFrame:
    """Write the figure (PNG, atomically), its data as `<stem>.csv` beside it, close it; return data."""
    path = Path(path)
    top = 1.0 - 0.45 / fig.get_figheight() if fig._suptitle is not None else 1.0  # room for the suptitle
    fig.tight_layout(rect=(0.0, 0.0, 1.0, top))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    with atomic_path(path.with_suffix(".csv")) as tmp:
        data.to_csv(tmp, index=False)
    return data


def no_runs(ax: plt.Axes, what: str = NO_RUNS) -> None:
    """Mark an empty panel with a visible message instead of an empty axis."""
    ax.text(0.5, 0.5, what, ha="center", va="center", fontsize=12, color="#a00", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _present(values) -> list[bool]:
    return [v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values]


def _bars(ax: plt.Axes, labels: list[str], values: list, color: str, title: str, spreads: list | None = None) -> None:
    """Bars with value labels; absent values get a '-' label and no bar; `spreads` (a seed spread per bar, NaN
    where one run): a whisker over the seeds' range, centred on the mean."""
    ok = _present(values)
    if not any(ok):
        no_runs(ax)
    else:
        heights = [v if k else 0.0 for v, k in zip(values, ok)]
        half = [s / 2 if s is not None and s == s else 0.0 for s in (spreads or [None] * len(values))]
        bars = ax.bar(labels, heights, color=color, yerr=half if any(half) else None, capsize=3 if any(half) else 0)
        ax.bar_label(bars, labels=[f"{v:.2f}" if k else "-" for v, k in zip(values, ok)], fontsize=8,
                     padding=8 if any(half) else 0)
        ax.set_ylabel("AP (%)")
        ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(title, fontsize=10)


def fig4_ablation(table1: pd.DataFrame, path: Path, run_label: str) -> pd.DataFrame:
    """Fig. 4: Table 1 as bars, this run's AP (left; the mean over seeds, a whisker over their range where a
    variant has several) and the paper's quoted AP (right)."""
    spread = table1["AP spread"] if "AP spread" in table1 else pd.Series([math.nan] * len(table1))
    data = pd.DataFrame({"variant": table1["variant"], "AP (this run)": table1["AP (this run)"],
                         "AP spread": list(spread), "paper AP (quoted)": table1["paper AP (quoted)"]})
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    _bars(a, list(data["variant"]), list(data["AP (this run)"]), RUN_COLOR, f"this run: {run_label}",
          list(data["AP spread"]))
    _bars(b, list(data["variant"]), list(data["paper AP (quoted)"]), PAPER_COLOR,
          f"paper (quoted): {paper.TABLE1_BACKBONE}")
    b.set_ylim(70, 75)
    fig.suptitle("Fig. 4: ablation (Table 1)", fontsize=11)
    return save(fig, path, data)


def _points(ax: plt.Axes, xs: list, ys: list, color: str, title: str, xlabel: str, spreads: list | None = None) -> None:
    ok = _present(ys)
    if not any(ok):
        no_runs(ax)
    else:
        px = [x for x, k in zip(xs, ok) if k]
        py = [y for y, k in zip(ys, ok) if k]
        half = [s / 2 if s == s else 0.0 for s, k in zip(spreads or [math.nan] * len(ys), ok) if k]
        ax.errorbar(px, py, yerr=half if any(half) else None, fmt="o-", color=color, capsize=3)
        for x, y in zip(px, py):
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("AP (%)")
        ax.set_xticks(px)
    ax.set_title(title, fontsize=10)


def fig5_steps(run_ap: dict[int, float], path: Path, run_label: str, spread: dict[int, float] | None = None) -> pd.DataFrame:
    """Fig. 5: AP vs the number of interpolated poses S; `run_ap` S -> this run's AP (%) (`spread`: its seeds'
    range, drawn as a whisker where a point has several)."""
    S = sorted(set(run_ap) | set(paper.FIG5_S_SWEEP))
    spread = spread or {}
    data = pd.DataFrame({"S": S, "AP (this run)": [run_ap.get(s, math.nan) for s in S],
                         "AP spread": [spread.get(s, math.nan) or math.nan for s in S],
                         "paper AP (quoted)": [paper.FIG5_S_SWEEP.get(s, math.nan) for s in S]})
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    _points(a, S, list(data["AP (this run)"]), RUN_COLOR, f"this run: {run_label}", "S", list(data["AP spread"]))
    _points(b, S, list(data["paper AP (quoted)"]), "#666", "paper (quoted; only these points stated)", "S")
    fig.suptitle("Fig. 5: AP vs number of interpolated poses S", fontsize=11)
    return save(fig, path, data)


def fig6_schedule(run_ap: dict[str, float], path: Path, run_label: str, spread: dict[str, float] | None = None) -> pd.DataFrame:
    """Fig. 6: cosine vs linear interpolation schedule; `run_ap` schedule -> this run's AP (%) (`spread`: its
    seeds' range, a whisker where a schedule has several)."""
    names = list(paper.FIG6_SCHEDULE)
    spread = spread or {}
    data = pd.DataFrame({"schedule": names, "AP (this run)": [run_ap.get(s, math.nan) for s in names],
                         "AP spread": [spread.get(s, math.nan) or math.nan for s in names],
                         "paper AP (quoted)": [paper.FIG6_SCHEDULE[s] for s in names]})
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.8))
    _bars(a, names, list(data["AP (this run)"]), RUN_COLOR, f"this run: {run_label}", list(data["AP spread"]))
    _bars(b, names, list(data["paper AP (quoted)"]), PAPER_COLOR, "paper (quoted)")
    b.set_ylim(72, 75)
    fig.suptitle("Fig. 6: interpolation schedule", fontsize=11)
    return save(fig, path, data)


def training_curves(logs: dict[str, pd.DataFrame], path: Path) -> pd.DataFrame:
    """Loss per epoch of the backbone (key `backbone`) and of each refiner (other keys), two panels."""
    frames = [df[["epoch", "loss"]].assign(curve=name) for name, df in logs.items() if len(df)]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["epoch", "loss", "curve"])
    data = data[["curve", "epoch", "loss"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, title, keep in ((axes[0], "backbone", lambda n: n == "backbone"),
                            (axes[1], "refiners", lambda n: n != "backbone")):
        curves = [n for n in data["curve"].unique() if keep(n)]
        if not curves:
            no_runs(ax)
        for name in curves:
            part = data[data["curve"] == name]
            ax.plot(part["epoch"], part["loss"], label=name)
        if curves:
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel("training loss")
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle("Training curves (train_log.csv)", fontsize=11)
    return save(fig, path, data)


def validation_curves(panels: dict[str, dict[str, pd.DataFrame]], lines: dict[str, dict[str, float]],
                      path: Path) -> pd.DataFrame:
    """Validation AP (%) per epoch of every refiner (`val_ap` of its train_log.csv), one panel per backbone,
    with that backbone's baseline and copy scores as horizontal lines: a curve still rising at its last
    epoch is under-trained; one flat at the copy line is at the guidance's ceiling."""
    frames = [df[["epoch", "val_ap"]].assign(backbone=bb, variant=v) for bb, logs in panels.items()
              for v, df in logs.items() if "val_ap" in df]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["epoch", "val_ap", "backbone", "variant"])
    data = data.assign(val_ap=pd.to_numeric(data["val_ap"], errors="coerce") * 100.0).dropna(subset=["val_ap"])
    data = data[["backbone", "variant", "epoch", "val_ap"]]
    names = list(panels) or ["-"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    for ax, bb in zip(axes[0], names):
        part = data[data["backbone"] == bb]
        if part.empty:
            no_runs(ax, "no validation AP logged (train_refiner.val_every: 0)")
            ax.set_title(bb, fontsize=10)
            continue
        for variant, curve in part.groupby("variant", sort=True):
            ax.plot(curve["epoch"], curve["val_ap"], marker="o", markersize=3, label=variant)
        for name, style in (("baseline", "--"), ("copy", ":")):
            if name in lines.get(bb, {}):
                ax.axhline(lines[bb][name], color="black", linestyle=style, linewidth=1, label=f"{name} (infer)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("val AP (%)")
        ax.set_title(bb, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("Validation AP during refiner training, beside the baseline and the copy score", fontsize=11)
    return save(fig, path, data)
