def report_inputs(w):
    """Every evaluation of the grid, and what the figures read: the primary backbone's val cache,
    refiners and training logs (the ablation's backbone)."""
    bb = ABLATION["backbone"]
    return ([f"{RES}/metrics/{ds}/{b}/{v}.json" for ds, b, v in grid()]
            + [f"{bbdir(bb)}/cache/val.h5", f"{bbdir(bb)}/train_log.csv",
               f"{RES}/{dataset_of(bb)}/prepared/instances_val.parquet", *code("stages/report.py", "report")]
            + [f"{bbdir(bb)}/{v}/refiner.pt" for v in variants_of(bb)])


rule report:
    input:
        report_inputs,
    output:
        directory(f"{RES}/report"),
    params:
        report=config.get("report"),
        guidance=config.get("guidance"),
        refiner=config.get("refiner"),
        infer=config.get("infer"),
        ablation=ABLATION,
    threads: RESOURCES.of("report").threads
    resources:
        **RESOURCES.of("report").snakemake(),
    shell:
        "sgpose report"
