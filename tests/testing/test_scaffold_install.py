"""End to end: scaffold a plugin, pip-install it, run its generated tests, break its node.

The package is installed (editable, with the test environment's hatchling) into a throwaway
virtualenv layered on the test environment (its site-packages added through a ``.pth``), so
the test environment itself never sees it, even while the test runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

NAME = "atomiton-nodes-kitdemo"
PACKAGE = "atomiton_nodes_kitdemo"
RETURN = 'return {"values": scaled, "total": float(sum(scaled))}'
COMPUTE = "    scaled = [v * params.factor for v in values]\n"

BREAKAGES = {
    "declared-outputs": (
        RETURN,
        'return {"values": scaled, "total": float(sum(scaled)), "count": len(scaled)}',
    ),
    "atomiton-errors": (
        COMPUTE,
        '    if len(values) > 2:\n        raise KeyError("values")\n' + COMPUTE,
    ),
    "inputs-not-mutated": (COMPUTE, COMPUTE + "    values.append(params.factor)\n"),
}
TEST_OF_RULE = {
    "declared-outputs": "test_declared_outputs",
    "atomiton-errors": "test_errors_are_atomiton_errors",
    "inputs-not-mutated": "test_inputs_not_mutated",
}


def _run(
    *args: str | Path, cwd: Path | None = None, pycache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ATOMITON_"))}
    env.pop("PYTHONPATH", None)
    if pycache is not None:  # let pytest cache its rewritten modules, outside the repository
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the scaffolded project, the python of the virtualenv it is installed in)."""
    root = tmp_path_factory.mktemp("scaffold")
    project = root / NAME
    made = _run(sys.executable, "-m", "atomiton_core.cli", "plugin", "new", NAME,
                "--directory", project)  # fmt: skip
    assert made.returncode == 0, made.stderr
    venv = root / "venv"
    created = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert created.returncode == 0, created.stderr
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    child_site = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    parent_site = sysconfig.get_path("purelib")
    Path(child_site.stdout.strip(), "_atomiton_test_env.pth").write_text(
        f"import site; site.addsitedir({parent_site!r})\n"
    )
    installed = _run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                     "--disable-pip-version-check", "-q", "-e", project)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield project, python
    _run(python, "-m", "pip", "uninstall", "-y", "-q", NAME)


def _pytest(project: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                "--no-header", "-rf", cwd=project, pycache=project.parent / "pycache")  # fmt: skip


@pytest.mark.slow
def test_scaffolded_plugin_installs_lists_and_passes_then_fails_per_broken_rule(
    project: tuple[Path, Path],
) -> None:
    path, python = project
    listed = _run(python, "-m", "atomiton_core.cli", "nodes")
    assert listed.returncode == 0, listed.stderr
    assert "kitdemo.scale" in listed.stdout and NAME in listed.stdout
    # the test environment itself does not see the package
    assert _run(sys.executable, "-c", f"import {PACKAGE}").returncode != 0

    passed = _pytest(path, python)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "8 passed" in passed.stdout

    source = path / "src" / PACKAGE / "plugin.py"
    original = source.read_text()
    try:
        for rule, (old, new) in BREAKAGES.items():
            assert old in original
            source.write_text(original.replace(old, new, 1))
            broken = _pytest(path, python)
            out = broken.stdout
            assert broken.returncode == 1, out + broken.stderr
            assert f"FAILED tests/test_nodes.py::TestContract::{TEST_OF_RULE[rule]}" in out, out
            assert f"node type 'kitdemo.scale' broke the rule {rule!r}" in out, out
            for other, test in TEST_OF_RULE.items():
                if other != rule:
                    assert f"TestContract::{test}" not in out, (rule, out)
            source.write_text(original)
    finally:
        source.write_text(original)
    assert _pytest(path, python).returncode == 0
