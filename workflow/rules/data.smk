rule download:
    input:
        config["data"]["manifest"],
        f"{CODE}/stages/download.py",
        f"{CODE}/data/download.py",
        f"{CODE}/data/archives.py",
        f"{CODE}/models/zoo.py",
    output:
        DOWNLOAD_STAMP,
    params:
        data=config["data"],
        checkpoint=config["backbone"]["checkpoint"],
    resources:
        mem_mb=2000,
    shell:
        "sgpose download"


rule prepare:
    input:
        DOWNLOAD_STAMP,
        f"{CODE}/stages/prepare.py",
        f"{CODE}/data/coco.py",
        f"{CODE}/data/detections.py",
    output:
        expand(f"{DS}/instances_{{split}}.parquet", split=SPLITS),
        expand(f"{DS}/annotations_{{split}}.json", split=SPLITS),
    params:
        prepare=config["prepare"],
        layout=config["layout"],
        input_size=config["backbone"]["input_size"],
    shell:
        "sgpose prepare"
