rule report:
    input:
        expand(f"{BB}/{{variant}}/metrics.json", variant=VARIANTS),
        expand(f"{BB}/{{variant}}/refiner.pt", variant=config["variants"]),
        f"{BB}/cache/val.h5",
        f"{BB}/train_log.csv",
        f"{DS}/instances_val.parquet",
        f"{CODE}/stages/report.py",
    output:
        directory("results/report"),
    params:
        report=config["report"],
        guidance=config["guidance"],
        refiner=config["refiner"],
        infer=config["infer"],
    shell:
        "sgpose report"
