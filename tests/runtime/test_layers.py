"""The package's layout (docs/architecture.md, "Packages, floor by floor"): every import goes to the same
package or a lower floor, and no import is circular. The floors are this table's, in docs' order."""

from __future__ import annotations

from sgpose.runtime import imports

FLOORS = ["core", "config", "runtime", "data", "models", "evaluation", "cache", "method", "training|inference",
          "controlled", "golden|report", "dag", "stages", "cli"]
ROOT_MODULES = {"sgpose.cli"}  # the CLI


def floor(module: str) -> int:
    """The floor of a module's package (`sgpose.cache.reader` -> cache's)."""
    name = module.split(".")[1] if module.count(".") else "sgpose"
    return next(i for i, f in enumerate(FLOORS) if name in f.split("|"))


def edges() -> dict[str, set[str]]:
    mods = [m for m in imports.all_modules() if m != "sgpose"]
    return {m: {d for d in imports.direct_imports(m) if d not in (m, "sgpose")} for m in mods}


def test_the_root_holds_only_the_cli_and_packages():
    root = {m for m in imports.all_modules() if m.count(".") == 1 and imports.module_path(m).name != "__init__.py"}
    assert root == ROOT_MODULES


def test_every_import_goes_to_its_own_package_or_a_lower_floor():
    up = {(m, d) for m, ds in edges().items() for d in ds
          if floor(d) > floor(m) and m.split(".")[:2] != d.split(".")[:2]}
    assert not up, sorted(up)


def test_no_import_is_circular():
    graph = edges()
    state: dict[str, int] = {}  # 1 on the path, 2 done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles
