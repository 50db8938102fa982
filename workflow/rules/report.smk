rule report:
    input:
        expand(f"{BB}/{{variant}}/metrics.json", variant=VARIANTS),
        f"{BB}/cache/val.h5",
        f"{CODE}/stages/report.py",
    output:
        directory("results/report"),
    params:
        report=config["report"],
        guidance=config["guidance"],
    shell:
        "sgpose report"
