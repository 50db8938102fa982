"""One module per `sgpose` subcommand, each a thin layer of files over the library (docs/architecture.md).

The contract every stage module keeps: `add_arguments(parser)` (optional: its own options) and
`main(run: Run)`. `sgpose.cli` builds the `Run` (the parsed arguments and, for the commands that read the
params file, the selected backbone's parameters and their paths; `sgpose.dag.table.COMMANDS` says which
do) and has set the stage's threads before `main` runs. No stage module imports another.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sgpose.config.paths import Paths
from sgpose.config.selection import Params


@dataclass(frozen=True)
class Run:
    """One invocation of a stage: its arguments, and the parameters and paths of its selection (commands
    that read no params file, `profile`, `dag` and `code`, get none: they read `args.params` themselves)."""

    args: argparse.Namespace
    selection: tuple[Params, Paths] | None = None

    @property
    def params(self) -> Params:
        if self.selection is None:
            raise RuntimeError("this command reads no params file (sgpose.dag.table.COMMANDS: reads_params)")
        return self.selection[0]

    @property
    def paths(self) -> Paths:
        if self.selection is None:
            raise RuntimeError("this command reads no params file (sgpose.dag.table.COMMANDS: reads_params)")
        return self.selection[1]
