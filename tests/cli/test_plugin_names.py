"""``atomiton plugin new NAME``: whatever NAME it takes, the package it writes imports; the
names it cannot make a package of are refused saying why."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]

PROBE = """
import importlib, json, sys
from atomiton_core import create_conductor
package, prefix = sys.argv[1], sys.argv[2]
module = importlib.import_module(package + ".plugin")
conductor = create_conductor("memory://plugin-names", plugins=[module], autoload=False,
                             record_runs=False)
print(json.dumps({"file": module.__file__, "types": sorted(conductor.catalogue)}))
"""


@pytest.mark.parametrize(
    ("name", "package"),
    [
        ("class", "class_"),  # a keyword
        ("my-nodes", "my_nodes"),
        ("json", "json_"),  # would hide the standard library's json
        ("atomiton-core", "atomiton_core_"),  # would hide Atomiton itself
        ("Import.Tools", "import_tools"),
        ("fast2", "fast2"),
    ],
)
def test_every_generated_package_imports_and_registers_its_node(
    cli: Cli, home: Path, clean_env: dict[str, str], name: str, package: str
) -> None:
    done = cli("plugin", "new", name, "--directory", "pkg", "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["package"] == package
    if package != name.lower().replace("-", "_").replace(".", "_"):
        assert f"the import name is {package!r}" in done.stderr  # said, not silently changed
    root = home / "pkg"
    assert f"src/{package}/plugin.py" in made["files"]
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == name
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [f"src/{package}"]
    assert list(meta["project"]["entry-points"]["atomiton"].values()) == [f"{package}.plugin"]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, package, made["prefix"]],
        capture_output=True,
        text=True,
        cwd=home,
        env={**clean_env, "PYTHONPATH": str(root / "src")},
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    loaded = json.loads(probe.stdout)
    assert Path(loaded["file"]).is_relative_to(root / "src" / package)  # this one, not stdlib's
    assert f"{made['prefix']}.scale" in loaded["types"]
    tests_py = (root / "tests" / "test_nodes.py").read_text()
    compile(tests_py, "test_nodes.py", "exec")  # `from class import plugin` would not


def test_names_it_cannot_use_are_refused_saying_why(cli: Cli, home: Path) -> None:
    digit = cli("plugin", "new", "2fast", "--directory", "a")
    assert digit.returncode == 2
    assert "cannot start with a digit" in digit.stderr
    for package, why in [
        ("class", "is a Python keyword"),
        ("json", "standard library"),
        ("my-nodes", "not an import name"),
        ("2fast", "not an import name"),
    ]:
        done = cli("plugin", "new", "ok-nodes", "--package", package, "--directory", "b")
        assert done.returncode == 2, done.stderr
        assert why in done.stderr and "--package" in done.stderr
    assert not (home / "a").exists() and not (home / "b").exists()


def test_package_names_the_import_name(cli: Cli, home: Path) -> None:
    done = cli("plugin", "new", "fast-nodes", "--package", "quick", "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["package"] == "quick" and made["notes"] == []
    assert (home / "fast-nodes" / "src" / "quick" / "plugin.py").is_file()
    plain = cli("plugin", "new", "other-nodes")
    assert "created other-nodes in other-nodes" in plain.stdout
    assert "import name other_nodes" in plain.stdout


def test_the_package_carries_its_licence(cli: Cli, home: Path) -> None:
    """The scaffold's pyproject says MIT and ships the LICENSE it writes, with a hatchling
    that puts both in the wheel's metadata."""
    done = cli("plugin", "new", "licensed-nodes")
    assert done.returncode == 0, done.stderr
    root = home / "licensed-nodes"
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "hatchling>=1.27" in project["build-system"]["requires"]
    licence = (root / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "The licensed-nodes authors" in licence
    assert "{{" not in licence
