"""``atomiton plugin new``: what it writes and what it refuses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from atomiton_core.cli import main
from atomiton_core.cli.plugin import default_prefix


def test_new_writes_a_publishable_package(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    result = CliRunner().invoke(
        main, ["plugin", "new", "atomiton-nodes-acme", "--directory", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "created atomiton-nodes-acme" in result.output
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "src/atomiton_nodes_acme/__init__.py",
        "src/atomiton_nodes_acme/plugin.py",
        "src/atomiton_nodes_acme/py.typed",
        "tests/test_nodes.py",
    ]
    meta = tomllib.loads((target / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "atomiton-nodes-acme"
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    assert meta["project"]["entry-points"]["atomiton"] == {"acme": "atomiton_nodes_acme.plugin"}
    plugin_py = (target / "src/atomiton_nodes_acme/plugin.py").read_text()
    assert '"acme.scale"' in plugin_py and "{{" not in plugin_py
    tests_py = (target / "tests/test_nodes.py").read_text()
    assert "NodeContractTests" in tests_py and "run_node" in tests_py
    compile(plugin_py, "plugin.py", "exec")
    compile(tests_py, "test_nodes.py", "exec")


def test_type_prefix_and_default_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plugin", "new", "shop_tools", "--type-prefix", "shop"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "shop_tools/src/shop_tools/plugin.py").read_text()
    assert '"shop.scale"' in text


def test_new_refuses_bad_names_and_non_empty_directories(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["plugin", "new", "9lives", "--directory", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not a valid distribution name" in bad.output
    bad = runner.invoke(
        main, ["plugin", "new", "ok", "--type-prefix", "-x", "--directory", str(tmp_path / "y")]
    )
    assert bad.exit_code == 2 and "cannot start a node type id" in bad.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    busy = runner.invoke(main, ["plugin", "new", "ok", "--directory", str(tmp_path / "full")])
    assert busy.exit_code == 2 and "not empty" in busy.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_default_prefix() -> None:
    assert default_prefix("atomiton-nodes-acme") == "acme"
    assert default_prefix("acme-nodes") == "acme"
    assert default_prefix("Acme_Plugin") == "acme"
    assert default_prefix("atomiton-nodes") == "nodes"
    assert default_prefix("tools") == "tools"
