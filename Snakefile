# The pipeline DAG for Snakemake (`snakemake --cores N`, `--profile workflow/profiles/local`, or
# `--profile workflow/profiles/slurm` on a cluster). dvc.yaml is the same DAG for DVC. Paths mirror
# sgpose.config.Paths; the grid (datasets, backbones, ablation) and values come from params.yaml.
# Each rule declares the params it depends on, so Snakemake's params rerun-trigger matches DVC's.
# Every rule declares resources (gpu, mem_mb, runtime), sized for full COCO on one GPU.

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/backbone.smk"
include: "workflow/rules/refiner.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        [f"{RES}/metrics/{ds}/{bb}/{v}.json" for ds, bb, v in grid()],
        f"{RES}/report",
