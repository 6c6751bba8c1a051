"""The import graph of src/: no cycles, no arrow from a lower layer to a higher one, and each
outside library imported by its one owner (docs/architecture.md, "Dependencies"). Also: the CLI
and the MCP server reach an identity only through the Service facade, and no coroutine holds
a blocking lock.

Read from the source with `ast` (every import, at module level or inside a function), so a
lazy import counts as much as any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Lower layers first. A module may import its own layer (without cycles) and those below.
LAYERS: list[tuple[str, ...]] = [
    ("claudematrix", "claudematrix.local", "claudematrix.thin"),
    ("claudematrix.ids", "claudematrix.errors"),
    (
        "claudematrix.types",
        "claudematrix.paths",
        "claudematrix.federation",
        "claudematrix.config",
        "claudematrix.locks",
        "claudematrix.workspace",
        "claudematrix.identity",
        "claudematrix.session_env",
    ),
    ("claudematrix.store",),
    ("claudematrix.policy", "claudematrix.homeserver", "claudematrix.team"),
    ("claudematrix.matrix",),
    ("claudematrix.service",),
    ("claudematrix.render",),
    ("claudematrix.mcp_server",),
    ("claudematrix.worker",),
    ("claudematrix.daemon",),
    ("claudematrix.cli", "claudematrix.entry", "claudematrix.__main__"),
]
# Packages that may import only themselves and these (besides the standard library).
CONFINED = {
    "claudematrix.local": ("claudematrix.local",),
    # The shim and the link to the daemon: one small process per session.
    "claudematrix.thin": ("claudematrix", "claudematrix.thin", "claudematrix.local"),
    "claudematrix.hooks": ("claudematrix.hooks", "claudematrix.local", "claudematrix.thin"),
    "claudematrix.homeserver": (
        "claudematrix.homeserver",
        "claudematrix.errors",
        "claudematrix.paths",
        "claudematrix.config",
        "claudematrix.federation",
        "claudematrix.local",
    ),
    # A team's Synapse, run on its own host: nothing of the sessions' side.
    "claudematrix.team": (
        "claudematrix.team",
        "claudematrix.homeserver",
        "claudematrix.errors",
        "claudematrix.paths",
    ),
    # Addresses, certificates, cards and the paired list: below config, which reads them.
    "claudematrix.federation": (
        "claudematrix.federation",
        "claudematrix.errors",
        "claudematrix.paths",
        "claudematrix.local",
    ),
}
# Outside libraries and the one place each may be imported from.
OWNERS = {
    "nio": ("claudematrix.matrix",),
    "aiohttp": ("claudematrix.matrix",),
    "mcp": ("claudematrix.mcp_server",),
    "pydantic": ("claudematrix.mcp_server",),
    "click": ("claudematrix.cli",),
    "cryptography": ("claudematrix.federation",),
    "sqlite3": ("claudematrix.store", "claudematrix.local.mailbox"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in a module; `from pkg import submodule`
    is an import of the submodule alone."""
    path = MODULES[name]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            yield from ((sub, node.lineno) for sub in subs)
            if len(subs) < len(node.names):
                yield target, node.lineno


def _ours(target: str) -> str | None:
    """The module of ours `target` names (a name inside a module counts as the module)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer(name: str) -> int:
    best, found = -1, -1
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if _within(name, (prefix,)) and len(prefix) > best:
                best, found = len(prefix), index
    return found


GRAPH = {
    name: {t for t in (_ours(i) for i, _ in _imports(name)) if t and t != name}
    for name in MODULES
    if name.startswith("claudematrix")
}


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in GRAPH if _layer(m) < 0 and not _within(m, ("claudematrix.hooks",))]
    assert unplaced == []


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) >= 0))
def test_no_import_points_upward(module: str) -> None:
    upward = [t for t in GRAPH[module] if _layer(t) > _layer(module)]
    assert upward == [], f"{module} (layer {_layer(module)}) imports higher layers: {upward}"


@pytest.mark.parametrize("package", sorted(CONFINED))
def test_confined_packages_import_only_what_they_may(package: str) -> None:
    allowed = CONFINED[package]
    wrong = {
        (m, t) for m in GRAPH if _within(m, (package,)) for t in GRAPH[m] if not _within(t, allowed)
    }
    assert wrong == set()


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_outside_library_has_one_owner(library: str) -> None:
    importers = {
        m
        for m in GRAPH
        for target, _line in _imports(m)
        if target == library or target.startswith(library + ".")
    }
    assert importers, f"nobody imports {library}: drop it from OWNERS"
    assert {m for m in importers if not _within(m, OWNERS[library])} == set()


# The front ends: they use `claudematrix.service.Service` and nothing behind it.
FRONT_ENDS = ("claudematrix.cli", "claudematrix.mcp_server", "claudematrix.daemon")
SERVICE_INSIDES = {"store", "client", "directory", "people"}


def _trees(prefixes: tuple[str, ...]) -> Iterator[tuple[str, ast.AST]]:
    for name, path in MODULES.items():
        if _within(name, prefixes):
            yield name, ast.parse(path.read_text())


def test_front_ends_use_only_the_service_facade() -> None:
    reaching_in = [
        (name, node.lineno, node.attr)
        for name, tree in _trees(FRONT_ENDS)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in SERVICE_INSIDES
    ]
    behind = [
        (name, target)
        for name in GRAPH
        if _within(name, FRONT_ENDS)
        for target in GRAPH[name]
        if _within(target, ("claudematrix.service",)) and target != "claudematrix.service"
    ]
    assert reaching_in == [] and behind == []


BLOCKING_LOCKS = {"FileLock", "file_lock"}


def _called(expr: ast.expr) -> str:
    func = expr.func if isinstance(expr, ast.Call) else expr
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_no_blocking_lock_or_sleep_inside_a_coroutine() -> None:
    """A coroutine waits for a lock with `async with FileLock(...)`: a blocking flock or
    sleep would stop the event loop, and every tool and sync with it."""
    found = []
    for name, tree in _trees(("claudematrix",)):
        for coroutine in (n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)):
            for node in ast.walk(coroutine):
                if isinstance(node, ast.With):
                    held = {_called(item.context_expr) for item in node.items}
                    if held & BLOCKING_LOCKS:
                        found.append((name, node.lineno, "with"))
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    receiver = node.func.value
                    if node.func.attr == "sleep" and getattr(receiver, "id", "") == "time":
                        found.append((name, node.lineno, "time.sleep"))
                    blocking = not any(
                        k.arg == "blocking"
                        and isinstance(k.value, ast.Constant)
                        and not k.value.value
                        for k in node.keywords
                    )
                    if node.func.attr == "acquire" and blocking:
                        found.append((name, node.lineno, "acquire()"))
    assert found == []
