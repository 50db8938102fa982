# The pipeline DAG for Snakemake (`snakemake --cores N`, `--profile workflow/profiles/local`, or
# `--profile workflow/profiles/slurm`). Nothing is declared here: every rule comes from the stage
# table (pipeline_src/sgpose/dag/table.py), the same table dvc.yaml is generated from, over the grid of
# the validated params file (`--config params=FILE`, default params.yaml).
from sgpose.config import read_params_file
from sgpose.dag.snakemake import rules, targets
from sgpose.dag.table import resources_of

PARAMS = read_params_file(config.get("params", "params.yaml"))


rule all:
    default_target: True
    input:
        targets(PARAMS),


for r in rules(PARAMS):

    rule:
        name:
            r.name
        input:
            r.inputs,
        output:
            **r.outputs(),
        log:
            r.log(),
        params:
            values=r.params,
            cmd=r.command,
        conda:
            "workflow/envs/sgpose.yaml"
        wildcard_constraints:
            **r.constraints(),
        threads: resources_of(PARAMS, r.name).threads  # the rule's defaults, changed by params.yaml resources:
        resources:
            **resources_of(PARAMS, r.name).snakemake(),
        shell:
            "{params.cmd} --threads {threads} 2> {log}"  # the rule's cores for torch, OpenCV, loaders; logs on stderr
