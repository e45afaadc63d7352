"""Flows written for the original Atomiton's ``shell-command``: its names, defaults and bounds.

Each test names the original file (Develonaut/atomiton, packages/@atomiton/nodes/src/, at the
commit given) the name or value comes from. Real programs, real runs.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import Conductor, create_conductor, loads_flow

from atomiton_nodes_shell.command import ShellCommandParams

PY = sys.executable


@pytest.fixture
def conductor() -> Conductor:
    return create_conductor(f"memory://t-{uuid.uuid4().hex}", record_runs=False)


def flow(**parameters: Any) -> Any:
    node = {"id": "sh", "type": "shell-command", "parameters": parameters}
    return loads_flow(json.dumps({"id": "t", "name": "t", "nodes": [node]}))


def problems(conductor: Conductor, **parameters: Any) -> list[Any]:
    return list(conductor.validate(flow(**parameters)).errors)


def test_program_args_stdin_capture_output(conductor: Conductor) -> None:
    """The latest original's names are ours: ``program``, ``args`` (also a JSON array in a
    string), ``stdin``, ``captureOutput`` (schemas/shell-command, the structured version)."""
    result = conductor.run(flow(program="cat", args='["-"]', stdin="hi", captureOutput=True))
    assert result.status == "completed", result.error
    assert result.nodes["sh"].outputs["stdout"] == "hi"


def test_throw_on_error_is_fail_on_non_zero_exit(conductor: Conductor) -> None:
    """``throwOnError`` (schemas/shell-command/index.ts, 46b0171c) is ``failOnNonZeroExit``."""
    result = conductor.run(flow(program="false", throwOnError=False))
    assert result.status == "completed" and result.nodes["sh"].outputs["exitCode"] == 1
    result = conductor.run(flow(program="false", throwOnError=True))
    assert result.status == "failed"


def test_max_buffer_is_max_output_bytes_with_the_originals_bound(conductor: Conductor) -> None:
    """``maxBuffer`` (schemas/shell-command/index.ts, 46b0171c: default 10485760, at most
    104857600) is ``maxOutputBytes``: output beyond it is dropped, ``truncated`` set."""
    assert ShellCommandParams(program="x").max_output_bytes == 10_485_760
    result = conductor.run(flow(program="printf", args=["abcdef"], maxBuffer=3))
    assert result.status == "completed", result.error
    assert result.nodes["sh"].outputs["stdout"] == "abc"
    assert result.nodes["sh"].outputs["output"]["truncated"] is True
    [problem] = problems(conductor, program="true", maxBuffer=104_857_601)
    # reported where the flow wrote it, under the original's name
    assert problem.node_id == "sh" and problem.location == "nodes[0].parameters.maxBuffer"


def test_env_merges_into_environment(conductor: Conductor) -> None:
    """``env`` and ``environment`` (schemas/shell-command/index.ts, 46b0171c): both set
    variables, ``environment`` winning."""
    script = 'printf "%s-%s" "$A" "$B"'
    result = conductor.run(
        flow(program="sh", args=["-c", script], env={"A": "1", "B": "x"}, environment={"B": "2"})
    )
    assert result.status == "completed", result.error
    assert result.nodes["sh"].outputs["stdout"] == "1-2"
    [problem] = problems(conductor, program="true", env={"LD_PRELOAD": "/x.so"})
    assert "LD_PRELOAD" in problem.message


def test_inherit_stdio_is_the_opposite_of_capture_output(conductor: Conductor) -> None:
    """``inheritStdio`` (schemas/shell-command/index.ts, 46b0171c, default false)."""
    assert (
        ShellCommandParams.model_validate({"program": "x", "inheritStdio": True}).capture_output
        is False
    )
    assert (
        ShellCommandParams.model_validate({"program": "x", "inheritStdio": False}).capture_output
        is True
    )
    [problem] = problems(conductor, program="true", inheritStdio=True, captureOutput=True)
    assert problem.node_id == "sh" and "disagree" in problem.message


def test_command_runs_through_its_shell(conductor: Conductor) -> None:
    """The older original's ``command`` is a shell command line, its ``args`` joined after it,
    run by ``shell`` (default bash) (schemas/shell-command/index.ts, 46b0171c;
    executables/shell-command/index.ts, 36eef507: spawn(command, args, {shell: true}))."""
    result = conductor.run(flow(command="echo hello | tr a-z A-Z", shell="sh"))
    assert result.status == "completed", result.error
    assert result.nodes["sh"].outputs["stdout"] == "HELLO\n"
    result = conductor.run(flow(command="echo", args=["a", "b"]))
    assert result.nodes["sh"].outputs["stdout"] == "a b\n"
    assert ShellCommandParams.model_validate({"command": "ls"}).program == "bash"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"command": "echo {{ input }}"}, "cannot hold templates"),
        ({"command": "dir", "shell": "cmd"}, "does not run here"),
        ({"command": "ls", "program": "ls"}, "not both"),
        ({"program": "ls", "shell": "bash"}, "goes with the original's 'command'"),
    ],
)
def test_command_misuse_is_reported(
    conductor: Conductor, parameters: dict[str, Any], message: str
) -> None:
    [problem] = problems(conductor, **parameters)
    assert problem.node_id == "sh" and message in problem.message


def test_the_originals_encodings(conductor: Conductor) -> None:
    """utf8, base64, binary, ascii, hex (schemas/shell-command/index.ts, 46b0171c)."""

    def stdout(encoding: str) -> Any:
        result = conductor.run(flow(program="printf", args=["AB"], encoding=encoding))
        assert result.status == "completed", result.error
        return result.nodes["sh"].outputs["stdout"]

    assert stdout("utf8") == stdout("ascii") == "AB"
    assert stdout("base64") == "QUI="
    assert stdout("hex") == "4142"
    assert stdout("binary") == b"AB"
    [problem] = problems(conductor, program="true", encoding="rot13")
    assert problem.location == "nodes[0].parameters.encoding"


def test_kill_signal(conductor: Conductor, tmp_path: Path) -> None:
    """``killSignal`` (schemas/shell-command/index.ts, 46b0171c, default SIGTERM): the
    signal a timed-out program gets first (4 s: time for the child to set its handlers on
    a loaded machine)."""
    assert ShellCommandParams(program="x").kill_signal == "SIGTERM"
    heard = tmp_path / "heard"
    code = (
        "import signal, sys, time\n"
        "def got(n, f):\n"
        "    open(sys.argv[1], 'w').write(signal.Signals(n).name); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, got)\n"
        "signal.signal(signal.SIGTERM, got)\n"
        "time.sleep(60)\n"
    )
    result = conductor.run(
        flow(program=PY, args=["-c", code, str(heard)], killSignal="INT", timeout=4000)
    )
    assert result.nodes["sh"].error is not None
    assert result.nodes["sh"].error.code == "TIMEOUT"
    assert heard.read_text() == "SIGINT"
    [problem] = problems(conductor, program="true", killSignal="SIGNOPE")
    assert problem.location == "nodes[0].parameters.killSignal"


def test_default_timeout_is_the_originals(conductor: Conductor) -> None:
    """``timeout`` default 30000 ms (schemas/shell-command/index.ts, 46b0171c; the base
    schema's default in every later version)."""
    assert conductor.catalogue["shell-command"].default_settings == {"timeout": 30_000}
    assert conductor.prepare(flow(program="true")).root.nodes[0].settings.timeout == 30_000
    own = flow(program="true", timeout=1000)
    assert conductor.prepare(own).root.nodes[0].settings.timeout == 1000
