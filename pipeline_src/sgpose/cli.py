"""`sgpose <stage>`: one subcommand per pipeline stage, each a thin module in sgpose.stages.

The subcommands, their help and the rule each invocation runs come from the stage table
(`sgpose.dag.table.COMMANDS`). Every stage reads params.yaml (validated), works on one backbone
(`--backbone`, default the ablation's) or one dataset (`--dataset`), accepts `--set key=value`
overrides, and writes its outputs atomically to the paths of sgpose.config.Paths (the same paths
dvc.yaml and the Snakefile declare).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

import yaml

from sgpose.config.paths import Paths
from sgpose.config.selection import ParamsError, load_params
from sgpose.core.errors import ChoiceError, DiskFullError, InputError, Preempted
from sgpose.dag.table import COMMANDS, Command, check_resources, command, resources_of, rule_names
from sgpose.runtime.memory import out_of_memory


def _selected(argv: list[str]) -> str | None:
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
    selected = _selected(sys.argv[1:] if argv is None else argv)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.add_argument("--params", default="params.yaml", help="parameter file (default: %(default)s)")
        if cmd.reads_params:
            _selection_arguments(p)
        if cmd.name == selected:
            module = importlib.import_module(cmd.module)
            if hasattr(module, "add_arguments"):
                module.add_arguments(p)
    return parser


def _selection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", metavar="NAME", help="a key of `backbones` (default: ablation.backbone; "
                   "with --dataset, the first backbone of that dataset)")
    p.add_argument("--dataset", metavar="NAME", help="a key of `datasets` (default: the backbone's)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch, OpenCV and data loading "
                   "(default: SLURM_CPUS_PER_TASK under SLURM, else resources.<rule>.threads of the params file "
                   "or the rule's default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. --set train_refiner.epochs=2 (repeatable); "
                   "backbone.*, data.*, prepare.* and layout address the selected backbone and dataset")


def _numerics_before_imports(argv: list[str]) -> None:
    """`compute.cpu_numerics`'s environment, set before anything starts numpy: building the parser imports
    the selected stage's module (its own options), and numpy fixes its kernels and OpenBLAS's when it
    starts. Read from the params file and `--set` alone; a file that does not read leaves it to the stage
    (which reports the file's error, and sets the environment again from the validated params)."""
    if (selected := _selected(argv)) is None or selected not in {c.name for c in COMMANDS if c.reads_params}:
        return
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params", default="params.yaml")
    pre.add_argument("--set", dest="overrides", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    from sgpose.config.schema import ComputeParams
    from sgpose.runtime import numerics

    setting = ComputeParams().cpu_numerics
    try:
        compute = (yaml.safe_load(Path(known.params).read_text()) or {}).get("compute") or {}
        setting = compute.get("cpu_numerics", setting)
    except (OSError, yaml.YAMLError, AttributeError):
        return
    for override in known.overrides:
        key, _, value = override.partition("=")
        setting = value if key.strip() == "compute.cpu_numerics" else setting
    if setting in {m.value for m in numerics.CpuNumerics}:
        numerics.set_environment(setting)


def main(argv: list[str] | None = None) -> int:
    _numerics_before_imports(list(sys.argv[1:] if argv is None else argv))
    args = build_parser(argv).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to re-launch itself (DDP under torchrun)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cmd = command(args.stage)
    from sgpose.stages import Run

    if not cmd.reads_params:
        return _guarded(cmd.name, lambda: importlib.import_module(cmd.module).main(Run(args)))
    try:
        params = load_params(args.params, args.overrides, backbone=args.backbone, dataset=args.dataset)
        check_resources(params.file)
    except (ParamsError, ValueError) as err:
        print(f"sgpose: {err}", file=sys.stderr)
        return 2
    return _guarded(cmd.name, lambda: _run_stage(cmd, Run(args, (params, Paths(params)))), _batch(cmd, params))


def _batch(cmd: Command, params) -> str | None:
    """`train_refiner.batch_size (now 32)`: the parameter that sets the command's memory, and its value."""
    if cmd.batch_param is None:
        return None
    section, key = cmd.batch_param.split(".")
    return f"{cmd.batch_param} (now {getattr(getattr(params, section), key)})"


def _run_stage(cmd: Command, run) -> None:
    """The stage with the CPU numerics of `compute.cpu_numerics` (runtime.numerics: its environment set
    before the stage's module starts torch, numpy or OpenCV) on the cores its rule was given
    (runtime.threads), then its work. The first log line names both."""
    from sgpose.runtime import numerics, threads

    cp = run.params.compute
    numerics.set_environment(cp.cpu_numerics)
    module = importlib.import_module(cmd.module)
    rule = cmd.rule_of(run.args)  # predict is no rule of the DAG: no default
    default = resources_of(run.params.file, rule).threads if rule in rule_names() else None
    in_force = (lambda: numerics.apply(cp)) if "torch" in sys.modules else (lambda: numerics.without_torch(cp))
    threads.configure_threads(run.args.threads, cmd.name, rule, default, in_force)
    module.main(run)


def _guarded(stage: str, run, batch: str | None = None) -> int:
    """Run a stage; a damaged input file, a full disk or exhausted memory (exit 2), a missing file or a bad
    value (non-finite numbers, a diverged training: exit 1) is a one-line error naming the file, not a
    traceback; SIGTERM after the resume point was saved, Preempted.STATUS (143). Any other exception is a
    bug: traceback. `batch`: the batch size parameter an out-of-memory error names."""
    try:
        status = run()  # a command may answer with its own exit status (doctor, verdict: 1 = differs)
    except Preempted as stop:  # also on stdout: a SLURM job's log keeps it (Snakemake deletes the rule's log
        for stream in (sys.stderr, sys.stdout):  # before the resubmitted attempt runs)
            print(f"sgpose {stage}: {stop}", file=stream, flush=True)
        return Preempted.STATUS
    except (InputError, ChoiceError, DiskFullError) as err:
        print(f"sgpose {stage}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:  # ParamsError, NumericsError are ValueErrors
        print(f"sgpose {stage}: error: {err}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        if (oom := out_of_memory(err)) is None:
            raise
        what, seen = oom
        hint = f"lower {batch}" if batch else "run it where more memory is free"
        print(f"sgpose {stage}: error: out of {what} memory ({seen}); {hint}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
