"""Start-up stays light: what ``import atomiton_core``, ``atomiton --help`` and a plugin's
entry point module load, read from ``sys.modules`` in a fresh interpreter (not timed, so not
flaky); and a tiny run of ``benchmarks/startup.py``, which measures the time.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import atomiton_core

ROOT = Path(__file__).resolve().parent.parent

#: Libraries the engine uses and ``import atomiton_core`` must not load (PEP 562 exports).
ENGINE_LIBRARIES = (
    "asyncio",
    "blinker",
    "click",
    "fsspec",
    "httpx",
    "importlib.metadata",
    "jinja2",
    "pluggy",
    "pydantic",
    "rich",
    "ruamel",
    "yaml",
)

#: ``atomiton --help`` needs click, and none of the others.
CLI_LIBRARIES = tuple(m for m in ENGINE_LIBRARIES if m != "click")

#: What node types need when they run, and registering or listing them must not load.
NODE_LIBRARIES = ("httpx", "PIL", "openpyxl", "python_calamine")

#: The modules the ``atomiton`` entry points of this repository name.
PLUGIN_MODULES = (
    "atomiton_core.nodes.builtin",
    "atomiton_nodes_io.plugin",
    "atomiton_nodes_image.plugin",
    "atomiton_nodes_shell.plugin",
)


def loaded_after(code: str, *candidates: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the ``candidates`` (and their submodules) it
    left in ``sys.modules``, and any module of atomiton_core when none are given."""
    probe = (
        "import json, sys\n"
        f"{code}\n"
        f"wanted = {list(candidates)!r}\n"
        "found = sorted(m for m in sys.modules if any(m == w or m.startswith(w + '.') "
        "for w in wanted))\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_import_loads_no_engine_module_and_no_library() -> None:
    assert loaded_after("import atomiton_core", *ENGINE_LIBRARIES) == []
    inner = loaded_after("import atomiton_core", "atomiton_core")
    assert inner == ["atomiton_core"]  # the package alone: no submodule yet


def test_a_public_name_loads_only_what_it_needs() -> None:
    # the exceptions need pydantic (their reports are models) but neither the engine nor storage
    loaded = loaded_after(
        "from atomiton_core import FlowLoadError", "atomiton_core.conductor", "fsspec", "pluggy"
    )
    assert loaded == []


def test_every_public_name_is_the_object_of_its_module() -> None:
    """``_ORIGIN`` (what ``__getattr__`` reads) names, for each name of ``__all__``, the module
    the imports for type checkers name: the two lists cannot drift apart."""
    tree = ast.parse(Path(atomiton_core.__file__).read_text())
    checked: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name):
            assert stmt.test.id == "TYPE_CHECKING"
            for imp in stmt.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                for alias in imp.names:
                    if imp.module == "atomiton_core":  # a module: `from atomiton_core import wire`
                        checked[alias.name] = f"atomiton_core.{alias.name}"
                    else:
                        checked[alias.name] = imp.module
            break
    origin = atomiton_core._ORIGIN
    assert checked == origin
    assert set(origin) == set(atomiton_core.__all__)
    for name, module in origin.items():
        target = importlib.import_module(module)
        expected = target if module == f"atomiton_core.{name}" else getattr(target, name)
        assert getattr(atomiton_core, name) is expected, name


def test_star_import_and_submodules_work_as_before() -> None:
    code = (
        "from atomiton_core import *\n"
        "import atomiton_core\n"
        "assert Flow is atomiton_core.flow.models.Flow\n"  # a submodule as an attribute
        "assert create_conductor is atomiton_core.conductor.conductor.create_conductor\n"
        "assert codec.__name__ == 'atomiton_core.codec'\n"
        "try:\n"
        "    atomiton_core.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('no_such_name')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["run", "--help"], ["runs", "list", "--help"], ["serve", "--help"], ["plugin"]],
    ids=" ".join,
)
def test_cli_help_loads_no_engine(argv: list[str]) -> None:
    code = (
        f"sys.argv = ['atomiton', *{argv!r}]\n"
        "from atomiton_core.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    engine = (
        "atomiton_core.conductor",
        "atomiton_core.flow",
        "atomiton_core.storage",
        "atomiton_core.nodes",
        "atomiton_core.catalogue",
        "atomiton_core.errors",
        "atomiton_core.server",
        "starlette",
        "uvicorn",
    )
    assert loaded_after(code, *CLI_LIBRARIES, *engine) == []


@pytest.mark.parametrize("module", PLUGIN_MODULES)
def test_plugin_entry_point_loads_no_node_library(module: str) -> None:
    if importlib.util.find_spec(module.partition(".")[0]) is None:
        pytest.skip(f"{module} is not installed")
    assert loaded_after(f"import {module}", *NODE_LIBRARIES) == []


def test_listing_node_types_loads_no_node_library() -> None:
    """What ``atomiton nodes --json`` does: every plugin registered, each type's schema."""
    code = (
        "from atomiton_core import create_conductor, wire\n"
        "c = create_conductor('memory://test-startup', record_runs=False)\n"
        "dumped = [wire.dump(c.catalogue[t]) for t in sorted(c.catalogue)]\n"
        "assert dumped\n"
    )
    assert loaded_after(code, *NODE_LIBRARIES) == []


def test_the_benchmark_runs() -> None:
    if not (ROOT / "benchmarks" / "startup.py").exists():  # pragma: no cover - no repo
        pytest.skip("benchmarks/ is not beside the tests")
    sys.path.insert(0, str(ROOT))
    try:
        startup = importlib.import_module("benchmarks.startup")
    finally:
        sys.path.remove(str(ROOT))
    res = startup.measure(repeats=1)
    assert [r["command"] for r in res["rows"]] == [
        "python -c pass",
        "import atomiton_core",
        "atomiton --help",
    ]
    for row in res["rows"]:
        assert row["cpu_ms"]["min"] <= row["cpu_ms"]["median"] <= row["cpu_ms"]["max"]
        assert row["wall_ms"]["median"] > 0
    assert {p["module"] for p in res["plugins"]} >= {"atomiton_core.nodes.builtin"}
    assert all(p["loaded"] == [] for p in res["plugins"]), res["plugins"]
    table = startup.markdown(res)
    assert "| `atomiton --help` |" in table and "node libraries loaded" in table
