"""The ``atomiton`` command in a clean place: its own working directory, user configuration
and data folders, and environment (no ``ATOMITON_*`` variable of the one running the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]

#: ``cli(*args, input=None, env={...})``: the finished process.
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The working directory of the command; ``home / "xdg"`` is $XDG_CONFIG_HOME,
    ``home / "data"`` $XDG_DATA_HOME (where the default storage is)."""
    (tmp_path / "xdg").mkdir()
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.fixture
def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOMITON_")}
    env["XDG_CONFIG_HOME"] = str(home / "xdg")
    env["XDG_DATA_HOME"] = str(home / "data")
    return env


@pytest.fixture
def cli(home: Path, clean_env: dict[str, str]) -> Cli:
    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ATOMITON, *args],
            capture_output=True,
            text=True,
            cwd=home,
            input=input,
            env={**clean_env, **(env or {})},
            timeout=120,
        )

    return run
