wildcard_constraints:
    variant="|".join(VARIANTS),


rule train_refiner:
    input:
        f"{BB}/cache/train.h5",
        f"{CODE}/stages/train_refiner.py",
        f"{CODE}/refine.py",
        f"{CODE}/guidance.py",
        f"{CODE}/models/unet.py",
    output:
        f"{BB}/{{variant}}/refiner.pt",
        f"{BB}/{{variant}}/train_log.csv",
    params:
        guidance=config["guidance"],
        refiner=config["refiner"],
        train=config["train_refiner"],
    resources:
        mem_mb=8000,
    shell:
        "sgpose train_refiner --variant {wildcards.variant}"


def infer_inputs(wildcards):
    """baseline decodes the backbone's own heatmaps; refined variants need their refiner."""
    inputs = [f"{BB}/cache/val.h5", f"{CODE}/stages/infer.py", f"{CODE}/refine.py"]
    if wildcards.variant != "baseline":
        inputs.append(f"{BB}/{wildcards.variant}/refiner.pt")
    return inputs


rule infer:
    input:
        infer_inputs,
    output:
        f"{BB}/{{variant}}/val_keypoints.json",
    params:
        guidance=config["guidance"],
        infer=config["infer"],
        evaluate=config["evaluate"],
    shell:
        "sgpose infer --variant {wildcards.variant}"


rule evaluate:
    input:
        f"{BB}/{{variant}}/val_keypoints.json",
        f"{DS}/annotations_val.json",
        f"{CODE}/stages/evaluate.py",
    output:
        f"{BB}/{{variant}}/metrics.json",
    params:
        evaluate=config["evaluate"],
    shell:
        "sgpose evaluate --variant {wildcards.variant}"
