"""The package's import structure: no cycles, layers point one way, no private imports.

Three checks, each printing every violation on its own line:

* **First import** (runtime): every module of ``slipstream`` is imported *first*, into an
  interpreter that holds no other slipstream module, so an import cycle fails whichever
  module it starts from. The package root ``slipstream/__init__.py`` (which imports the
  whole loader) is replaced by a bare package object for these imports: otherwise it would
  always run first and fix the order. One subprocess walks all modules, emptying
  ``sys.modules`` of slipstream between them; :func:`test_first_import_catches_a_cycle`
  shows on a throwaway cyclic package that this method fails on a cycle.
* **Layering** (static, AST): a module imports only from its own layer or lower ones
  (:data:`LAYERS`); imports inside functions count, imports under ``if TYPE_CHECKING:`` do
  not. Module-level import cycles are reported from the same graph.
* **Private names** (static): no module imports a ``_private`` name (or module) from
  another package of slipstream, nor reaches one through an imported module's attribute;
  ``slipstream._core`` imported by ``slipstream.native`` is the one exception.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import pkgutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "slipstream"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("paths", "errors", "arguments", "renamed", "logs", "native", "_core"),
    ("cache",),
    ("readers", "remote_cache"),
    ("sampling",),
    ("prefetch",),
    ("decode", "dali"),
    ("augment", "transforms", "pipelines", "decoders"),
    (
        "dataset",
        "loader",
        "loader_arguments",
        "raw_loader",
        "stats",
        "verify",
        "cli",
        "demo",
        "bench",
        "vis",
        "__init__",
        "__main__",
    ),
)
"""Lowest first. Each name is a sub-package or top-level module of ``slipstream``."""

LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}

PRIVATE_EXCEPTIONS = {("native", "slipstream._core")}
"""``(importer package, private module)`` pairs allowed: the compiled core's one owner."""


# --- module discovery -----------------------------------------------------------------


def package_modules() -> list[str]:
    """Every module of the package, found with pkgutil on the source tree (nothing imported)."""
    names = ["slipstream"]

    def walk(path: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(path)]):
            name = f"{prefix}.{info.name}"
            if info.ispkg:
                names.append(name)
                walk(path / info.name, name)
            elif (path / f"{info.name}.py").is_file():  # not the compiled _core
                names.append(name)

    walk(PACKAGE_DIR, "slipstream")
    return sorted(names)


@functools.cache
def source_files() -> dict[str, Path]:
    """Module name -> source file, for every ``.py`` file under ``slipstream/``."""
    files = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def stage_of(module: str) -> str:
    """The layer unit of a module: its sub-package or top-level module name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def importable_modules() -> list[str]:
    """Modules whose optional dependencies are installed here."""
    skip = []
    if importlib.util.find_spec("nvidia") is None or _missing("nvidia.dali"):
        skip.append("slipstream.dali")
    if importlib.util.find_spec("skimage") is None:
        skip.append("slipstream.demo")
    return [
        m
        for m in package_modules()
        if m != "slipstream.__main__"  # runs the command line
        and not any(m == s or m.startswith(s + ".") for s in skip)
    ]


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ImportError:
        return True


# --- first import ----------------------------------------------------------------------

FIRST_IMPORT_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys, traceback, types

    package, package_dir, keep = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
    failures, imported = {}, 0
    for name in sys.stdin.read().split():
        for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            if mod not in keep:
                del sys.modules[mod]
        if name != package:  # a bare root: its __init__ must not run first
            root = types.ModuleType(package)
            root.__path__ = [package_dir]
            sys.modules[package] = root
        try:
            importlib.import_module(name)
            imported += 1
        except BaseException as exc:
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{last.filename}:{last.lineno}"
            failures[name] = f"{type(exc).__name__}: {exc} (at {where})"
    print(json.dumps({"failures": failures, "imported": imported}))
    """
)


