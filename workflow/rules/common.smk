# Names shared by every rule (the same layout as sgpose.config.Paths).
from pathlib import Path

DS = f"results/{config['dataset']}"
BB = f"{DS}/{config['backbone']['name']}"
VARIANTS = ["baseline", *config["variants"]]
CODE = "pipeline_src/sgpose"
SPLITS = ["train", "val"]
DOWNLOAD_STAMP = str(Path(config["data"]["raw_dir"]) / (Path(config["data"]["manifest"]).stem + ".done"))
