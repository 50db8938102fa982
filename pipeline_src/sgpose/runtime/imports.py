"""Which package sources a stage runs: the transitive import closure of its entry module.

A stage's code dependencies are derived, never typed: `module_files("sgpose.stages.cache")` is every
file of the `sgpose` package that `sgpose/stages/cache.py` imports, directly or through other package
modules, at module level or inside a function, with the `__init__.py` of every package on the way
(Python executes them on import). Read from the source with `ast` (nothing is imported), so it is
cheap and works for modules whose dependencies are not installed.

`UNTRACKED` modules change how a stage runs, never what it writes: its cores (`runtime.threads`), its
output locks (`runtime.locks`), how it stops on SIGTERM (`runtime.interrupt`) and this scanner. The
closure stops at them, so no stage's code dependency (DVC's digest, Snakemake's inputs, the cache's shard
fingerprints) holds them and editing them re-runs nothing. `sgpose.cli` and `sgpose.dag` are in no
closure either: no stage imports them.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = "sgpose"
UNTRACKED = frozenset({"sgpose.runtime.threads", "sgpose.runtime.locks", "sgpose.runtime.imports",
                       "sgpose.runtime.interrupt"})
ROOT = Path(__file__).resolve().parents[1]  # pipeline_src/sgpose


def module_path(module: str, root: Path = ROOT) -> Path | None:
    """The file of a package module (`sgpose.data.coco` -> .../data/coco.py), None if there is none."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def all_modules(root: Path = ROOT) -> list[str]:
    """Every module of the package, dotted (`sgpose.cli`, `sgpose.data.__init__` as `sgpose.data`)."""
    out = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).with_suffix("").parts
        rel = rel[:-1] if rel[-1] == "__init__" else rel
        out.append(".".join((PACKAGE, *rel)))
    return out


def _parents(module: str) -> list[str]:
    """`sgpose.data.coco` -> [`sgpose`, `sgpose.data`] (the packages whose __init__ runs first)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


@lru_cache(maxsize=None)
def direct_imports(module: str, root: Path = ROOT) -> frozenset[str]:
    """The package modules one module imports (any `import` statement in its source)."""
    path = module_path(module, root)
    if path is None:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                pkg = _package_of(module, path).split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            # `from sgpose import compute`: the names may be submodules
            found |= {f"{base}.{a.name}" for a in node.names if module_path(f"{base}.{a.name}", root)}
    return frozenset(m for m in found if module_path(m, root) is not None)


@lru_cache(maxsize=None)
def closure(entry: str, root: Path = ROOT) -> frozenset[str]:
    """`entry` and every package module it imports, transitively, with their parent packages; not the
    `UNTRACKED` modules themselves (what they import is followed: it is code the stage loads)."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in seen or module_path(module, root) is None:
            continue
        seen.add(module)
        todo += [*direct_imports(module, root), *_parents(module)]
    return frozenset(seen - UNTRACKED)


def module_files(entry: str, root: Path = ROOT) -> list[Path]:
    """The source files of `closure(entry)`, sorted: what a stage whose entry point is `entry` runs."""
    return sorted(p for p in (module_path(m, root) for m in closure(entry, root)) if p is not None)


def importers(module: str, entries: list[str], root: Path = ROOT) -> list[str]:
    """The entries among `entries` whose closure holds `module` (who re-runs when it changes)."""
    return [e for e in entries if module in closure(e, root)]
