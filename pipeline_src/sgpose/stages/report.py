"""`sgpose report`: every paper table and figure regenerated from results/, beside the paper's
numbers, on one static page (results/report/index.html).

Reads: every results/metrics/<ds>/<bb>/<variant>.json, the ablation backbone's val cache,
`ours/refiner.pt`, the train_log.csv files, the val instance table and images (crops of the
qualitative figures), params.yaml. What is missing shows as '-' or "no runs yet", never invented.
"""

from __future__ import annotations

import logging

import yaml

from sgpose.core.io import write_json
from sgpose.report import build, discover
from sgpose.report.page import write_page
from sgpose.report.provenance import provenance
from sgpose.report.qualitative import write_qualitative
from sgpose.stages import Run

log = logging.getLogger(__name__)


def main(run: Run) -> None:
    """Tables 1-4, Figs. 2, 4-9, training curves (PNG + CSV each), provenance.json and index.html."""
    params, paths, args = run.params, run.paths, run.args
    out = paths.report
    runs = discover.find_runs(paths.results)
    if not runs:
        log.warning("no metrics under %s/metrics: tables show '-' and figures 'no runs yet'", paths.results)
    fig2 = build.fig2_section(params, paths, out)
    tables = build.table_sections(params, paths, runs, out)
    charts = build.chart_sections(params, paths, runs, tables[0].table, out)
    qualitative = build.qualitative_sections(write_qualitative(params, paths, out))
    prov = provenance(args.params, paths.results, paths.root)
    write_json(out / "provenance.json", prov)
    title = f"sgpose report: {params.dataset} / {params.backbone.name}"
    intro = (f"Every number marked 'this run' was computed by this pipeline from results/ ({len(runs)} evaluated "
             "runs found); every number marked 'quoted' is copied from the paper (docs/method.md §6), not computed "
             "here. '-' means no run yet.")
    params_yaml = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
    sections = [build.claims_section(params, runs, out), *tables, fig2, *charts, *qualitative]
    write_page(out / "index.html", title, intro, [build.summary_section(params, runs, sections, out), *sections], prov,
               params_yaml)
    log.info("report: %d runs -> %s", len(runs), out / "index.html")
