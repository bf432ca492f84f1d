"""The shape of the package: a few core files and the rooms, each room saying what it offers, short
functions, and a public API that resolves."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import hpsearch

PKG = Path(hpsearch.__file__).parent
ROOMS = ("cli", "data", "models", "training", "search", "results", "reproduce")
MAX_FUNCTION_LINES = 80


def test_the_top_level_is_a_few_core_files_and_the_rooms() -> None:
    files = sorted(p.name for p in PKG.glob("*.py"))
    assert files == ["__init__.py", "__main__.py", "_version.py", "errors.py", "registry.py"]
    rooms = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert rooms == sorted(ROOMS)
    assert (PKG / "py.typed").is_file()


def test_module_names_are_unique_across_the_package() -> None:
    # Two rooms' runner.py (or options.py) make tracebacks, imports and docs ambiguous.
    names: dict[str, list[str]] = {}
    for p in PKG.rglob("*.py"):
        if p.name not in ("__init__.py", "__main__.py"):
            names.setdefault(p.name, []).append(str(p.relative_to(PKG)))
    assert {n: ps for n, ps in names.items() if len(ps) > 1} == {}


@pytest.mark.parametrize("room", [r for r in ROOMS if r != "cli"])
def test_each_room_states_its_contract_and_its_public_surface(room: str) -> None:
    mod = importlib.import_module(f"hpsearch.{room}")
    assert mod.__doc__ and len(mod.__doc__.strip()) > 40, f"hpsearch.{room} has no contract docstring"
    if hasattr(mod, "__all__"):  # a room that re-exports: every name it lists resolves
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert mod.__all__ and not missing, missing
    else:  # callers import from the modules, so the contract names every one of them
        modules = sorted(p.name for p in (PKG / room).glob("*.py") if p.name != "__init__.py")
        unnamed = [m for m in modules if f"``{m}``" not in mod.__doc__]
        assert not unnamed, f"hpsearch.{room}'s docstring does not name {unnamed}"


def test_only_the_package_root_loads_names_lazily() -> None:
    # A room's module-level __getattr__ would make each of its names Any to a type checker.
    lazy = [room for room in ROOMS if hasattr(importlib.import_module(f"hpsearch.{room}"), "__getattr__")]
    assert lazy == []
    assert hpsearch.__all__[1:] == sorted(hpsearch._EXPORTS)


def test_the_package_api_resolves() -> None:
    assert hpsearch.__all__[0] == "__version__"
    for name in hpsearch.__all__[1:]:
        assert getattr(hpsearch, name) is not None, name
    assert hpsearch.fit.__module__ == "hpsearch.training.loop"
    assert hpsearch.run_study is hpsearch.run_search  # an alias names the same function
    assert set(hpsearch.__all__) <= set(dir(hpsearch))  # dir() lists names not loaded yet
    with pytest.raises(AttributeError, match="module 'hpsearch' has no attribute 'nope'"):
        hpsearch.nope  # noqa: B018


def test_a_type_checker_sees_every_public_name_from_its_module() -> None:
    # The TYPE_CHECKING block and the lazy map must agree, or a name is Any (or wrong) to a type checker.
    tree = ast.parse((PKG / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    seen = {
        alias.asname or alias.name: node.module + ("" if alias.asname is None else f":{alias.name}")
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert seen == hpsearch._EXPORTS


def test_importing_the_rooms_imports_no_heavy_library() -> None:
    # A fresh interpreter (this one imported torch long ago); the CLI imports these rooms for every command,
    # and `--help` must answer without them.
    rooms = "hpsearch, hpsearch.cli, hpsearch.data, hpsearch.training, hpsearch.search, hpsearch.results"
    heavy = ("torch", "albumentations", "matplotlib", "optuna_dashboard")
    code = (
        f"import sys, {rooms}\n"
        "from typer.testing import CliRunner\n"
        "for args in (['--help'], ['run', '--help'], ['data', 'check', '--help']):\n"
        "    assert CliRunner().invoke(hpsearch.cli.app, args).exit_code == 0, args\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_function_is_longer_than_the_limit() -> None:
    long = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PKG)}:{node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_library_never_reads_the_environment_outside_the_cli() -> None:
    readers = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "cli":
            continue
        text = path.read_text()
        if "os.environ.get(" in text or "os.getenv(" in text or "os.environ[" in text:
            readers.append(str(rel))
    # The cache folder is a process-wide location like XDG's; reading it deep down is the one exception.
    assert readers == ["data/io.py"], readers


# ------------------------------------------------------------------------------------------ no import circles
def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _lazy_names(path: Path, package: str) -> dict[str, str]:
    """A room's lazily exported names and the modules they load (its ``_EXPORTS``/``_WHERE`` mapping)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            try:
                where = ast.literal_eval(node.value)
            except ValueError:
                continue
            if where and all(isinstance(v, str) for v in where.values()):
                mods = {k: v.split(":")[0] for k, v in where.items()}
                return {k: package + m if m.startswith(".") else m for k, m in mods.items()}
    return {}


def import_edges() -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for every ``hpsearch`` import in ``hpsearch/``, at module level,
    inside functions and under ``TYPE_CHECKING`` alike; a name taken from a package counts as an import of
    the module it comes from (a submodule, or the module the package loads it from lazily)."""
    files = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
    lazy = {m: _lazy_names(p, m) for m, p in files.items() if p.name == "__init__.py"}

    def target(module: str, name: str) -> str:
        if f"{module}.{name}" in files:
            return f"{module}.{name}"
        return lazy.get(module, {}).get(name, module)

    edges: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found: list[tuple[str, int]] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                source = ".".join(base + ([node.module] if node.module else []))
                found += [(target(source, a.name), node.lineno) for a in node.names]
        for other, line in found:
            if other in files and other != module:
                edges.setdefault(module, {}).setdefault(other, line)
    return edges


def import_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    # A circle works only while every import in it stays late (inside a function or TYPE_CHECKING): the
    # modules depend on each other whichever way they are written, so the graph counts every import.
    edges = import_edges()
    # The scan sees imports at module level, inside functions, and under TYPE_CHECKING.
    assert "hpsearch.training.loop" in edges["hpsearch.search.objective"]
    assert "hpsearch.search.objective" in edges["hpsearch.search.cost"]
    assert "hpsearch.data.discover" in edges["hpsearch.search.lifecycle"]
    cycles = import_cycles(edges)
    detail = [
        f"{' <-> '.join(c)}: "
        + ", ".join(f"{a} -> {b} (line {edges[a][b]})" for a in c for b in edges.get(a, {}) if b in c)
        for c in cycles
    ]
    assert not cycles, detail
    assert import_cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c"]]
