"""The import rule of docs/architecture.md, checked on the source (issue 12).

- Imports only go down the layers (a module may import its own layer or a lower one).
- No import cycles. Function-local imports count; imports under ``if TYPE_CHECKING:`` do not
  (they never run). Importing ``a.b.c`` from outside package ``a.b`` also runs ``a.b``'s
  ``__init__``, so that edge is counted too.
- The protocol core imports nothing of the runtime: no asyncio, aiohttp, serial, aiomqtt, no
  config, hub or outputs.
- An output never imports another output, and the web endpoint imports no output.
- No module is longer than 600 lines, except the field catalogue's tables.
- The CLI dispatches to typed functions, not to names looked up by strings.

A step of the rebuild that has not landed yet is listed in ``PENDING`` with what is pending and
who does it; its check is an expected failure until then (and is removed from ``PENDING`` once
main complies, so the check is strict from then on). Anything not listed fails at once.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vedirect_async"
MAX_LINES = 600

# Layer of each module (dotted name below vedirect_async; "x.*" = package x and all under it).
# docs/architecture.md explains them; a new module needs a line here and one there.
LAYERS: dict[str, int] = {
    # 0 foundation, standard library only: __version__ and the exception hierarchy
    "": 0,
    "errors": 0,
    "env_value": 0,  # an environment variable's text as a config value (loader and probe)
    # 1 protocol core: pure, bytes in, values out
    "parser": 1,
    "hexframe": 1,
    "registers": 1,
    "daily": 1,  # MPPT daily-history records (HEX)
    "fields": 1,
    "reading": 1,
    "decoder": 1,
    "commands": 1,  # HEX commands: request frames, answers matched into typed results
    "writable": 1,  # which registers may be written, as switch/select/number; value parsing
    "present": 1,
    "csv_columns": 1,
    # 2 runtime basics
    "backoff": 2,
    "config_loader": 2,
    "config": 2,
    "logsetup": 2,
    "state": 2,
    "hub": 2,
    # 3 devices
    "session": 3,
    "hexlink": 3,  # the HEX command path of one port (one command in flight, retries)
    "poller": 3,  # identity and register polling over HEX
    "control": 3,  # the write policy: allowlist, checks, rate limit, confirmation (issue 15)
    "watchdog": 3,
    "simulator": 3,
    "simulator.*": 3,
    "decode": 3,
    # 4 outputs and the web endpoint
    "outputs": 4,
    "outputs.*": 4,
    "web": 4,
    "web.*": 4,
    "history": 4,
    # 5 wiring and the command line
    "settings": 5,  # the configuration with every registered output's section
    "service": 5,
    "cli": 5,
    "cli.*": 5,
    "healthcheck": 5,
    "__main__": 5,
}
LAYER_NAMES = {0: "foundation", 1: "protocol core", 2: "runtime", 3: "devices", 4: "outputs"}
LAYER_NAMES[5] = "service and CLI"

CORE: tuple[str, ...] = ("parser", "hexframe", "registers", "daily", "fields", "reading")
CORE += ("decoder", "present", "commands", "writable")
RUNTIME_LIBRARIES = frozenset(
    {"asyncio", "aiohttp", "aiomqtt", "aiofiles", "serial", "serial_asyncio_fast", "yarl"}
)
RUNTIME_LIBRARIES |= {"prometheus_client"}
# modules under outputs/ that every output may use (the interface and the delivery scaffold)
OUTPUT_SHARED = ("outputs.base", "outputs.delivery")
SIZE_EXEMPT = ("fields", "fields.*")

# Modules of the target shape that are still to come, and who brings them.
NEW_MODULES: dict[str, str] = {}

# What main does not comply with yet: check -> (what is pending, who lands it).
PENDING: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted below vedirect_async ("" = the package)
    target: str  # the module this import names (a module of the package)
    line: int


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for inner in ast.walk(child):
                        if hasattr(inner, "lineno"):
                            lines.add(inner.lineno)
    return lines


def _absolute(source: str, level: int, module: str | None) -> str:
    """``from ..x import y`` inside ``source`` -> the dotted name of ``..x`` (package-relative)."""
    if level == 0:
        name = module or ""
        if name == "vedirect_async" or name.startswith("vedirect_async."):
            return name.removeprefix("vedirect_async").removeprefix(".")
        return "\0" + name  # outside the package
    base = source.split(".") if source else []
    if not _is_package(source):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


@functools.cache
def _parse(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), str(MODULES[name]))


def imports_of(name: str, tree: ast.Module | None = None) -> tuple[Import, ...]:
    """Every import of a package module by ``name`` that runs (function-local included)."""
    return _imports(name) if tree is None else tuple(_scan(name, tree))


@functools.cache
def _imports(name: str) -> tuple[Import, ...]:
    return tuple(_scan(name, _parse(name)))


def _scan(name: str, tree: ast.Module) -> Iterator[Import]:
    skipped = _type_checking_lines(tree)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _absolute(name, 0, alias.name)
                if not target.startswith("\0"):
                    yield Import(name, target, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, node.level, node.module)
            if base.startswith("\0"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                yield Import(name, sub if sub in MODULES else base, node.lineno)


def external_imports_of(name: str) -> set[str]:
    tree = _parse(name)
    skipped = _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - {"vedirect_async"}


def runs(imp: Import) -> list[str]:
    """The modules an import runs: its target and the target's packages not yet running."""
    ran = [imp.target]
    parts = imp.target.split(".")
    for n in range(1, len(parts)):
        package = ".".join(parts[:n])
        if not (imp.source == package or imp.source.startswith(package + ".")):
            ran.append(package)
    return ran