def first_import_failures(
    package: str, package_dir: Path, modules: list[str], keep: tuple[str, ...] = ()
) -> dict[str, str]:
    """Import each module first into a clean set of ``package`` modules; name -> error."""
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORT_SCRIPT, package, str(package_dir), ",".join(keep)],
        input="\n".join(modules),
        capture_output=True,
        text=True,
        cwd=package_dir.parent,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["imported"] + len(result["failures"]) == len(modules), result
    return result["failures"]


def test_first_import_catches_a_cycle(tmp_path: Path) -> None:
    """The method fails on a cycle: a throwaway package whose a and b import each other."""
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from cyclic.low import LOW\n")  # runs low first if used
    (pkg / "low.py").write_text("LOW = 1\n")
    (pkg / "a.py").write_text("from cyclic.b import B\nA = B + 1\n")
    (pkg / "b.py").write_text("from cyclic.low import LOW\nfrom cyclic.a import A\nB = LOW\n")
    failures = first_import_failures("cyclic", pkg, ["cyclic.low", "cyclic.a", "cyclic.b"])
    assert set(failures) == {"cyclic.a", "cyclic.b"}, failures
    assert all("ImportError" in f for f in failures.values()), failures


def test_every_module_imports_first() -> None:
    """Every module imports alone, first, in an interpreter holding no other slipstream module."""
    modules = importable_modules()
    assert len(modules) > 30, modules
    failures = first_import_failures("slipstream", PACKAGE_DIR, modules, keep=("slipstream._core",))
    for name, error in sorted(failures.items()):
        print(f"FIRST IMPORT FAILS: {name}: {error}")
    assert not failures, "\n".join(f"{n}: {e}" for n, e in sorted(failures.items()))


