# the mean training pose, read only when guidance.start_pose is mean; it always runs (seconds),
# as in dvc.yaml, which has no conditional stages
rule start_pose:
    input:
        f"{RES}/{{ds}}/{{bb}}/cache/train.h5",
        code("stages/start_pose.py"),
    output:
        f"{RES}/{{ds}}/{{bb}}/start_pose.json",
    threads: RESOURCES.of("start_pose").threads
    resources:
        **RESOURCES.of("start_pose").snakemake(),
    shell:
        "sgpose start_pose --backbone {wildcards.bb}"


rule train_refiner:
    input:
        f"{RES}/{{ds}}/{{bb}}/cache/train.h5",
        f"{RES}/{{ds}}/{{bb}}/start_pose.json",
        f"{RES}/{{ds}}/{{bb}}/backbone.pt",
        code("stages/train_refiner.py", "data/sources.py", "data/cache_loader.py", "refine.py", "variants.py",
             "guidance.py", "models/unet.py", "compute.py", "distributed.py"),
    output:
        f"{RES}/{{ds}}/{{bb}}/{{variant}}/refiner.pt",
        f"{RES}/{{ds}}/{{bb}}/{{variant}}/train_log.csv",
    params:
        guidance=config.get("guidance"),
        refiner=config.get("refiner"),
        train=config.get("train_refiner"),
        compute=config.get("compute"),
    threads: RESOURCES.of("train_refiner").threads
    resources:
        **RESOURCES.of("train_refiner").snakemake(),
    shell:
        "sgpose train_refiner --backbone {wildcards.bb} --variant {wildcards.variant}"


def infer_inputs(w):
    """The backbone's cached evaluation splits; a refined variant also needs its refiner."""
    inputs = [f"{bbdir(w.bb)}/cache/{s}.h5" for s in evals_of(w.bb, w.variant)] + code(
        "stages/infer.py", "data/cache_loader.py", "compute.py")
    if w.variant != "baseline":
        inputs += [f"{bbdir(w.bb)}/{w.variant}/refiner.pt", f"{bbdir(w.bb)}/start_pose.json",
                   *code("refine.py", "variants.py")]
    return inputs


rule infer:
    input:
        infer_inputs,
    output:
        directory(f"{RES}/{{ds}}/{{bb}}/{{variant}}/predictions"),
    params:
        evals=lambda w: evals_of(w.bb, w.variant),
        guidance=lambda w: None if w.variant == "baseline" else config.get("guidance"),  # as dvc.yaml
        infer=config.get("infer"),
        compute=lambda w: None if w.variant == "baseline" else config.get("compute"),
    threads: RESOURCES.of("infer").threads
    resources:
        **RESOURCES.of("infer").snakemake(),
    shell:
        "sgpose infer --backbone {wildcards.bb} --variant {wildcards.variant}"


rule evaluate:
    input:
        f"{RES}/{{ds}}/{{bb}}/{{variant}}/predictions",
        f"{RES}/{{ds}}/prepared/annotations_val.json",
        code("stages/evaluate.py", "evaluation"),
    output:
        f"{RES}/metrics/{{ds}}/{{bb}}/{{variant}}.json",
    params:
        evaluate=config.get("evaluate"),
        layout=lambda w: DATASETS[w.ds].get("layout", "coco"),
    threads: RESOURCES.of("evaluate").threads
    resources:
        **RESOURCES.of("evaluate").snakemake(),
    shell:
        "sgpose evaluate --backbone {wildcards.bb} --variant {wildcards.variant}"
