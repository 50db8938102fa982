rule train_backbone:
    input:
        f"{DS}/instances_train.parquet",
        DOWNLOAD_STAMP,
        f"{CODE}/stages/train_backbone.py",
        f"{CODE}/data/dataset.py",
    output:
        f"{BB}/backbone.pt",
        f"{BB}/train_log.csv",
    params:
        backbone=config["backbone"],
        train=config["train_backbone"],
    resources:
        mem_mb=8000,
    shell:
        "sgpose train_backbone"


rule cache:
    input:
        f"{BB}/backbone.pt",
        expand(f"{DS}/instances_{{split}}.parquet", split=SPLITS),
        f"{CODE}/stages/cache.py",
        f"{CODE}/cache.py",
        f"{CODE}/shards.py",
    output:
        expand(f"{BB}/cache/{{split}}.h5", split=SPLITS),
        directory(expand(f"{BB}/cache/{{split}}.shards", split=SPLITS)),
    params:
        cache=config["cache"],
    resources:
        mem_mb=8000,
    shell:
        "sgpose cache"
