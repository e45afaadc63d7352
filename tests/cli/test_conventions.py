"""What a user expects of a command line tool: ``-`` for standard input, exit codes that tell
a usage error from an invalid flow, ``--json`` everywhere, ``-v``/``-q``, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]

GOOD = """\
# read from standard input
id: piped
name: Piped
variables: {who: {type: string, defaultValue: world}}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}, keepOnlySet: true}
"""
INVALID = "id: piped-bad\nname: Bad\nnodes:\n  - {id: a, type: no-such-type}\n"
FAILING = (
    "id: failing\nname: F\nnodes:\n  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}\n"
    "  - {id: b, type: transform, parameters: {operation: map, expression: 'item.x.y.z'}}\n"
    "edges:\n  - {source: a, target: b}\n"
)


def test_run_and_validate_read_the_flow_from_standard_input(cli: Cli) -> None:
    ran = cli("run", "-", "--json", "-i", "who=Ada", "--storage", "s", input=GOOD)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outputs"] == {"greet": {"output": {"message": "Hello Ada"}}}
    valid = cli("validate", "-", input=GOOD)
    assert valid.returncode == 0 and "'piped' is valid" in valid.stdout
    invalid = cli("validate", "-", "--json", input=INVALID)
    assert invalid.returncode == 3
    assert json.loads(invalid.stdout)["problems"][0]["code"] == "NODE_TYPE_NOT_FOUND"
    unreadable = cli("run", "-", "--storage", "s", input="id: [unclosed\n")
    assert unreadable.returncode == 3 and "<stdin>" in unreadable.stderr
    not_text = subprocess.run(
        [sys.executable, "-m", "atomiton_core.cli", "validate", "-"],
        input=b"\xff\xfe\x00",
        capture_output=True,
        timeout=60,
    )
    assert not_text.returncode == 3 and b"<stdin>: not UTF-8 text" in not_text.stderr
    pins = cli("run", "-", "greet", "--pin-from", "x", "--storage", "s", input=GOOD)
    assert pins.returncode == 2 and "not standard input" in pins.stderr


def test_exit_codes_tell_usage_from_invalid_from_failed(cli: Cli, home: Path) -> None:
    (home / "bad.flow.yaml").write_text(INVALID)
    (home / "failing.flow.yaml").write_text(FAILING)
    assert cli("run", "--no-such-option", "x").returncode == 2
    assert cli("run").returncode == 2  # FLOW missing
    assert cli("run", "-", "--no-cache", "--refresh-cache", input=GOOD).returncode == 2
    assert cli("-v", "-q", "nodes").returncode == 2
    assert cli("run", "bad.flow.yaml", "--storage", "s").returncode == 3
    assert cli("validate", "bad.flow.yaml").returncode == 3
    assert cli("run", "missing.flow.yaml", "--storage", "s").returncode == 3
    assert cli("run", "failing.flow.yaml", "--storage", "s").returncode == 1
    assert cli("flows", "show", "nope", "--storage", "s").returncode == 1
    shown = cli("--help")
    assert shown.returncode == 0
    for line in ("Exit codes:", "2  usage error", "3  the flow is invalid"):
        assert line in shown.stdout


def test_run_json_says_invalid(cli: Cli, home: Path) -> None:
    done = cli("run", "-", "--json", "--storage", "s", input=INVALID)
    assert done.returncode == 3
    body = json.loads(done.stdout)
    assert body["status"] == "invalid" and body["error"]["code"] == "VALIDATION_FAILED"


def test_flows_show_save_delete_speak_json(cli: Cli, home: Path) -> None:
    saved = cli("flows", "save", "-", "--json", "--storage", "s", input=GOOD)
    assert saved.returncode == 0, saved.stderr
    body = json.loads(saved.stdout)
    assert body["id"] == "piped" and body["report"]["valid"] is True
    assert body["location"].endswith("piped.flow.yaml")
    shown = cli("flows", "show", "piped", "--json", "--storage", "s")
    data = json.loads(shown.stdout)
    assert data["id"] == "piped" and data["nodes"][0]["id"] == "greet"
    yaml = cli("flows", "show", "piped", "--storage", "s")
    assert yaml.stdout.startswith("# read from standard input")  # comments kept
    deleted = cli("flows", "delete", "piped", "--json", "--storage", "s")
    assert json.loads(deleted.stdout) == {"id": "piped", "deleted": True}
    again = cli("flows", "delete", "piped", "--json", "--storage", "s")
    assert again.returncode == 1
    refused = json.loads(again.stdout)
    assert refused["deleted"] is False and refused["error"]["code"] == "FLOW_NOT_FOUND"
    missing = json.loads(cli("flows", "show", "piped", "--json", "--storage", "s").stdout)
    assert missing["error"]["code"] == "FLOW_NOT_FOUND"
    invalid = cli("flows", "save", "-", "--json", "--storage", "s", input=INVALID)
    assert invalid.returncode == 3
    refused = json.loads(invalid.stdout)
    assert refused["error"]["code"] == "VALIDATION_FAILED"
    assert refused["report"]["problems"][0]["code"] == "NODE_TYPE_NOT_FOUND"


def test_verbose_and_quiet(cli: Cli, home: Path) -> None:
    (home / "atomiton.toml").write_text('storage = "st"\n')
    plain = cli("run", "-", input=GOOD)
    assert "INFO" not in plain.stderr and "greet [edit-fields] completed" in plain.stderr
    info = cli("-v", "run", "-", input=GOOD)
    assert f"INFO atomiton.cli: configuration read from {home / 'atomiton.toml'}" in info.stderr
    assert f"INFO atomiton.cli: storage: {home / 'st'}" in info.stderr
    assert "DEBUG" not in info.stderr
    debug = cli("-vv", "run", "-", input=GOOD)
    assert "DEBUG atomiton.cli: configuration: storage = " in debug.stderr
    assert "node types: " in debug.stderr
    quiet = cli("-q", "run", "-", input=GOOD)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "completed" in quiet.stdout


def test_shell_completion_as_documented(clean_env: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "atomiton"
    if not script.exists():
        pytest.skip("the atomiton console script is not installed beside this python")
    source = subprocess.run(
        [str(script)],
        env={**clean_env, "_ATOMITON_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert source.returncode == 0 and "_atomiton_completion" in source.stdout
    words = subprocess.run(
        [str(script)],
        env={
            **clean_env,
            "_ATOMITON_COMPLETE": "bash_complete",
            "COMP_WORDS": "atomiton fl",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "plain,flows" in words.stdout.split()
    for shell in ("zsh", "fish"):
        env = {**clean_env, "_ATOMITON_COMPLETE": f"{shell}_source"}
        done = subprocess.run([str(script)], env=env, capture_output=True, text=True)
        assert done.returncode == 0 and "atomiton" in done.stdout, shell
    assert os.access(script, os.X_OK)
