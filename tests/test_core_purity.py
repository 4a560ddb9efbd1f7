"""The core (`core/`, the import package `sansbeat`) stays pure.

The contract is the source: no module under core/ may import a clock, a socket, a
thread or an event loop (time, socket, select, threading, asyncio, trio, anyio).
The check parses every .py file with `ast` and looks at `import x`, `from x import
y` (relative imports resolved against the package), and `__import__("x")` /
`importlib.import_module("x")` with a literal name. A second test imports every
core module in a fresh interpreter and checks none of those modules gets loaded,
which also catches an indirect import through the standard library.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"
PACKAGE = "sansbeat"
FORBIDDEN = frozenset(
    {"time", "socket", "select", "threading", "asyncio", "trio", "anyio"}
)


def module_name(path: Path, root: Path = CORE, package: str = PACKAGE) -> str:
    """The dotted name a file under `root` has inside `package`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def resolve(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """The absolute name of `from <level dots><module> import ...` in `importer`."""
    if level == 0:
        assert module is not None
        return module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(base) - 1:
        raise ImportError(f"relative import beyond the top package in {importer}")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(source: str, importer: str, is_package: bool = False) -> set[str]:
    """Every module name a source file imports, absolute."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level, importer, is_package)
            found.add(base)
            # `from . import x` may import the submodule x.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            first = node.args[0]
            dynamic = name in {"__import__", "import_module"}
            if (
                dynamic
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.add(first.value)
    return found


def forbidden_in(names: set[str]) -> set[str]:
    return {name for name in names if name.split(".")[0] in FORBIDDEN}


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_modules_are_found() -> None:
    names = {module_name(path) for path in core_files()}
    assert {"sansbeat", "sansbeat._machine", "sansbeat._actions"} <= names


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_no_clock_socket_thread_or_loop(path: Path) -> None:
    importer = module_name(path)
    names = imported_modules(
        path.read_text(encoding="utf-8"),
        importer,
        is_package=path.name == "__init__.py",
    )
    assert not forbidden_in(names), f"{path} imports {sorted(forbidden_in(names))}"


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os, threading",
        "import socket as s",
        "from select import select",
        "from asyncio.tasks import sleep",
        "import trio.lowlevel",
        "from anyio import sleep",
        "if True:\n    def f():\n        import time",
        "__import__('socket')",
        "import importlib\nimportlib.import_module('asyncio')",
        "from time import monotonic as now",
    ],
)
def test_checker_catches_forbidden_imports(source: str) -> None:
    assert forbidden_in(imported_modules(source, "sansbeat._machine"))


@pytest.mark.parametrize(
    "source",
    [
        "import timeit",
        "import mytime",
        "import random, math, dataclasses",
        "from . import time",  # sansbeat.time: a module of our own, not the clock
        "from ._actions import SendHeartbeat",
        "x = 'import time'",
    ],
)
def test_checker_allows_the_rest(source: str) -> None:
    assert not forbidden_in(imported_modules(source, "sansbeat._machine"))


def test_relative_imports_resolve_against_the_package() -> None:
    assert resolve("_actions", 1, "sansbeat._machine", False) == "sansbeat._actions"
    assert resolve("_actions", 1, "sansbeat", True) == "sansbeat._actions"
    assert resolve(None, 1, "sansbeat.sim", False) == "sansbeat"
    assert resolve("x", 2, "sansbeat.sub.mod", False) == "sansbeat.x"
    with pytest.raises(ImportError):
        resolve("x", 2, "sansbeat._machine", False)


IMPORT_ALL = """
import importlib, json, sys
forbidden, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
before = set(sys.modules)
for name in modules:
    importlib.import_module(name)
print(json.dumps(sorted(set(forbidden) & (set(sys.modules) - before))))
"""


def test_importing_the_core_loads_no_clock_socket_thread_or_loop() -> None:
    # `time` is loaded by the interpreter itself at start-up, so this cannot see a
    # direct `import time` (the source check above does); it sees every other
    # forbidden module, however indirectly it is imported.
    # __main__ is left out: importing it would run the program (its source is
    # checked above like every other module).
    modules = sorted(
        module_name(path) for path in core_files() if path.name != "__main__.py"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_ALL,
            json.dumps(sorted(FORBIDDEN)),
            json.dumps(modules),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == []
