"""`sgpose <stage>`: one subcommand per pipeline stage, each a thin module in sgpose.stages.

Every stage reads params.yaml (validated), works on one backbone (`--backbone`, default the
ablation's) or one dataset (`--dataset`), accepts `--set key=value` overrides, and writes its
outputs atomically to the paths of sgpose.config.Paths (the same paths dvc.yaml and the
Snakefile declare).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sgpose.config.paths import Paths
from sgpose.config.selection import ParamsError, load_params
from sgpose.errors import DiskFullError, InputError

# stage name -> (module, one-line help). Order is the DAG's order.
STAGES: dict[str, tuple[str, str]] = {
    "code": ("sgpose.stages.code", "digest every stage's sources into results/code/ (the code dependency DVC tracks)"),
    "dag": ("sgpose.stages.dag", "write dvc.yaml from the stage table and params.yaml's grid (--check: is it current?)"),
    "profile": ("sgpose.stages.profile", "make profiles/NAME.yaml (sample, coco, crowdpose, paper) the active params.yaml"),
    "check_params": ("sgpose.stages.check_params", "validate the whole params file (every section, value and name); "
                     "write a stamp"),
    "download": ("sgpose.stages.download", "fetch and verify a dataset's files (URLs or SGPOSE_MIRROR)"),
    "prepare": ("sgpose.stages.prepare", "a dataset's person instances per split (GT boxes; val_det: detections), ground truth"),
    "train_backbone": ("sgpose.stages.train_backbone", "train a backbone where no official checkpoint is used (else import it)"),
    "cache": ("sgpose.stages.cache", "run the frozen backbone once; write features, Y0, targets, crop meta to sharded HDF5"),
    "start_pose": ("sgpose.stages.start_pose", "mean training pose in crop coordinates (guidance.start_pose: mean)"),
    "train_refiner": ("sgpose.stages.train_refiner", "train the structure-guided UNet from the cache (SPEC 4)"),
    "infer": ("sgpose.stages.infer", "refine the cached heatmaps of each evaluation split; COCO results JSON (SPEC 5)"),
    "infer_online": ("sgpose.stages.infer_online", "every variant's predictions on the backbone's online splits: one "
                     "pass through the backbone, no cache"),
    "evaluate": ("sgpose.stages.evaluate", "OKS keypoint AP (COCO or CrowdPose) per evaluation split; writes results/metrics/..."),
    "report": ("sgpose.stages.report", "tables (paper numbers beside ours) and figures from results/"),
    "predict": ("sgpose.stages.predict", "run the trained backbone + ours refiner on an image: keypoints JSON + overlay PNG"),
}
# commands that read the params file themselves (whole): `profile` replaces it (the current one may be
# broken), `dag` expands its grid, `code` reads sources only
NO_PARAMS = frozenset({"profile", "dag", "code"})


def _selected_stage(argv: list[str]) -> str | None:
    """The subcommand named on the command line, if any (the first non-option word)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI; only the selected stage's module is imported (for its own options), so one stage's
    import cost or failure never affects another."""
    parser = argparse.ArgumentParser(
        prog="sgpose",
        description="Structure-guided multi-step pose refinement: one subcommand per pipeline stage. "
        "Run the whole DAG with `dvc repro` or `snakemake --cores N`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    selected = _selected_stage(sys.argv[1:] if argv is None else argv)
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", help="parameter file (default: %(default)s)")
        if name in NO_PARAMS:
            if name == selected:
                importlib.import_module(module).add_arguments(p)
            continue
        p.add_argument("--backbone", metavar="NAME", help="a key of `backbones` (default: ablation.backbone; "
                       "with --dataset, the first backbone of that dataset)")
        p.add_argument("--dataset", metavar="NAME", help="a key of `datasets` (default: the backbone's)")
        p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch, OpenCV and data loading "
                       "(default: SLURM_CPUS_PER_TASK under SLURM, else params resources.<stage>.threads, else all cores)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one parameter, e.g. --set train_refiner.epochs=2 (repeatable); "
                       "backbone.*, data.*, prepare.* and layout address the selected backbone and dataset")
        if name == selected:
            mod = importlib.import_module(module)
            if hasattr(mod, "add_arguments"):
                mod.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to re-launch itself (DDP under torchrun)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    module = importlib.import_module(STAGES[args.stage][0])
    if args.stage in NO_PARAMS:
        return _guarded(args.stage, lambda: module.run(args))
    try:
        params = load_params(args.params, args.overrides, backbone=args.backbone, dataset=args.dataset)
    except ParamsError as err:
        print(f"sgpose: {err}", file=sys.stderr)
        return 2
    return _guarded(args.stage, lambda: _run_stage(module, params, args))


def _run_stage(module, params, args: argparse.Namespace) -> None:
    """The stage on the cores it was given (threads.configure_threads), then its work."""
    from sgpose import threads  # torch: imported only once a stage runs

    threads.configure_threads(args.threads, args.stage, getattr(params.file, "resources", None))
    module.main(params, Paths(params), args)


def _guarded(stage: str, run) -> int:
    """Run a stage; a damaged input file or a full disk (exit 2), a missing file or a bad value (exit 1)
    is a one-line error naming the file, not a traceback. Any other exception is a bug: traceback."""
    try:
        run()
    except (InputError, DiskFullError) as err:
        print(f"sgpose {stage}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:  # ParamsError is a ValueError
        print(f"sgpose {stage}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
