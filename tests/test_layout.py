"""The package's layout keeps its promises (docs/architecture.md): imports go one way
down the layers, no module imports itself back round a cycle, and no module or class
grows past what a reader takes in at once (a function: 60 lines)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "waitingroom"

SHARED = ("errors", "tls", "fields", "settings", "settings_fields", "setting_types", "config",
          "status", "tickets")
"""The shared vocabulary: any module may import these (they import only each other)."""
LAYERS = {
    "engine": 1, "web": 1,
    "room": 2,
    "door": 3,
    "capture": 4, "visitor": 4,
    "gate": 5, "proxy": 5,
    "ops": 6,
    "tools": 7, "middleware": 7, "app": 7, "cli": 7, "__init__": 7,
}
"""Each part's layer: a module imports only from lower layers, its own package, or
the shared modules. Parts of the top layer (the entry points) may import each other."""
ENTRY_LAYER = 7
MAX_MODULE_LINES = 350
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _imports(path: Path) -> Iterator[str]:
    """Every waitingroom module ``path`` imports, anywhere in it (a function's or a
    type checker's import counts too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in MODULES else node.module for n in names]
        else:
            continue
        yield from (n for n in names if n.split(".")[0] == "waitingroom")


def _part(module: str) -> str:
    """The package or top-level module ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {module: set(_imports(path)) - {module} for module, path in MODULES.items()}


def test_every_part_has_a_layer() -> None:
    assert {_part(m) for m in MODULES} == set(SHARED) | set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down_the_layers(module: str) -> None:
    part = _part(module)
    wrong = []
    for imported in GRAPH[module]:
        target = _part(imported)
        if target == part or target in SHARED:
            continue
        if part in SHARED:
            wrong.append(imported)  # the shared vocabulary stands alone
        elif not (LAYERS[target] < LAYERS[part]
                  or LAYERS[part] == LAYERS[target] == ENTRY_LAYER):
            wrong.append(imported)
    assert not wrong, f"{module} imports upwards or sideways: {sorted(wrong)}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle met in a depth-first walk of ``graph`` (module -> modules it imports)."""
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported):], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycles() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_imports_and_cycles() -> None:
    """The checks above are not vacuous: they see the imports they are about, and a
    cycle however long."""
    assert "waitingroom.engine.keys" in GRAPH["waitingroom.engine.engine"]
    assert "waitingroom.room.room" in GRAPH["waitingroom.gate.gate"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_classes_and_functions_stay_small(module: str) -> None:
    source = MODULES[module].read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{module} is over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        lines = (getattr(node, "end_lineno", 0) or 0) - getattr(node, "lineno", 0) + 1
        if isinstance(node, ast.ClassDef):
            assert lines <= MAX_CLASS_LINES, f"{module}.{node.name} has {lines} lines"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert lines <= MAX_FUNCTION_LINES, f"{module}.{node.name} has {lines} lines"


@pytest.mark.parametrize("script", sorted(p.name for p in (PACKAGE / "engine/lua").glob("*.lua")))
def test_lua_scripts_stay_small(script: str) -> None:
    lines = (PACKAGE / "engine/lua" / script).read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{script} is over {MAX_MODULE_LINES} lines"


@pytest.mark.parametrize("package", sorted(p for p in LAYERS if (PACKAGE / p).is_dir()))
def test_every_package_says_what_it_owns_and_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
    assert doc and "May import" in doc, f"waitingroom/{package}/__init__.py"


LOADTESTS = PACKAGE.parent / "loadtests"


@pytest.mark.parametrize("path", sorted(p.name for p in LOADTESTS.glob("*.py")))
def test_the_load_tests_stand_on_their_own(path: str) -> None:
    """``loadtests/`` imports the package and itself, never ``tests/``: a measurement
    does not change when a test helper does."""
    tree = ast.parse((LOADTESTS / path).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module]
    assert not [name for name in imported if name.split(".")[0] == "tests"], path


def test_every_lua_script_is_a_file_in_lua() -> None:
    """Scripts are registered from ``engine/lua/`` by one loader, never written inline."""
    inline = [name for name, path in MODULES.items()
              if name != "waitingroom.engine.keys" and ".register_script(" in path.read_text()]
    assert inline == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _part(m) == "room"))
def test_the_room_knows_no_http(module: str) -> None:
    """A room is places, sessions and its config: the request, its cookies and the
    answer's headers are the door's (``waitingroom/door/``)."""
    tree = ast.parse(MODULES[module].read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module]
    http = [name for name in imported if name.split(".")[0] in ("starlette", "httptools")
            or name in ("waitingroom.web.request", "waitingroom.web.asgi",
                        "waitingroom.web.answers")]
    assert not http, f"{module} imports {http}"


def test_the_public_api_is_what_it_says_and_loads_only_when_asked() -> None:
    """Every name in ``waitingroom.__all__`` is found where ``_HOMES`` says (the lazy
    loader and the list type checkers read name the same exports), and importing the
    package (as the admin command does) loads no middleware."""
    code = ("import sys, importlib, waitingroom\n"
            "assert 'waitingroom.middleware' not in sys.modules, 'loaded eagerly'\n"
            "assert sorted(waitingroom.__all__) == sorted(waitingroom._HOMES)\n"
            "for name, home in waitingroom._HOMES.items():\n"
            "    home = importlib.import_module(home)\n"
            "    assert getattr(waitingroom, name) is getattr(home, name), name\n"
            "try:\n    waitingroom.WaitingRoomMiddlewar\nexcept AttributeError:\n    pass\n"
            "else:\n    raise AssertionError('a misspelt name was found')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
