"""The shell-command node against real subprocesses, run through a real conductor."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import (
    Conductor,
    ExecutionStatus,
    Flow,
    FlowValidationError,
    create_conductor,
    loads_flow,
)

PY = sys.executable


def make_conductor(**config: Any) -> Conductor:
    return create_conductor(f"memory://t-{uuid.uuid4().hex}", record_runs=False, config=config)


@pytest.fixture
def conductor() -> Conductor:
    return make_conductor()


def shell_flow(extra_nodes: str = "", edges: str = "", **parameters: Any) -> Flow:
    return loads_flow(
        f"""
id: shell-test
name: Shell test
variables:
  who: {{type: string, defaultValue: world}}
nodes:
  - id: sh
    type: shell-command
    parameters: {json.dumps(parameters)}
{extra_nodes}
edges: [{edges}]
"""
    )


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (PID 1 here does not reap orphans)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pids: list[int], within: float = 30.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def read_pids(path: Path, count: int, within: float = 30.0) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.01)
    raise AssertionError(f"{path} did not get {count} pids")


# sh writes its own pid and its background child's pid, then waits on both
TREE = 'sleep 60 & echo $$ $! > "$0"; sleep 60; wait'


def test_shell_is_discovered_through_its_entry_point(conductor: Conductor) -> None:
    node_type = conductor.catalogue["shell-command"]
    assert node_type.distribution == "atomiton-nodes-shell"
    assert node_type.is_async
    assert {"input", "stdin"} <= set(node_type.inputs)
    assert not any(p.required for p in node_type.inputs.values())


def test_shell_args_are_never_parsed_by_a_shell(conductor: Conductor) -> None:
    result = conductor.run(shell_flow(program="echo", args=["a; echo injected", "$(id)", "|"]))
    assert result.status == "completed"
    out = result.nodes["sh"].outputs
    assert out["stdout"] == "a; echo injected $(id) |\n"
    assert out["output"]["exitCode"] == 0
    assert out["output"]["truncated"] is False
    assert out["output"]["timedOut"] is False
    assert out["output"]["duration"] > 0


def test_shell_args_with_braces_are_templates_over_input_and_variables(
    conductor: Conductor,
) -> None:
    extra = """
  - id: data
    type: edit-fields
    parameters: {values: {name: Ada}, keepOnlySet: true}"""
    edges = "{id: e1, source: data, sourceHandle: output, target: sh, targetHandle: input}"
    flow = shell_flow(
        extra, edges, program="echo", args=["{{ input.name }}", "{{ who }}", "{{ 1 + 1 }}"]
    )
    result = conductor.run(flow)
    assert result.status == "completed", result.error
    assert result.nodes["sh"].outputs["stdout"] == "Ada world 2\n"


@pytest.mark.slow
def test_shell_timeout_kills_the_whole_process_group_quickly(
    conductor: Conductor, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    flow = shell_flow(program="sh", args=["-c", TREE, str(pidfile)], timeout=300)
    t0 = time.monotonic()
    result = conductor.run(flow)
    elapsed = time.monotonic() - t0
    assert result.status == "failed"
    assert result.nodes["sh"].error.code == "TIMEOUT"
    assert elapsed < 3, f"the node took {elapsed:.2f}s to stop"  # its processes sleep 60 s
    pids = read_pids(pidfile, 2)
    assert wait_gone(pids) == []


@pytest.mark.slow
def test_shell_sigkill_follows_sigterm_after_the_grace_period(
    conductor: Conductor, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    script = 'trap "" TERM; ' + TREE  # ignored dispositions survive exec: sleep ignores TERM too
    flow = shell_flow(
        program="sh", args=["-c", script, str(pidfile)], timeout=300, killGracePeriod=300
    )
    t0 = time.monotonic()
    result = conductor.run(flow)
    elapsed = time.monotonic() - t0
    assert result.nodes["sh"].error.code == "TIMEOUT"
    assert 0.55 < elapsed < 3  # the timeout and the grace period; its processes sleep 60 s
    assert wait_gone(read_pids(pidfile, 2)) == []


class _Heard(logging.Handler):
    """Sets ``event`` (in ``loop``) when a record's message starts with ``prefix``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.loop, self.prefix, self.event = loop, prefix, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.loop.call_soon_threadsafe(self.event.set)


