"""The configuration file (atomiton_core/cli/config.py): a setting comes from the flag, else
the environment variable, else ./atomiton.toml, else $XDG_CONFIG_HOME/atomiton/config.toml,
else the default; a broken file is a usage error naming the file and the key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from atomiton_core.cli import main

Cli = Callable[..., subprocess.CompletedProcess[str]]

FLOW = (
    "id: conf\nname: Conf\nnodes:\n  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}\n"
)


@pytest.fixture
def flow_file(home: Path) -> Path:
    (home / "conf.flow.yaml").write_text(FLOW)
    return home / "conf.flow.yaml"


def saved_to(
    cli: Cli, *args: str, env: dict[str, str] | None = None, before: tuple[str, ...] = ()
) -> Path:
    """The folder ``flows save`` stored the flow in (its storage); ``before``: the group's
    options."""
    done = cli(*before, "flows", "save", "conf.flow.yaml", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["location"]).parent.parent


def user_config(home: Path, text: str) -> Path:
    folder = home / "xdg" / "atomiton"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(text)
    return folder


def test_storage_flag_over_environment_over_files_over_default(
    cli: Cli, home: Path, flow_file: Path
) -> None:
    assert saved_to(cli) == home / "data" / "atomiton"  # the default: the user data dir
    user = user_config(home, 'storage = "user-store"\n')
    assert saved_to(cli) == user / "user-store"  # relative to the user file's folder
    (home / "atomiton.toml").write_text('storage = "project-store"\n')
    assert saved_to(cli) == home / "project-store"
    env = {"ATOMITON_STORAGE": str(home / "env-store")}
    assert saved_to(cli, env=env) == home / "env-store"
    assert saved_to(cli, "--storage", str(home / "flag-store"), env=env) == home / "flag-store"
    assert saved_to(cli, env={"ATOMITON_STORAGE": ""}) == home / "project-store"  # empty: unset


def test_the_project_file_wins_key_by_key_and_config_names_one_file(
    cli: Cli, home: Path, flow_file: Path
) -> None:
    user_config(home, 'storage = "user-store"\nexecutor = "nonsense"\n')
    (home / "atomiton.toml").write_text('storage = "project-store"\n')
    ran = cli("run", "conf.flow.yaml")  # the user file's executor, the project's storage
    assert ran.returncode == 1 and "unknown executor 'nonsense'" in ran.stderr
    (home / "other.toml").write_text('storage = "other-store"\n')
    assert saved_to(cli, before=("--config", "other.toml")) == home / "other-store"
    env = {"ATOMITON_CONFIG": str(home / "other.toml")}
    assert saved_to(cli, env=env) == home / "other-store"
    assert cli("--config", "other.toml", "run", "conf.flow.yaml").returncode == 0  # no user file


def test_executor_flag_over_environment_over_file(cli: Cli, home: Path, flow_file: Path) -> None:
    (home / "atomiton.toml").write_text('executor = "from-file"\n')
    from_file = cli("run", "conf.flow.yaml", "--storage", "s")
    assert from_file.returncode == 1 and "unknown executor 'from-file'" in from_file.stderr
    env = {"ATOMITON_EXECUTOR": "from-env"}
    from_env = cli("run", "conf.flow.yaml", "--storage", "s", env=env)
    assert "unknown executor 'from-env'" in from_env.stderr
    flag = cli("run", "conf.flow.yaml", "--storage", "s", "--executor", "local", env=env)
    assert flag.returncode == 0, flag.stderr
    assert cli("validate", "conf.flow.yaml").returncode == 0  # only run starts an executor


def test_serve_takes_the_executor_from_flag_environment_and_file(cli: Cli, home: Path) -> None:
    """Refused before it listens: the spec reached the conductor ``serve`` makes."""
    (home / "atomiton.toml").write_text('executor = "from-file"\n')
    from_file = cli("serve", "--port", "0", "--storage", "s")
    assert from_file.returncode == 1 and "unknown executor 'from-file'" in from_file.stderr
    from_env = cli("serve", "--port", "0", "--storage", "s", env={"ATOMITON_EXECUTOR": "x-env"})
    assert "unknown executor 'x-env'" in from_env.stderr
    flag = cli("serve", "--port", "0", "--storage", "s", "--executor", "x-flag")
    assert "unknown executor 'x-flag'" in flag.stderr


def served_token(cli_env: dict[str, str], home: Path, *args: str) -> str:
    """The token ``atomiton serve`` prints, then stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "atomiton_core.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=home,
        env={**cli_env, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if not line or (m := re.match(r"token: (\S+)", line)):
                break
        assert m, "".join(seen)
        return m.group(1)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_serve_token_flag_over_environment_over_file(home: Path, clean_env: dict[str, str]) -> None:
    pytest.importorskip("uvicorn")
    (home / "atomiton.toml").write_text('token = "file-token"\nstorage = "s"\n')
    assert served_token(clean_env, home) == "file-token"
    env = {**clean_env, "ATOMITON_TOKEN": "env-token"}
    assert served_token(env, home) == "env-token"
    assert served_token(env, home, "--token", "flag-token") == "flag-token"


def distributions(cli: Cli, env: dict[str, str] | None = None) -> set[str]:
    done = cli("nodes", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return {t["distribution"] for t in json.loads(done.stdout)["nodeTypes"]}


def test_plugin_switches_from_the_file_and_the_environment_over_them(cli: Cli, home: Path) -> None:
    everything = distributions(cli)
    others = everything - {"atomiton-core"}
    if not others:
        pytest.skip("no plugin besides the core is installed")
    (home / "atomiton.toml").write_text("disable_plugin_autoload = true\n")
    assert distributions(cli) == {"atomiton-core"}
    one = sorted(others)[0]
    (home / "atomiton.toml").write_text(f'disable_plugin_autoload = true\nplugins = ["{one}"]\n')
    assert distributions(cli) == {"atomiton-core", one}
    assert distributions(cli, env={"ATOMITON_PLUGINS": ""}) == {"atomiton-core"}
    assert distributions(cli, env={"ATOMITON_DISABLE_PLUGIN_AUTOLOAD": "0"}) == {
        "atomiton-core",
        one,
    }  # the allow-list, from the file, still holds
    (home / "atomiton.toml").write_text(f'plugins = "{one}, atomiton-core"\n')  # as the variable
    assert distributions(cli) == {"atomiton-core", one}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("storge = 'x'\n", "unknown key 'storge'"),
        ("storge = 'x'\n", "did you mean 'storage'?"),
        ("storage = 3\n", "'storage' must be a string, got 3"),
        ("disable_plugin_autoload = 'yes'\n", "must be true or false"),
        ("plugins = [1]\n", "'plugins' must be a list of names"),
        ("storage = \n", "not valid TOML"),
    ],
)
def test_a_broken_file_is_a_usage_error_naming_it(
    cli: Cli, home: Path, text: str, expected: str
) -> None:
    (home / "atomiton.toml").write_text(text)
    done = cli("flows", "list")
    assert done.returncode == 2
    assert str(home / "atomiton.toml") in done.stderr and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert cli("--help").returncode == 0  # help is still there to read


def test_a_missing_config_file_named_is_a_usage_error(cli: Cli) -> None:
    done = cli("--config", "nope.toml", "flows", "list")
    assert done.returncode == 2 and "nope.toml: no such configuration file" in done.stderr


def test_a_command_run_in_process_leaves_the_environment_as_it_was(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the file sets in the environment for the plugin switches is undone at the end,
    and the log handler the command added is removed (click's CliRunner, one process)."""
    import logging

    monkeypatch.chdir(home)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    monkeypatch.delenv("ATOMITON_PLUGINS", raising=False)
    monkeypatch.delenv("ATOMITON_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    (home / "atomiton.toml").write_text("disable_plugin_autoload = true\nplugins = []\n")
    handlers = list(logging.getLogger("atomiton").handlers)
    result = CliRunner().invoke(main, ["-vv", "nodes", "--json"])
    assert result.exit_code == 0, result.output
    assert {t["distribution"] for t in json.loads(result.stdout)["nodeTypes"]} == {"atomiton-core"}
    assert "ATOMITON_PLUGINS" not in os.environ
    assert "ATOMITON_DISABLE_PLUGIN_AUTOLOAD" not in os.environ
    assert logging.getLogger("atomiton").handlers == handlers
