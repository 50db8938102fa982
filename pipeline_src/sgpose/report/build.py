"""Assemble the report: every table and figure from results/, each as files plus a page section.

Scope: Table 1, Figs. 2 and 7-9 and the training curves are for the ablation backbone (the primary
selection of params.yaml), Figs. 4-6 for the first backbone that runs the ablation's variants (the primary
one when it does: `ablation.figures_on`); Table 2 covers every COCO-layout backbone directory under results/;
Tables 3-4 every CrowdPose / detection-box (val_det) run found anywhere under results/. Controlled
backbones (oracle / perturbed) get their own Table 1 each, labelled a controlled-error benchmark,
and are left out of Tables 2-4 (sgpose.report.controlled).

Sweep variants (Figs. 5-6) are found by directory name: `ours_S<k>` is `ours` with guidance.S = k,
`ours_linear` / `ours_cosine` is `ours` with that schedule; `ours` itself stands for the
configured S and schedule.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from sgpose.config.paths import Paths
from sgpose.config.selection import Params
from sgpose.core.keypoints import get_layout
from sgpose.report import charts, claims, controlled, discover, paper, seeds, tables
from sgpose.report.figures import fig2_poses, fig_guidance_sequence
from sgpose.report.page import Section

log = logging.getLogger(__name__)
SWEEP_S = re.compile(r"^ours_S(\d+)$")


def _caption(what: str, rows: int) -> str:
    return what + ("" if rows else " No runs yet: every 'this run' cell is '-'.")


def table_sections(params: Params, paths: Paths, runs: list[discover.Run], out: Path) -> list[Section]:
    """Tables 1-4 written as CSV + Markdown, then Table 1 of each controlled backbone (sgpose.report.controlled,
    kept out of Tables 2-4); their page sections, Table 1 first."""
    here = seeds.collapse(discover.by_variant(discover.select(runs, params.dataset, params.backbone.name, "val")))
    t1 = tables.table1(here)
    runs_on = params.file.ablation.runs_on
    elsewhere = "" if params.backbone.name in runs_on else (
        f" The ablation's variants run on {', '.join(runs_on)} (ablation.backbones), not on this backbone: "
        "their rows here are '-'.")
    benchmark = controlled.sections(params, paths, runs, out)
    runs = controlled.excluded(controlled.find(params, paths, runs), runs)
    t2 = tables.table2(backbones(paths, [r for r in discover.select(runs, split="val") if not discover.is_crowdpose(r)]))
    crowd = [r for r in runs if discover.is_crowdpose(r) and not discover.uses_detections(r)]
    det = [r for r in runs if discover.uses_detections(r) and not discover.is_crowdpose(r)]
    t3, t4 = tables.table3(crowd), tables.table4(det)
    specs = [
        ("table1", t1, f"Table 1: ablation on {params.dataset}/{params.backbone.name} (AP in %, split val, "
         f"ground-truth boxes); '{tables.PAPER_COLUMN}' is {paper.SOURCE}, {paper.TABLE1_BACKBONE}.{elsewhere}",
         len(here)),
        ("table2", t2, "Table 2: baseline, baseline + DARK decoding (Zhang et al., CVPR 2020; not in the paper) "
         "and ours per backbone directory (COCO-layout datasets, split val); ours is worth its cost only where it "
         "gains over baseline + DARK; 'quoted' columns are the paper's COCO val2017 numbers at 256x192.", len(t2.dropna(
             subset=["baseline AP (this run)", "baseline + DARK AP (this run)", "ours AP (this run)"], how="all"))),
        ("table3", t3, "Table 3: CrowdPose val, GT boxes; rows with source 'paper (quoted)' are quoted from "
         "the paper (it states AP only), the others are this pipeline's CrowdPose runs.", len(crowd)),
        ("table4", t4, "Table 4: COCO val, detection boxes; 'paper (quoted)' rows are quoted from the paper, "
         "the others this pipeline's runs on detector boxes (the val_det split).",
         len(det)),
    ]
    sections = []
    for key, df, caption, rows in specs:
        caption = _caption(caption, rows)
        tables.write_table(df, out / f"{key}.csv", out / f"{key}.md", caption)
        sections.append(Section(key, caption.split(":")[0], caption, table=df, links=[f"{key}.csv", f"{key}.md"]))
    return [sections[0], *benchmark, *sections[1:]]


SUMMARY_VARIANTS = {"baseline": "baseline", "baseline_dark": "baseline + DARK", "copy": "copy", "ours": "ours"}


def summary_section(params: Params, runs: list[discover.Run], sections: list[Section], out: Path) -> Section:
    """The page's opening: per backbone, baseline, + DARK, copy and ours (val AP %), what kind of result it is
    (the paper's setting, or a controlled-error benchmark: the evidence a refiner can gain), and the section
    that holds its table."""
    keys = {s.key for s in sections}
    rows, anchors = [], []
    for bb, bp in params.file.backbones.items():
        found = seeds.collapse(discover.by_variant(discover.select(runs, bp.dataset, bb, "val")))
        ap = {v: 100.0 * float(m["AP"]) for v, m in found.items() if "AP" in m}
        if not ap:
            continue
        crowd = params.file.datasets[bp.dataset].layout == "crowdpose"
        table = (f"table1_{bp.dataset}_{bb}" if bp.controlled else "table1" if bb == params.backbone.name
                 else "table3" if crowd else "table2")
        kind = (("the controlled evidence: Y0 with errors, evidence of the pose in the features" if bp.evidence
                 else "controlled floor: Y0 with errors, no evidence in the features") if bp.controlled
                else "primary, the paper's setting" if bb == params.backbone.name else "the paper's setting")
        row = {"backbone": f"{bp.dataset}/{bb}", "kind": kind, **{name: ap.get(v) for v, name in SUMMARY_VARIANTS.items()}}
        row["ours - baseline"] = round(ap["ours"] - ap["baseline"], 2) if {"ours", "baseline"} <= set(ap) else None
        row["table"] = table if table in keys else "-"
        rows.append(row)
        if table in keys and (table, table) not in anchors:
            anchors.append((table, table))
    df = pd.DataFrame(rows, columns=["backbone", "kind", *SUMMARY_VARIANTS.values(), "ours - baseline", "table"])
    tables.write_table(df.round(2), out / "summary.csv", out / "summary.md", "summary")
    evidence = [r["backbone"] for r in rows if r["kind"].startswith("the controlled evidence")]
    text = ("This run at a glance: AP (%) on each backbone's val split (ground-truth boxes). "
            + (f"The controlled evidence is {', '.join(evidence)}: its Y0 is the ground truth with synthetic errors "
               "and its features carry evidence of the true pose, so a refiner's gain is measured against a known "
               f"truth ({controlled.LABEL}s are not the paper's setting). " if evidence else "")
            + "A backbone trained here at a smoke budget scores near 0 in the paper's setting; the tables below "
            "give every variant.")
    return Section("summary", "Summary", text, table=df.round(2), links=["summary.csv"], anchors=anchors)


def claims_section(params: Params, runs: list[discover.Run], out: Path) -> Section:
    """The claims ledger (`sgpose.report.claims`): each of the paper's claims, this run's comparison on the backbone
    that ran the ablation (`ablation.figures_on`, labelled controlled where it is), the spreads and a verdict."""
    on = params.file.ablation.figures_on
    bp = params.file.backbones[on]
    where = f"{bp.dataset}/{on}" + (f" ({controlled.LABEL})" if bp.controlled else "")
    metrics = seeds.collapse(discover.by_variant(discover.select(runs, bp.dataset, on, "val")))
    df = claims.ledger(metrics, where)
    n = params.file.ablation.seeds
    caption = (f"Claims ledger: the paper's claims and what this run says of each, on {where}, AP in %, "
               f"{n} seed{'s' * (n != 1)} of each seeded variant (ablation.seeds, ablation.seeded). Rule: a difference "
               "counts only where it exceeds the two variants' AP spreads (max - min over seeds) added: supported "
               "beyond it in the paper's direction, contradicted beyond it the other way, otherwise not resolved at "
               "that many seeds (docs/paper_notes.md, \"Verdicts\"). profiles/claims.yaml runs more seeds.")
    tables.write_table(df, out / "claims.csv", out / "claims.md", caption)
    return Section("claims", "Claims ledger", caption, table=df, links=["claims.csv", "claims.md"])


def backbones(paths: Paths, runs: list[discover.Run]) -> list[dict]:
    """One entry per backbone directory with runs (`<dataset>/<backbone>`): its paper name and input
    size (from the val cache's attributes when there is one, else the directory name) and its
    metrics per variant."""
    out = []
    for ds, bb in sorted({(r.dataset, r.backbone) for r in runs}):
        attrs = discover.cache_attrs_of(Paths.of(ds, bb, paths.root))
        out.append({"dir": f"{ds}/{bb}", "paper_name": discover.paper_backbone_name(bb, attrs),
                    "input_size": attrs.get("input_size"),
                    "metrics": seeds.collapse(discover.by_variant(discover.select(runs, ds, bb)))})
    return out


def sweep_points(metrics: dict[str, dict], params: Params, key: str = "AP") -> tuple[dict[int, float], dict[str, float]]:
    """This run's AP (%) per S (Fig. 5) and per schedule (Fig. 6) from `ours` and its sweep variants (collapsed
    metrics; `key` AP_spread: their spreads)."""
    ap = {v: 100.0 * float(m[key]) for v, m in metrics.items() if key in m}
    by_s = {params.guidance.S: ap["ours"]} if "ours" in ap else {}
    by_s |= {int(m.group(1)): a for v, a in ap.items() if (m := SWEEP_S.match(v))}
    by_schedule = {params.guidance.schedule: ap["ours"]} if "ours" in ap else {}
    by_schedule |= {s: ap[f"ours_{s}"] for s in paper.FIG6_SCHEDULE if f"ours_{s}" in ap}
    return by_s, by_schedule


def chart_sections(params: Params, paths: Paths, runs: list[discover.Run], t1: pd.DataFrame, out: Path) -> list[Section]:
    """Figs. 4-6 (for `ablation.figures_on`: the primary backbone when it runs the ablation, as in the paper;
    else the first that does, Table 1 of that backbone drawn) and the training curves."""
    on = params.file.ablation.figures_on
    label = f"{params.dataset}/{on}"
    metrics = seeds.collapse(discover.by_variant(discover.select(runs, params.dataset, on, "val")))
    if on != params.backbone.name:
        t1 = tables.table1(metrics)
        label += f" ({controlled.LABEL})" if params.file.backbones[on].controlled else ""
    by_s, by_schedule = sweep_points(metrics, params)
    spread_s, spread_schedule = sweep_points(metrics, params, seeds.SPREAD)
    charts.fig4_ablation(t1, out / "fig4_ablation.png", label)
    charts.fig5_steps(by_s, out / "fig5_steps.png", label, spread_s)
    charts.fig6_schedule(by_schedule, out / "fig6_schedule.png", label, spread_schedule)
    charts.training_curves(train_logs(paths), out / "training_curves.png")
    panels, lines = validation_logs(params, paths, runs)
    charts.validation_curves(panels, lines, out / "validation_ap.png")
    naming = "sweep runs are variant directories ours_S<k> (guidance.S = k); `ours` is S = " \
             f"{params.guidance.S}, schedule {params.guidance.schedule}; ours_linear / ours_cosine the other schedule."
    return [
        Section("fig4", "Fig. 4: ablation", "Table 1 as bars: this run (left), the paper's quoted AP (right).",
                image="fig4_ablation.png", links=["fig4_ablation.csv"]),
        Section("fig5", "Fig. 5: AP vs S", f"{naming} Paper points (quoted): "
                + ", ".join(f"S={s} {ap}" for s, ap in paper.FIG5_S_SWEEP.items()) + ".",
                image="fig5_steps.png", links=["fig5_steps.csv"]),
        Section("fig6", "Fig. 6: cosine vs linear", f"{naming} Paper (quoted): "
                + ", ".join(f"{name} {ap}" for name, ap in paper.FIG6_SCHEDULE.items()) + ".",
                image="fig6_schedule.png", links=["fig6_schedule.csv"]),
        Section("curves", "Training curves", "Loss per epoch from the backbone's and each refiner's train_log.csv.",
                image="training_curves.png", links=["training_curves.csv"]),
        Section("validation", "Validation AP during training",
                "Each refiner's val AP every train_refiner.val_every epochs (the refiner as infer runs it), beside "
                "its backbone's baseline and copy scores (dashed, dotted): whether a refiner is still learning or "
                "at the guidance's ceiling.",
                image="validation_ap.png", links=["validation_ap.csv"]),
    ]


def train_logs(paths: Paths) -> dict[str, pd.DataFrame]:
    """`backbone` and each refined variant's train_log.csv that exists (epoch, loss, ...)."""
    found = {"backbone": paths.backbone_log} | {p.parent.name: p for p in sorted(paths.backbone_dir.glob("*/train_log.csv"))}
    logs = {}
    for name, path in found.items():
        if path.is_file():
            df = pd.read_csv(path)
            if {"epoch", "loss"} <= set(df.columns):
                logs[name] = df
            else:
                log.warning("%s: no epoch/loss columns; not drawn", path)
    return logs


def validation_logs(params: Params, paths: Paths, runs: list[discover.Run]) -> tuple[dict, dict]:
    """({backbone: {variant: its train_log.csv}}, {backbone: {"baseline" | "copy": val AP %}}) of every backbone
    with a refiner's log."""
    panels, lines = {}, {}
    for bb, bp in params.file.backbones.items():
        where = Paths.of(bp.dataset, bb, paths.root)
        logs = {v: pd.read_csv(where.refiner_log(v)) for v in params.file.variants_of(bb) if where.refiner_log(v).is_file()}
        if not logs:
            continue
        panels[bb] = logs
        metrics = discover.by_variant(discover.select(runs, bp.dataset, bb, "val"))
        lines[bb] = {v: 100.0 * float(metrics[v]["AP"]) for v in ("baseline", "copy") if "AP" in metrics.get(v, {})}
    return panels, lines


def fig2_caches(params: Params, paths: Paths) -> list[Path]:
    """The val caches Fig. 2 may take its predicted pose from: the ablation's controlled backbones first
    (their Y0 holds a peak for nearly every labelled joint), then the primary backbone's."""
    file = params.file
    bbs = [b for b in file.ablation.runs_on if file.backbones[b].controlled] + [file.primary()]
    return [Paths.of(file.backbones[b].dataset, b, paths.root).cache("val") for b in bbs]


def fig2_section(params: Params, paths: Paths, out: Path) -> Section:
    """Fig. 2: one joint's graduated guidance maps, the predicted pose of a val sample where it is present."""
    layout = get_layout(params.layout)
    try:
        joint = layout.index(params.report.fig2_joint)
    except KeyError as err:
        raise ValueError(f"report.fig2_joint: {err.args[0]}") from None
    size = tuple(params.backbone.heatmap_size)
    start = layout.canonical_pose(size)
    g = params.guidance
    pred, drawn, source = fig2_poses(start, fig2_caches(params, paths), g.pred_threshold, joint, g.pred_decode,
                                     params.backbone.heatmap_sigma)
    name = layout.names[drawn]
    fig_guidance_sequence(start, pred, drawn, g.S, g.schedule, params.backbone.heatmap_sigma, size,
                          out / "fig2_guidance.png", joint_name=name, missing=g.missing)
    note = "" if drawn == joint else f" (report.fig2_joint {params.report.fig2_joint} is missed in every val sample)"
    return Section("fig2", "Fig. 2: graduated guidance of one joint",
                   f"Joint {name}{note}; S={g.S}, {g.schedule}; predicted pose from {source}.",
                   image="fig2_guidance.png", links=["fig2_guidance.csv"])


def qualitative_sections(notes: dict[str, str]) -> list[Section]:
    """Figs. 7-9 sections from write_qualitative's notes."""
    titles = {"fig7_corrected": "Fig. 7: heatmap evolution, corrected joint",
              "fig8_recovered": "Fig. 8: heatmap evolution, recovered joint",
              "fig9_hardest": "Figs. 9-16: hardest val instances"}
    legend = "Skeletons: backbone blue, refined green, ground truth red."
    return [Section(k, titles[k], f"{notes[k].rstrip('.')}. {legend}", image=f"{k}.png", links=[f"{k}.csv"])
            for k in titles]