def pending(check: str) -> bool:
    return check in PENDING


def _import_key(imp: Import) -> str:
    return f"import {imp.source or 'vedirect_async'} -> {imp.target or 'vedirect_async'}"


def graph(*, skip_pending: bool = True) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for imp in imports_of(name):
            if skip_pending and pending(_import_key(imp)):
                continue
            edges[name] |= {t for t in runs(imp) if t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(name: str) -> int | None:
    if name in LAYERS:
        return LAYERS[name]
    parts = name.split(".")
    for n in range(len(parts) - 1, 0, -1):
        star = ".".join(parts[:n]) + ".*"
        if star in LAYERS:
            return LAYERS[star]
    return None


def _in(name: str, patterns: tuple[str, ...]) -> bool:
    """``name`` is one of ``patterns`` ("x.*" = anything below package x)."""
    return any(name.startswith(p[:-1]) if p.endswith(".*") else name == p for p in patterns)


def _pending_marks(check: str) -> list[pytest.MarkDecorator]:
    if check in PENDING:
        return [pytest.mark.xfail(reason=f"pending: {PENDING[check]}", strict=False)]
    return []


# -- the checks -----------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    missing = [name for name in MODULES if layer(name) is None]
    assert not missing, (
        f"modules without a layer: {missing}; give each one in tests/test_architecture.py "
        "LAYERS and in docs/architecture.md"
    )


def test_every_layer_entry_names_a_module() -> None:
    """A LAYERS line for a module that is gone (or "x.*" for a module that is no package)
    would let the map drift from the code unnoticed."""
    stale = [
        entry
        for entry in LAYERS
        if not (
            any(name.startswith(entry[:-1]) for name in MODULES)
            if entry.endswith(".*")
            else entry in MODULES
        )
    ]
    assert not stale, f"LAYERS entries without a module: {stale}"


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, f"import cycles (function-local imports count): {found}"


def test_imports_only_go_down() -> None:
    upward: list[str] = []
    for name in MODULES:
        for imp in imports_of(name):
            if pending(_import_key(imp)):
                continue
            for target in runs(imp):
                low, high = layer(target), layer(name)
                if low is not None and high is not None and low > high:
                    upward.append(
                        f"{MODULES[name].relative_to(ROOT)}:{imp.line} {name} "
                        f"({LAYER_NAMES[high]}) imports {target} ({LAYER_NAMES[low]})"
                    )
    assert not upward, "imports going up a layer:\n" + "\n".join(upward)


def test_no_output_imports_another_and_web_imports_no_output() -> None:
    sideways: list[str] = []
    for name in MODULES:
        if name == "outputs" or not (name.startswith(("outputs.", "web")) or name == "history"):
            continue
        own = ".".join(name.split(".")[:2]) if name.startswith("outputs.") else "web"
        for imp in imports_of(name):
            target = imp.target
            if pending(_import_key(imp)) or not target.startswith("outputs."):
                continue
            if name.startswith("outputs.") and (
                target == own or target.startswith(own + ".") or _in(target, OUTPUT_SHARED)
            ):
                continue
            sideways.append(f"{MODULES[name].relative_to(ROOT)}:{imp.line} {name} -> {target}")
    assert not sideways, "sideways imports between outputs / web -> output:\n" + "\n".join(sideways)


@pytest.mark.parametrize("name", [*CORE, "csv_columns"])
def test_protocol_core_imports_nothing_of_the_runtime(name: str) -> None:
    if name not in MODULES:
        pytest.skip(f"vedirect_async/{name}.py does not exist yet: {NEW_MODULES[name]}")
    external = external_imports_of(name) & RUNTIME_LIBRARIES
    internal = {
        target
        for imp in imports_of(name)
        for target in runs(imp)
        if (layer(target) or 0) > LAYERS["parser"]
    }
    assert not external, f"{name} (protocol core) imports {sorted(external)}"
    assert not internal, f"{name} (protocol core) imports higher modules {sorted(internal)}"


def _size_params() -> list[object]:
    return [
        pytest.param(name, marks=_pending_marks(f"size {name}"), id=name or "__init__")
        for name in MODULES
        if not _in(name, SIZE_EXEMPT)
    ]


@pytest.mark.parametrize("name", _size_params())
def test_module_is_at_most_600_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines"


def _pending_import_params() -> list[object]:
    return [
        pytest.param(check, marks=_pending_marks(check), id=check)
        for check in PENDING
        if check.startswith("import ")
    ]


@pytest.mark.parametrize("check", _pending_import_params())
def test_pending_import_is_gone(check: str) -> None:
    """Each import that ``PENDING`` tolerates in the checks above, asserted to be gone."""
    present = {_import_key(imp) for name in MODULES for imp in imports_of(name)}
    assert check not in present, check


@pytest.mark.parametrize("name", [pytest.param("cli", marks=_pending_marks("strings cli"))])
def test_cli_dispatch_uses_no_string_lookups(name: str) -> None:
    """importlib.import_module / getattr by a string is what "typed dispatch" replaces."""
    found = [
        f"{MODULES[module].relative_to(ROOT)}:{node.lineno}"
        for module in MODULES
        if module == name or module.startswith(name + ".")
        for node in ast.walk(_parse(module))
        if isinstance(node, ast.Attribute) and node.attr == "import_module"
    ]
    assert not found, f"string lookups of handlers: {found}"


@pytest.mark.parametrize("name", [pytest.param("decoder", marks=_pending_marks("decoder"))])
def test_only_the_decoder_wires_parser_and_assembler(name: str) -> None:
    """Parser + Assembler are put together in one place, the Decoder, not by every caller."""
    assert name in MODULES, f"vedirect_async/{name}.py does not exist"
    wiring = [
        module
        for module in MODULES
        if module not in (name, "reading")
        for node in ast.walk(_parse(module))
        if isinstance(node, ast.ImportFrom)
        and node.module in ("reading", "vedirect_async.reading")
        and any(alias.name == "Assembler" for alias in node.names)
    ]
    assert not wiring, f"modules building an Assembler themselves: {sorted(set(wiring))}"
    # tests and benches too: they get readings out of bytes through the Decoder
    outside = [
        str(path.relative_to(ROOT))
        for folder in (ROOT / "tests", ROOT / "bench")
        for path in sorted(folder.rglob("*.py"))
        if path.relative_to(ROOT).as_posix() not in ASSEMBLER_TESTS
        and _builds_an_assembler(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert not outside, f"tests/benches building an Assembler themselves: {outside}"


# Tests of the assembler itself (reading.py), which feed it blocks by hand on purpose.
ASSEMBLER_TESTS = frozenset({"tests/test_reading.py"})


def _builds_an_assembler(tree: ast.Module) -> bool:
    """Whether the code imports ``Assembler`` or calls anything named ``Assembler``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "Assembler" for a in node.names):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "Assembler":
                return True
    return False


# -- the checker checks itself --------------------------------------------------------------


def test_the_checker_sees_function_local_imports_and_skips_type_checking() -> None:
    source = """
from typing import TYPE_CHECKING
from .errors import ConfigError
from . import fields
if TYPE_CHECKING:
    from .hub import Hub
def late():
    from .outputs.base import Output
    import vedirect_async.parser
"""
    found = {imp.target: imp.line for imp in imports_of("config", ast.parse(source))}
    assert found == {"errors": 3, "fields": 4, "outputs.base": 8, "parser": 9}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer("outputs.mqtt.discovery") == 4
    assert layer("nonexistent") is None


def test_an_import_of_a_submodule_runs_its_package() -> None:
    outside = Import("service", "outputs.base", 1)
    inside = Import("outputs.csv_log", "outputs.base", 1)
    assert runs(outside) == ["outputs.base", "outputs"]
    assert runs(inside) == ["outputs.base"]
