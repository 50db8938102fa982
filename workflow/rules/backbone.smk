rule train_backbone:
    input:
        f"{RES}/{{ds}}/prepared/instances_train.parquet",
        f"{RES}/{{ds}}/download.json",
        code("stages/train_backbone.py", "models", "data/dataset.py", "data/transforms.py", "data/heatmaps.py"),
    output:
        f"{RES}/{{ds}}/{{bb}}/backbone.pt",
        f"{RES}/{{ds}}/{{bb}}/train_log.csv",
    params:
        backbone=lambda w: BACKBONES[w.bb],
        train=lambda w: None if BACKBONES[w.bb].get("checkpoint") else config.get("train_backbone"),  # imported
    threads: RESOURCES.of("train_backbone").threads
    resources:
        **RESOURCES.of("train_backbone").snakemake(),
    shell:
        "sgpose train_backbone --backbone {wildcards.bb}"


# scatter: one job per shard of a split (cache.shards); gather: the manifest over them
rule cache_shard:
    input:
        f"{RES}/{{ds}}/{{bb}}/backbone.pt",
        f"{RES}/{{ds}}/prepared/instances_{{split}}.parquet",
        f"{RES}/{{ds}}/download.json",
        code("stages/cache.py", "cache.py", "shards.py", "compute.py", "keypoints.py", "data/dataset.py",
             "data/transforms.py", "data/heatmaps.py", "models"),  # sgpose.shards.CODE
    output:
        f"{RES}/{{ds}}/{{bb}}/cache/{{split}}.shards/shard-{{shard}}.h5",
    params:
        # what a shard's fingerprint holds (stages/cache.py cache_attrs), and the split's shard count
        cache=lambda w: {k: v for k, v in CACHE.items() if k not in ("batch_size", "shards")},
        shards=lambda w: len(shards_of(w.split)),
        compute=config.get("compute"),
    threads: RESOURCES.of("cache_shard").threads
    resources:
        **RESOURCES.of("cache_shard").snakemake(),
    shell:
        "sgpose cache --backbone {wildcards.bb} --split {wildcards.split} --shard {wildcards.shard}"


rule cache_gather:
    input:
        lambda w: expand(f"{bbdir(w.bb)}/cache/{w.split}.shards/shard-{{shard}}.h5", shard=shards_of(w.split)),
    output:
        f"{RES}/{{ds}}/{{bb}}/cache/{{split}}.h5",
    threads: RESOURCES.of("cache_gather").threads
    resources:
        **RESOURCES.of("cache_gather").snakemake(),
    shell:
        "sgpose cache --backbone {wildcards.bb} --split {wildcards.split} --gather"
