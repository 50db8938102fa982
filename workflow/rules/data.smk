rule download:
    input:
        lambda w: DATASETS[w.ds]["data"]["manifest"],
        code("stages/download.py", "data/download.py", "data/archives.py", "models/zoo.py"),
    output:
        f"{RES}/{{ds}}/download.json",
    params:
        data=lambda w: DATASETS[w.ds]["data"],
        checkpoints=lambda w: sorted(str(b.get("checkpoint")) for b in BACKBONES.values() if b["dataset"] == w.ds),
    threads: RESOURCES.of("download").threads
    resources:
        **RESOURCES.of("download").snakemake(),
    shell:
        "sgpose download --dataset {wildcards.ds}"


rule prepare:
    input:
        f"{RES}/{{ds}}/download.json",
        code("stages/prepare.py", "data/coco.py"),
    output:
        expand(f"{RES}/{{{{ds}}}}/prepared/instances_{{split}}.parquet", split=["train", "val"]),
        expand(f"{RES}/{{{{ds}}}}/prepared/annotations_{{split}}.json", split=["train", "val"]),
    params:
        layout=lambda w: DATASETS[w.ds].get("layout", "coco"),
        prepare=lambda w: prepare_params(w.ds, detections=False),  # a detection edit leaves train/val alone
        data=lambda w: DATASETS[w.ds]["data"],
    threads: RESOURCES.of("prepare").threads
    resources:
        **RESOURCES.of("prepare").snakemake(),
    shell:
        "sgpose prepare --dataset {wildcards.ds} --split train --split val"


# the detector-box instances of val (Table 4), for datasets with prepare.detections
rule prepare_detections:
    input:
        f"{RES}/{{ds}}/download.json",
        code("stages/prepare.py", "data/coco.py", "data/detections.py"),
    output:
        f"{RES}/{{ds}}/prepared/instances_val_det.parquet",
    params:
        layout=lambda w: DATASETS[w.ds].get("layout", "coco"),
        prepare=lambda w: prepare_params(w.ds, detections=True),
        data=lambda w: DATASETS[w.ds]["data"],
    threads: RESOURCES.of("prepare_detections").threads
    resources:
        **RESOURCES.of("prepare_detections").snakemake(),
    shell:
        "sgpose prepare --dataset {wildcards.ds} --split val_det"
