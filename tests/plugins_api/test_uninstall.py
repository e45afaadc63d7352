"""Uninstalling a node package removes its nodes; flows needing them fail validation by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]

FLOW = """
id: needs-shell
name: Needs shell
nodes:
  - {id: hello, type: shell-command, parameters: {program: echo, args: [hi]}}
"""


def _nodes() -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "atomiton_core.cli", "nodes", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {t["id"]: t["distribution"] for t in json.loads(out.stdout)["nodeTypes"]}


@pytest.mark.slow
def test_uninstall_removes_nodes_and_validation_names_the_package(tmp_path: Path) -> None:
    installed = subprocess.run([*PIP, "show", "atomiton-nodes-shell"], capture_output=True)
    if installed.returncode != 0:
        pytest.skip("atomiton-nodes-shell is not installed in this environment")
    assert _nodes()["shell-command"] == "atomiton-nodes-shell"
    flow = tmp_path / "needs-shell.flow.yaml"
    flow.write_text(FLOW)
    subprocess.run([*PIP, "uninstall", "-y", "atomiton-nodes-shell"], check=True)
    try:
        assert "shell-command" not in _nodes()
        done = subprocess.run(
            [sys.executable, "-m", "atomiton_core.cli", "validate", str(flow), "--json"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 3
        problem = json.loads(done.stdout)["problems"][0]
        assert problem["code"] == "NODE_TYPE_NOT_FOUND" and problem["nodeId"] == "hello"
        assert "pip install atomiton-nodes-shell" in problem["hint"]
    finally:
        subprocess.run(
            [
                *PIP,
                "install",
                "--no-deps",
                "--no-build-isolation",
                "-e",
                str(ROOT / "plugins" / "atomiton-nodes-shell"),
            ],
            check=True,
        )
    assert _nodes()["shell-command"] == "atomiton-nodes-shell"
