# The pipeline DAG for Snakemake (`snakemake --cores N`, or `--profile workflow/profiles/slurm`).
# dvc.yaml is the same DAG for DVC. Paths mirror sgpose.config.Paths; values come from params.yaml.
# Each rule declares its params sections, so Snakemake's params rerun-trigger matches DVC's.

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/backbone.smk"
include: "workflow/rules/refiner.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        expand(f"{BB}/{{variant}}/metrics.json", variant=VARIANTS),
        "results/report",
