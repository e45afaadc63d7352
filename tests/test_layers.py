"""The package's layers point down only: a lower layer never imports a higher one.

Every ``import`` of the package's own modules is read from the source (those inside functions
and under ``if TYPE_CHECKING:`` included), so a cycle cannot be hidden in a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import atomiton_core

PACKAGE = Path(atomiton_core.__file__).parent

#: Bottom to top. A module may import its own layer or a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("version", "errors"),
    ("wire", "codec", "files", "security", "secrets"),
    # schemas: the JSON Schemas generated from the flow models
    ("flow", "schemas"),
    ("nodes",),
    # the built-in nodes are a plugin like any other: they implement the hooks
    ("hookspecs", "catalogue", "nodes.builtin"),
    ("results", "signals"),
    ("storage",),
    ("conductor",),
    ("server", "cli", "testing"),
    ("__init__", "__main__"),
]


def layer_of(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "atomiton_core", module
    rest = parts[1:] or ["__init__"]
    for depth in range(len(rest), 0, -1):  # the longest entry that names it wins
        prefix = ".".join(rest[:depth])
        for level, names in enumerate(LAYERS):
            if prefix in names:
                return level
    raise AssertionError(f"module {module} is in no layer; add it to LAYERS in {__file__}")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the package in a file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if target == "atomiton_core":  # `from atomiton_core import signals`
                found += [(node.lineno, f"atomiton_core.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "atomiton_core"]


def test_every_import_points_down() -> None:
    upward: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        for line, target in imports(path, module):
            if target == "atomiton_core":
                continue  # the names it brings are listed one by one
            try:
                theirs = layer_of(target)
            except AssertionError:  # a name of the facade (``__version__``): the top layer
                theirs = len(LAYERS) - 1
            if theirs > own:
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} ({LAYERS[own]}) imports "
                    f"{target} ({LAYERS[theirs]})"
                )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "atomiton_core" / "flow" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from atomiton_core.conductor import run\n")
    found = imports(source, "atomiton_core.flow.x")
    assert found == [(2, "atomiton_core.conductor")]
    assert layer_of("atomiton_core.conductor") > layer_of("atomiton_core.flow.x")


#: Modules allowed to import the package inside a function, and why.
LAZY = {
    "atomiton_core/cli/serve.py": "the server extra (starlette, uvicorn) loads only for `serve`",
    "atomiton_core/cli/main.py": "the engine loads only when a command runs: `atomiton --help` "
    "imports click alone (tests/test_startup.py)",
    "atomiton_core/cli/runs.py": "the same as cli/main.py: storage and engine load per command",
    "atomiton_core/cli/migrate.py": "the same as cli/main.py: the engine loads only when the "
    "command runs",
    "atomiton_core/cli/triggers.py": "the same as cli/main.py: the client and storage load only "
    "when the command runs",
    "atomiton_core/testing/pytest_plugin.py": "pytest loads the plugin in every session: kept light",
    "atomiton_core/conductor/conductor.py": "the process pool (multiprocessing, 17 ms) loads only "
    "when an isolated node runs",
}


def test_no_import_of_the_package_hides_inside_a_function() -> None:
    hidden: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE.parent))
        if rel in LAZY:
            continue
        tree = ast.parse(path.read_text(), rel)
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                if any(n.split(".")[0] == "atomiton_core" for n in names):
                    hidden.append(f"{rel}:{node.lineno} in {fn.name}()")
    assert not hidden, "imports of the package inside functions:\n" + "\n".join(hidden)