def test_shell_cancel_kills_the_running_program(
    conductor: Conductor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = tmp_path / "pids"
    os.mkfifo(fifo)  # the program's `echo > "$0"` blocks until we read: then it is running
    flow = shell_flow(program="sh", args=["-c", TREE, str(fifo)])
    node_logger = logging.getLogger("atomiton.nodes.shell-command")
    caplog.set_level(logging.DEBUG, logger=node_logger.name)

    async def scenario() -> tuple[Any, list[int], float]:
        # the node logs "started ..." once it holds the process (and kills its group on cancel)
        holding = _Heard(asyncio.get_running_loop(), "started ")
        node_logger.addHandler(holding)
        try:
            execution = conductor.start(flow)
            reading = asyncio.ensure_future(asyncio.to_thread(fifo.read_text))
            ready = asyncio.gather(reading, holding.event.wait())
            ended = asyncio.ensure_future(execution.result())
            await asyncio.wait({ready, ended}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        finally:
            node_logger.removeHandler(holding)
        if not ready.done():
            if not reading.done():  # the program never wrote: let the reading thread go
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                await reading
            outcome = ended.result().status if ended.done() else "still running"
            raise AssertionError(f"the program did not start, or not as the node's ({outcome})")
        pids = [int(x) for x in reading.result().split()]
        t0 = time.monotonic()
        assert conductor.cancel(execution.execution_id)
        return await ended, pids, time.monotonic() - t0

    result, pids, elapsed = asyncio.run(scenario())
    assert elapsed < 3
    assert result.status == ExecutionStatus.CANCELLED
    assert result.nodes["sh"].status == "cancelled"
    assert len(pids) == 2 and wait_gone(pids) == []


def test_shell_children_left_behind_after_exit_are_killed(
    conductor: Conductor, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    script = 'sleep 60 > /dev/null 2>&1 & echo $! > "$0"'
    result = conductor.run(shell_flow(program="sh", args=["-c", script, str(pidfile)]))
    assert result.status == "completed"
    assert wait_gone(read_pids(pidfile, 1)) == []


@pytest.mark.slow
def test_shell_output_is_capped_and_memory_stays_bounded(conductor: Conductor) -> None:
    """100 MB written, 5 MB kept: the run peaks at the kept bytes and their text (2x the cap),
    not ~9x as it did while asyncio.run formatted the finished task's result."""
    cap = 5_000_000
    code = "import sys; sys.stdout.write('x' * 100_000_000); sys.stderr.write('done')"
    flow = shell_flow(program=PY, args=["-c", code], maxOutputBytes=cap)
    tracemalloc.start()
    try:
        result = conductor.run(flow)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == "completed", result.error
    out = result.nodes["sh"].outputs
    assert out["stdout"] == "x" * cap
    assert out["stderr"] == "done"
    assert out["output"]["truncated"] is True
    assert peak < 2 * cap + 2_000_000, f"peak Python allocations {peak} bytes"


def test_shell_non_zero_exit_fails_with_program_code_and_stderr(conductor: Conductor) -> None:
    args = ["-c", "echo first >&2; echo 'disk is full' >&2; exit 3"]
    result = conductor.run(shell_flow(program="sh", args=args))
    assert result.status == "failed"
    error = result.nodes["sh"].error
    assert error.code == "EXECUTION_FAILED"
    assert "'sh' exited with code 3" in error.message
    assert "disk is full" in error.message
    assert "failOnNonZeroExit" in (error.hint or "")


def test_shell_non_zero_exit_is_a_result_when_asked(conductor: Conductor) -> None:
    args = ["-c", "echo out; echo err >&2; exit 3"]
    result = conductor.run(shell_flow(program="sh", args=args, failOnNonZeroExit=False))
    assert result.status == "completed"
    out = result.nodes["sh"].outputs
    assert (out["exitCode"], out["stdout"], out["stderr"]) == (3, "out\n", "err\n")


def test_shell_stdin_param_is_a_template(conductor: Conductor) -> None:
    result = conductor.run(shell_flow(program="cat", stdin="hello {{ who }}; rm -rf /"))
    assert result.nodes["sh"].outputs["stdout"] == "hello world; rm -rf /"


def test_shell_stdin_port_takes_upstream_data(conductor: Conductor) -> None:
    extra = """
  - id: data
    type: edit-fields
    parameters: {values: {n: 1}, keepOnlySet: true}"""
    edges = "{id: e1, source: data, sourceHandle: output, target: sh, targetHandle: stdin}"
    result = conductor.run(shell_flow(extra, edges, program="cat"))
    assert result.status == "completed", result.error
    assert json.loads(result.nodes["sh"].outputs["stdout"]) == {"n": 1}


def test_shell_large_stdin_and_output_do_not_deadlock(conductor: Conductor) -> None:
    data = "y" * 500_000
    result = conductor.run(shell_flow(program="cat", stdin=data, timeout=10000))
    assert result.status == "completed", result.error
    assert len(result.nodes["sh"].outputs["stdout"]) == 500_000


def test_shell_environment_is_merged_and_scrubbed(
    conductor: Conductor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/evil.so")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/nonexistent")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setenv("BASH_ENV", "/nonexistent/rc")
    monkeypatch.setenv("ATOMITON_SHELL_TEST_INHERITED", "kept")
    flow = shell_flow(program="env", environment={"GREETING": "hi there"})
    result = conductor.run(flow)
    assert result.status == "completed", result.error
    lines = set(result.nodes["sh"].outputs["stdout"].splitlines())
    assert "ATOMITON_SHELL_TEST_INHERITED=kept" in lines
    assert "GREETING=hi there" in lines
    names = {line.split("=", 1)[0] for line in lines}
    assert not names & {"LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "BASH_ENV"}


def test_shell_environment_without_inheritance_has_only_path(
    conductor: Conductor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOMITON_SHELL_TEST_INHERITED", "kept")
    flow = shell_flow(program="env", environment={"A": "1"}, inheritEnvironment=False)
    names = {
        line.split("=", 1)[0]
        for line in conductor.run(flow).nodes["sh"].outputs["stdout"].splitlines()
    }
    assert names == {"PATH", "A"}


@pytest.mark.parametrize("name", ["LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "PYTHONSTARTUP"])
def test_shell_environment_refuses_injection_variables(conductor: Conductor, name: str) -> None:
    with pytest.raises(FlowValidationError, match=name):
        conductor.run(shell_flow(program="env", environment={name: "/x"}))


def test_shell_allowed_programs_refuses_others() -> None:
    true_path = shutil.which("true")
    assert true_path is not None
    conductor = make_conductor(allowedPrograms=["echo", true_path])
    assert conductor.run(shell_flow(program="echo", args=["ok"])).status == "completed"
    assert conductor.run(shell_flow(program=true_path)).status == "completed"
    # the same program by its path is the same permission
    assert conductor.run(shell_flow(program=shutil.which("echo"))).status == "completed"
    for program in ("cat", "./echo"):
        result = conductor.run(shell_flow(program=program))
        assert result.status == "failed"
        assert "not in the conductor's allowedPrograms" in result.nodes["sh"].error.message
        assert repr(program) in result.nodes["sh"].error.message


def test_shell_unknown_program_and_bad_directory_are_clear(conductor: Conductor) -> None:
    result = conductor.run(shell_flow(program="no-such-program-xyz"))
    assert "'no-such-program-xyz' was not found" in result.nodes["sh"].error.message
    result = conductor.run(shell_flow(program="pwd", workingDirectory="/no/such/dir"))
    assert "workingDirectory '/no/such/dir' is not a directory" in (
        result.nodes["sh"].error.message
    )


def test_shell_working_directory(conductor: Conductor, tmp_path: Path) -> None:
    result = conductor.run(shell_flow(program="pwd", workingDirectory=str(tmp_path)))
    assert result.nodes["sh"].outputs["stdout"].strip() == str(tmp_path.resolve())


def test_shell_bytes_output_and_uncaptured_output(
    conductor: Conductor, capfd: pytest.CaptureFixture[str]
) -> None:
    result = conductor.run(shell_flow(program="printf", args=["\\377ok"], encoding=None))
    assert result.nodes["sh"].outputs["stdout"] == b"\xffok"
    result = conductor.run(shell_flow(program="echo", args=["to the console"], captureOutput=False))
    assert result.nodes["sh"].outputs["stdout"] == ""
    assert "to the console" in capfd.readouterr().out


@pytest.mark.slow
def test_shell_cpu_time_limit_stops_a_busy_loop(conductor: Conductor) -> None:
    flow = shell_flow(program=PY, args=["-c", "while True: pass"], cpuTimeLimit=1, timeout=20000)
    t0 = time.monotonic()
    result = conductor.run(flow)
    assert time.monotonic() - t0 < 10
    assert result.status == "failed"
    message = result.nodes["sh"].error.message
    assert "SIGXCPU" in message
    assert "cpuTimeLimit of 1 s exceeded" in message
    flow = shell_flow(
        program=PY, args=["-c", "while True: pass"], cpuTimeLimit=1, failOnNonZeroExit=False
    )
    out = conductor.run(flow).nodes["sh"].outputs["output"]
    assert out["timedOut"] is True
    assert out["exitCode"] < 0


def test_shell_memory_limit_stops_a_hungry_program(conductor: Conductor) -> None:
    code = "x = bytearray(2_000_000_000)"
    flow = shell_flow(program=PY, args=["-c", code], memoryLimit=500)
    result = conductor.run(flow)
    assert result.status == "failed"
    assert "MemoryError" in result.nodes["sh"].error.message


def test_allowed_programs_are_found_on_the_conductors_path_not_the_flows(tmp_path: Path) -> None:
    """A flow cannot put its own `echo` first on PATH to run it as the allowed one."""
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\necho pwned\n")
    fake.chmod(0o755)
    conductor = make_conductor(allowedPrograms=["echo"], allowedEnvironment=["PATH"])
    result = conductor.run(
        shell_flow(program="echo", args=["real"], environment={"PATH": str(tmp_path)})
    )
    assert result.ok, result.error
    assert result.nodes["sh"].outputs["stdout"].strip() == "real"
    refused = conductor.run(shell_flow(program=str(fake)))
    assert "not in the conductor's allowedPrograms" in refused.nodes["sh"].error.message


def test_an_allowed_program_cannot_be_reconfigured_through_the_environment() -> None:
    conductor = make_conductor(allowedPrograms=["git"])
    result = conductor.run(
        shell_flow(
            program="git",
            args=["version"],
            environment={"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "alias.x"},
        )
    )
    err = result.nodes["sh"].error
    assert err is not None and "may not be set under allowedPrograms" in err.message
    assert "GIT_CONFIG_COUNT" in err.message


def test_an_allow_list_entry_with_arguments_holds_the_command_line() -> None:
    conductor = make_conductor(allowedPrograms=["echo hello *"])
    assert conductor.run(shell_flow(program="echo", args=["hello", "world"])).ok
    refused = conductor.run(shell_flow(program="echo", args=["-e", "x"]))
    err = refused.nodes["sh"].error
    assert err is not None and "are not allowed" in err.message


@pytest.mark.parametrize(
    "script",
    [
        "sleep 600 & echo done",
        "set -m; (sleep 600 &); echo done",
        "python3 -c 'import os, time; os.setpgid(0, 0); time.sleep(600)' & echo done",
        "python3 -c 'import os, time; os.setsid(); time.sleep(600)' & echo done",
    ],
    ids=["background", "job-control", "setpgid", "setsid"],
)
def test_what_a_program_leaves_behind_neither_delays_the_node_nor_survives_it(
    conductor: Conductor, script: str
) -> None:
    t0 = time.monotonic()
    result = conductor.run(shell_flow(program="sh", args=["-c", script], timeout=60000))
    assert result.ok, result.error
    assert result.nodes["sh"].outputs["stdout"].strip() == "done"
    assert time.monotonic() - t0 < 10, "the node waited for what the program left behind"
    import psutil

    left_behind = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or ())
        if "sleep 600" in line or "time.sleep(600)" in line:
            left_behind.append(proc)
    _, alive = psutil.wait_procs(left_behind, timeout=10)  # killed: they end at once
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
