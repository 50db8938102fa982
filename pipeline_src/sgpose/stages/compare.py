"""`sgpose compare A B --backbone X`: where does B help and where does it hurt, instance by instance?

A and B are variants of the backbone (`ours`, `A3`, `baseline`, ...) or predictions files (two runs' `.json`
in COCO results format, one result per instance of the split's cache). Prints the mean OKS of each, how
many instances B raised and lowered, the instances that gained and lost most, and each joint's mean pixel
error under both; writes a scatter plot (OKS A against OKS B) and a CSV of every instance beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sgpose.config.paths import Paths  # noqa: E402
from sgpose.core.io import atomic_path  # noqa: E402
from sgpose.core.keypoints import get_layout  # noqa: E402
from sgpose.report import instances as iv  # noqa: E402
from sgpose.stages import Run  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ")
    parser.add_argument("a", help="a variant of the backbone, or a predictions file (.json)")
    parser.add_argument("b", help="the other one")
    parser.add_argument("--split", default="val", help="a ground-truth-box split (default: %(default)s)")
    parser.add_argument("--top", type=int, default=5, metavar="N", help="instances listed as gained and lost most")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where the plot and CSV go (default: results/compare/<dataset>/<backbone>)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def source(paths: Paths, name: str, split: str) -> tuple[str, Path]:
    """(label, predictions file) of a variant name or a file path."""
    if name.endswith(".json") or "/" in name:
        return Path(name).stem if Path(name).stem != split else Path(name).parent.parent.name, Path(name)
    return name, paths.keypoints(name, split)


def compare(inst: iv.Instances, a: np.ndarray, b: np.ndarray, sigmas) -> pd.DataFrame:
    """Per instance: ids, OKS of A and B and the difference, mean pixel error of each."""
    oks_a, oks_b = iv.instance_oks(a, inst, sigmas), iv.instance_oks(b, inst, sigmas)
    mean_a, mean_b = _nanmean(iv.joint_errors(a, inst), 1), _nanmean(iv.joint_errors(b, inst), 1)
    return pd.DataFrame({"ann_id": inst.ann_id, "image_id": inst.image_id, "oks_a": oks_a, "oks_b": oks_b,
                         "gain": oks_b - oks_a, "mean_px_a": mean_a, "mean_px_b": mean_b})


def per_joint(inst: iv.Instances, a: np.ndarray, b: np.ndarray, names) -> pd.DataFrame:
    """Each joint's mean pixel error under A and B over the instances where it is labelled."""
    err_a, err_b = iv.joint_errors(a, inst), iv.joint_errors(b, inst)
    return pd.DataFrame({"joint": list(names), "labelled": (inst.vis > 0).sum(0), "mean_px_a": _nanmean(err_a, 0),
                         "mean_px_b": _nanmean(err_b, 0)})


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """The mean over `axis` of the finite entries; NaN where there is none (no warning)."""
    count = np.isfinite(x).sum(axis)
    return np.where(count > 0, np.nansum(x, axis) / np.maximum(count, 1), np.nan)


def scatter(path: Path, df: pd.DataFrame, la: str, lb: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    ok = df.dropna(subset=["oks_a", "oks_b"])
    colors = np.where(ok.gain > 0, "#10a030", np.where(ok.gain < 0, "#e02020", "#888888"))
    ax.scatter(ok.oks_a, ok.oks_b, s=14, c=colors, alpha=0.8, edgecolors="none")
    ax.plot([0, 1], [0, 1], color="#444", lw=0.8, ls="--", label="equal")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"OKS, {la}")
    ax.set_ylabel(f"OKS, {lb}")
    ax.set_title(title, fontsize=9)
    ax.scatter([], [], c="#10a030", s=14, label=f"{lb} higher ({int((ok.gain > 0).sum())})")
    ax.scatter([], [], c="#e02020", s=14, label=f"{lb} lower ({int((ok.gain < 0).sum())})")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(run: Run) -> None:
    params, paths, args = run.params, run.paths, run.args
    layout = get_layout(params.layout)
    inst = iv.load_instances(paths, args.split)
    (la, pa), (lb, pb) = source(paths, args.a, args.split), source(paths, args.b, args.split)
    a, b = iv.load_predictions(pa, inst)[0], iv.load_predictions(pb, inst)[0]
    df, joints = compare(inst, a, b, layout.sigmas), per_joint(inst, a, b, layout.names)
    out = Path(args.out) if args.out else paths.results / "compare" / params.dataset / params.backbone.name
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{la}_vs_{lb}_{args.split}"
    title = f"{params.dataset}/{params.backbone.name} {args.split}: {la} vs {lb}, {len(inst)} instances"
    scatter(stem.with_suffix(".png"), df, la, lb, title)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    ranked = df.dropna(subset=["gain"]).sort_values("gain", kind="stable")
    gained, lost = ranked[::-1].head(args.top), ranked.head(args.top)
    summary = {"a": la, "b": lb, "split": args.split, "instances": len(inst),
               "mean_oks": {la: float(df.oks_a.mean()), lb: float(df.oks_b.mean())},
               "higher": int((df.gain > 0).sum()), "lower": int((df.gain < 0).sum()), "equal": int((df.gain == 0).sum()),
               "gained_most": gained.to_dict("records"), "lost_most": lost[lost.gain < 0].to_dict("records"),
               "per_joint": joints.to_dict("records"), "plot": str(stem.with_suffix(".png")),
               "csv": str(stem.with_suffix(".csv"))}
    if args.json:
        print(json.dumps(summary, indent=1, default=float))
        return
    ma, mb = summary["mean_oks"][la], summary["mean_oks"][lb]
    print(f"{title}\n  mean OKS: {la} {ma:.4f}, {lb} {mb:.4f} ({mb - ma:+.4f}); {lb} higher on {summary['higher']}, "
          f"lower on {summary['lower']}, equal on {summary['equal']}")
    for name, rows in (("gained most", gained), ("lost most", lost[lost.gain < 0])):
        print(f"  {name} ({lb} - {la}):" + ("" if len(rows) else " none"))
        for r in rows.itertuples():
            print(f"    annotation {r.ann_id} (image {r.image_id}): OKS {r.oks_a:.3f} -> {r.oks_b:.3f} ({r.gain:+.3f})")
    print(f"  per-joint mean error (image px):  {'joint':16s}{la:>10s}{lb:>10s}")
    for r in joints.itertuples():
        print(f"    {r.joint:16s}{r.mean_px_a:10.2f}{r.mean_px_b:10.2f}")
    print(f"  scatter: {summary['plot']}; every instance: {summary['csv']}")
