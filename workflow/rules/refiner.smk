wildcard_constraints:
    variant="|".join(VARIANTS),


# the mean training pose, read only when guidance.start_pose is mean; it always runs (seconds),
# as in dvc.yaml, which has no conditional stages
rule start_pose:
    input:
        f"{BB}/cache/train.h5",
        f"{CODE}/stages/start_pose.py",
    output:
        f"{BB}/start_pose.json",
    params:
        layout=config["layout"],
        heatmap_size=config["backbone"]["heatmap_size"],
    shell:
        "sgpose start_pose"


rule train_refiner:
    input:
        f"{BB}/cache/train.h5",
        f"{BB}/start_pose.json",
        f"{CODE}/stages/train_refiner.py",
        f"{CODE}/refine.py",
        f"{CODE}/variants.py",
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
        inputs += [f"{BB}/{wildcards.variant}/refiner.pt", f"{BB}/start_pose.json", f"{CODE}/variants.py"]
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
        layout=config["layout"],
        boxes=config["prepare"]["boxes"],
    shell:
        "sgpose evaluate --variant {wildcards.variant}"