def test_package_root_imports() -> None:
    """``import slipstream`` (the real root, which imports the loader) works in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", "import slipstream; print(slipstream.SlipstreamLoader)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


# --- static import graph ---------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One slipstream import found in a source file.

    Attributes:
        importer: The importing module.
        target: The imported module (``from pkg import name`` names ``pkg.name`` where that
            is a module, else ``pkg``).
        names: The names taken from ``target`` (empty for ``import x``).
        alias: The local name bound to ``target`` when it is a module, else None.
        line: Line number.
        module_level: Not inside a function (runs at import time).
    """

    importer: str
    target: str
    names: tuple[str, ...]
    alias: str | None
    line: int
    module_level: bool


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, modules: set[str]) -> None:
        self.module, self.modules = module, modules
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, target: str, names: tuple[str, ...], alias: str | None, line: int) -> None:
        if target == "slipstream" or target.startswith("slipstream."):
            self.found.append(Import(self.module, target, names, alias, line, self.depth == 0))

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _visit_scope(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_scope

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            alias = a.asname if a.asname else None
            self._add(a.name, (), alias, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        plain = []
        for a in node.names:
            sub = f"{source}.{a.name}"
            if sub in self.modules:
                self._add(sub, (), a.asname or a.name, node.lineno)
            else:
                plain.append(a.name)
        if plain:
            self._add(source, tuple(plain), None, node.lineno)


def collect_imports() -> list[Import]:
    """Every slipstream import in the package's source files."""
    files = source_files()
    modules = set(files) | {"slipstream._core"}
    imports: list[Import] = []
    for module, path in files.items():
        collector = _ImportCollector(module, path.name == "__init__.py", modules)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        imports += collector.found
    return imports


def _where(imp: Import) -> str:
    path = source_files().get(imp.importer)
    return f"{path.relative_to(ROOT) if path else imp.importer}:{imp.line}"


def layering_violations(imports: list[Import]) -> list[str]:
    """One line per import that points from a lower layer to a higher one."""
    out = []
    for imp in imports:
        src, dst = stage_of(imp.importer), stage_of(imp.target)
        for unit in (src, dst):
            if unit not in LAYER_OF:
                out.append(f"{_where(imp)}: {unit!r} has no layer: add it to LAYERS")
        if src in LAYER_OF and dst in LAYER_OF and LAYER_OF[dst] > LAYER_OF[src]:
            what = imp.target + (f" ({', '.join(imp.names)})" if imp.names else "")
            kind = "" if imp.module_level else " [in a function]"
            out.append(
                f"{_where(imp)}: {src} (layer {LAYER_OF[src]}) imports {what} "
                f"({dst}, layer {LAYER_OF[dst]}){kind}"
            )
    return sorted(set(out))


def module_cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups of modules that import each other at module level."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.module_level and imp.target != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(groups)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_violations(imports: list[Import]) -> list[str]:
    """One line per private name or module taken from another package of slipstream."""
    out = []
    files = source_files()
    for imp in imports:
        src, dst = stage_of(imp.importer), stage_of(imp.target)
        if src == dst:
            continue
        private_path = any(_private(p) for p in imp.target.split(".")[1:])
        if private_path and (src, imp.target) not in PRIVATE_EXCEPTIONS:
            out.append(f"{_where(imp)}: {imp.importer} imports private module {imp.target}")
        for name in imp.names:
            if _private(name) and (src, f"{imp.target}.{name}") not in PRIVATE_EXCEPTIONS:
                out.append(f"{_where(imp)}: {imp.importer} imports {name} from {imp.target}")
    # a private attribute of a module imported from another package: ``mod._name``
    aliases: dict[str, dict[str, str]] = {}
    for imp in imports:
        if not imp.names and stage_of(imp.importer) != stage_of(imp.target):
            local = imp.alias or imp.target
            aliases.setdefault(imp.importer, {})[local] = imp.target
    for module, bound in aliases.items():
        tree = ast.parse(files[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                dotted = _dotted(node.value)
                target = bound.get(dotted) if dotted else None
                if target is not None and (stage_of(module), target) not in PRIVATE_EXCEPTIONS:
                    where = f"{files[module].relative_to(ROOT)}:{node.lineno}"
                    out.append(f"{where}: {module} uses {target}.{node.attr}")
    return sorted(set(out))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def test_every_module_has_a_layer() -> None:
    """New sub-packages must be placed in :data:`LAYERS`."""
    missing = sorted({stage_of(m) for m in source_files()} - set(LAYER_OF))
    for unit in missing:
        print(f"NO LAYER: slipstream.{unit}")
    assert not missing, missing


def test_layers_point_down() -> None:
    """No module imports a module of a higher layer (outside ``if TYPE_CHECKING:``)."""
    imports = collect_imports()
    assert any(i.target == "slipstream.cache.format" for i in imports)  # the walker sees imports
    violations = layering_violations(imports)
    for line in violations:
        print(f"LAYER VIOLATION: {line}")
    assert not violations, "\n".join(violations)


def test_no_module_level_cycles() -> None:
    """No group of modules imports each other at module level (a static twin of first import)."""
    imports = collect_imports()
    cycles = module_cycles(imports)
    for group in cycles:
        print(f"IMPORT CYCLE: {' <-> '.join(group)}")
    assert not cycles, cycles


def test_no_private_imports_across_packages() -> None:
    """No ``_private`` name, module or module attribute taken from another package."""
    imports = collect_imports()
    violations = private_violations(imports)
    for line in violations:
        print(f"PRIVATE IMPORT: {line}")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from slipstream.dataset import x\n", "imports slipstream.dataset (x) (dataset, layer 7)"),
        ("def f():\n    import slipstream.loader\n", "(loader, layer 7) [in a function]"),
        ("from . import reader, gather\nfrom ..readers import ffcv_file\n", "readers.ffcv_file"),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import slipstream.loader\n", ""),
    ],
)
def test_layering_check_sees_violations(source: str, expected: str) -> None:
    """The static check flags an upward import from ``cache`` (module or function level,
    absolute or relative) and leaves one under ``TYPE_CHECKING`` alone."""
    collector = _ImportCollector("slipstream.cache.probe", False, set(source_files()))
    collector.visit(ast.parse(source))
    violations = layering_violations(collector.found)
    assert len(violations) == (1 if expected else 0), violations
    assert all(expected in v for v in violations), violations
