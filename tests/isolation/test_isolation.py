"""Isolated nodes in real worker processes: killed on timeout and cancel with everything they
started, held to their limits, crashes contained to their node, nothing left running.

The node functions here import what they use inside their bodies: they travel to the
workers by value (cloudpickle), and this test module is not importable there.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    Conductor,
    NodeContext,
    Parameters,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
    wire,
)
from atomiton_core.errors import ErrorCode

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")


class Script(Parameters):
    #: What the node does, by name (see ``work``).
    action: str = "echo"
    seconds: float = 0.0
    log: str = ""


@node("iso.work", params=Script, outputs={"output": Any, "pid": int})
def work(ctx: NodeContext, params: Script, input: Any = None) -> dict[str, Any]:
    """Does what ``action`` says, in whatever process it was given."""
    import os as _os
    import time as _time

    start = _time.time()
    if params.log:
        with open(params.log, "a") as f:
            f.write(f"start {ctx.attempt} {_os.getpid()} {start}\n")
    action = params.action
    if action == "sleep":
        ctx.progress(0.0, "asleep")  # tells the conductor the worker has the task
        _time.sleep(params.seconds)
    elif action == "spin":
        while True:
            pass
    elif action == "alloc":
        blob = bytearray(10 * 1024**3)  # 10 GB, refused by memoryLimit
        return {"output": len(blob)}
    elif action == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif action == "exit":
        _os._exit(3)
    elif action == "forkbomb":
        while True:
            _os.fork()
    elif action == "spawn-sleeper":
        import subprocess as _sp

        _sp.Popen(["sleep", "600"])  # left behind on purpose
    elif action == "thread":
        import threading as _threading

        _threading.Thread(target=_time.sleep, args=(600,), daemon=True).start()
    elif action == "progress":
        ctx.progress(0.5, "halfway")
    elif action == "unencodable":
        return {"output": object()}
    if params.log:
        with open(params.log, "a") as f:
            f.write(f"end {ctx.attempt} {_os.getpid()} {_time.time()}\n")
    return {"output": input if input is not None else action, "pid": _os.getpid()}


@node("iso.async", outputs={"output": int})
async def async_work(ctx: NodeContext, params: Any, input: int = 1) -> dict[str, Any]:
    import asyncio as _asyncio

    await _asyncio.sleep(0.01)
    return {"output": input * 2}


TYPED = {
    "when": dt.datetime(2026, 12, 2, 1, 2, 3),
    "raw": b"\x00\xff",
    "pair": (1, 2.5),
    "tags": {"a", "b"},
    "money": Decimal("1.10"),
    7: "an int key",
}


@node("iso.make", outputs={"output": Any}, blocking=False)
def make(ctx: NodeContext, params: Any) -> dict[str, Any]:
    return {"output": TYPED}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [work, async_work, make]


@pytest.fixture(scope="module")
def conductor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conductor]:
    c = create_conductor(
        str(tmp_path_factory.mktemp("store")), plugins=[Plugin()], process_workers=2
    )
    yield c
    pids = c.process_pool.pids
    c.close()
    assert not [p for p in pids if _alive(p)], "closing the conductor leaves no worker"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _group(pgid: int) -> list[str]:
    """`ps` lines of the processes in a process group (none once it was killed)."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [
        " ".join(r) for r in rows if len(r) >= 3 and r[1] == str(pgid) and not r[2].startswith("Z")
    ]


def _flow(**params: Any) -> Any:
    body = {
        "id": "iso",
        "name": "iso",
        "nodes": [
            {"id": "w", "type": "iso.work", "parameters": {"isolation": "process", **params}}
        ],
    }
    return loads_flow(json.dumps(body))


def _wait_gone(pgid: int, timeout: float = 10.0) -> list[str]:
    """Wait for the processes of a group to end (psutil waits on each); what is left."""
    import psutil

    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
    psutil.wait_procs(members, timeout=timeout)
    return _group(pgid)


def test_an_isolated_node_runs_in_a_worker_and_reports_cpu_and_memory(
    conductor: Conductor,
) -> None:
    result = conductor.run(_flow(action="echo"))
    assert result.ok, result.error
    res = result.nodes["w"]
    assert res.outputs is not None
    assert res.outputs["output"] == "echo"
    pid = res.outputs["pid"]
    assert pid != os.getpid()
    assert pid in conductor.process_pool.pids
    assert res.cpu_ms is not None and res.cpu_ms >= 0
    assert res.peak_memory is not None and res.peak_memory > 1024 * 1024
    again = conductor.run(_flow(action="echo"))
    assert again.nodes["w"].outputs["pid"] in conductor.process_pool.pids  # warm, reused
    record = wire.dump(result)
    assert record["nodes"]["w"]["cpuMs"] == res.cpu_ms
    assert record["nodes"]["w"]["peakMemory"] == res.peak_memory


def test_an_isolated_infinite_loop_ends_as_a_timeout_and_its_worker_is_killed(
    conductor: Conductor,
) -> None:
    before = set(conductor.process_pool.pids)
    t0 = time.monotonic()
    result = conductor.run(_flow(action="spin", timeout=300))
    assert time.monotonic() - t0 < 10
    res = result.nodes["w"]
    assert res.status == "failed"
    assert res.error is not None and res.error.code == ErrorCode.TIMEOUT
    for pid in before:
        if pid not in conductor.process_pool.pids:
            assert _wait_gone(pid) == []
    assert not any(_group(p) == [] for p in conductor.process_pool.pids), "pool is warm again"


def test_retries_of_an_isolated_node_never_overlap(conductor: Conductor, tmp_path: Path) -> None:
    log = tmp_path / "spans.log"
    result = conductor.run(
        # 500 ms an attempt: time for a fresh worker to start the node on a busy machine
        _flow(action="sleep", seconds=5.0, log=str(log), timeout=500, retries=2, retryDelay=0)
    )
    assert result.nodes["w"].error is not None
    assert result.nodes["w"].error.code == ErrorCode.TIMEOUT
    assert result.nodes["w"].attempts == 3
    lines = log.read_text().split()
    assert lines.count("start") == 3
    assert "end" not in lines, "each attempt was killed before it could end"
    pids = {int(line.split()[2]) for line in log.read_text().splitlines()}
    assert len(pids) == 3, "every attempt ran in a fresh worker"
    for pid in pids:
        assert _wait_gone(pid) == [], "each killed worker is gone (SIGKILL lands at once)"


def test_a_cpu_limit_kills_the_worker_with_resource_limit(conductor: Conductor) -> None:
    result = conductor.run(_flow(action="spin", cpuLimit=0.5, timeout=30000))
    err = result.nodes["w"].error
    assert err is not None and err.code == ErrorCode.RESOURCE_LIMIT
    assert err.context["limit"] == "cpuLimit"
    assert "cpuLimit of 0.5 s" in err.message


def test_a_10_gb_allocation_fails_on_the_memory_limit(conductor: Conductor) -> None:
    result = conductor.run(_flow(action="alloc", memoryLimit=256))
    err = result.nodes["w"].error
    assert err is not None and err.code == ErrorCode.RESOURCE_LIMIT, err
    assert err.context["limit"] == "memoryLimit"
    assert "memoryLimit of 256 MB" in err.message
    assert conductor.run(_flow(action="echo")).ok, "the worker serves on"


def test_a_segfault_fails_only_its_node(conductor: Conductor) -> None:
    flow = loads_flow(
        json.dumps(
            {
                "id": "seg",
                "name": "seg",
                "nodes": [
                    {
                        "id": "crash",
                        "type": "iso.work",
                        "parameters": {
                            "isolation": "process",
                            "action": "segfault",
                            "continueOnFail": True,
                        },
                    },
                    {"id": "other", "type": "iso.work", "parameters": {"isolation": "process"}},
                ],
            }
        )
    )
    result = conductor.run(flow)
    assert result.nodes["other"].status == "completed"
    err = result.nodes["crash"].error
    assert err is not None and err.code == ErrorCode.WORKER_CRASHED
    assert "SIGSEGV" in err.message
    assert result.status == "completed"


def test_os_exit_is_a_worker_crash_with_its_status(conductor: Conductor) -> None:
    result = conductor.run(_flow(action="exit"))
    err = result.nodes["w"].error
    assert err is not None and err.code == ErrorCode.WORKER_CRASHED
    assert "exited with status 3" in err.message
    assert err.context["exit_code"] == 3


def test_a_fork_bomb_stops_at_the_process_limit_and_leaves_nothing(
    conductor: Conductor, tmp_path: Path
) -> None:
    log = tmp_path / "bomb.log"
    result = conductor.run(_flow(action="forkbomb", processLimit=4, timeout=20000, log=str(log)))
    err = result.nodes["w"].error
    assert err is not None and err.code == ErrorCode.RESOURCE_LIMIT, err
    assert err.context["limit"] == "processLimit"
    assert "processLimit of 4" in err.message
    worker = int(log.read_text().split()[2])
    assert _wait_gone(worker) == [], (
        "the worker was replaced; its group, children included, is gone"
    )
    assert worker not in conductor.process_pool.pids


def test_what_an_attempt_started_is_killed_with_its_worker(
    conductor: Conductor, tmp_path: Path
) -> None:
    log = tmp_path / "spawn.log"
    result = conductor.run(_flow(action="spawn-sleeper", log=str(log)))
    assert result.ok, result.error
    worker = int(log.read_text().split()[2])
    assert _wait_gone(worker) == [], "the worker and its `sleep 600` were killed"


def test_a_cancel_kills_the_worker_at_once(conductor: Conductor, tmp_path: Path) -> None:
    log = tmp_path / "cancel.log"

    async def main() -> Any:
        execution = conductor.start(_flow(action="sleep", seconds=60, log=str(log)))
        async for event in execution.events():
            if event.type == "node.progress" and event.message == "asleep":
                break  # the worker has the task
        t0 = time.monotonic()
        execution.cancel()
        result = await execution.result()
        return result, time.monotonic() - t0

    result, took = asyncio.run(main())
    assert result.status == "cancelled"
    assert took < 5
    worker = int(log.read_text().split()[2])
    assert _wait_gone(worker) == []


def test_progress_from_a_worker_reaches_the_conductor(conductor: Conductor) -> None:
    from atomiton_core import signals

    seen: list[tuple[float, str | None]] = []

    def on_progress(sender: Any, event: Any) -> None:
        seen.append((event.progress, event.message))

    signals.node_progress.connect(on_progress, sender=conductor)
    try:
        assert conductor.run(_flow(action="progress")).ok
    finally:
        signals.node_progress.disconnect(on_progress)
    assert (0.5, "halfway") in seen


def test_a_value_that_cannot_cross_is_refused_naming_node_and_port(
    conductor: Conductor,
) -> None:
    result = conductor.run(_flow(action="unencodable"))
    err = result.nodes["w"].error
    assert err is not None and err.code == ErrorCode.VALUE_NOT_ENCODABLE
    assert err.node_id == "w"
    assert "outputs.output" in err.message and "builtins.object" in err.message


def test_inputs_and_outputs_cross_with_their_types(conductor: Conductor) -> None:
    flow = loads_flow(
        json.dumps(
            {
                "id": "types",
                "name": "types",
                "nodes": [
                    {"id": "make", "type": "iso.make"},
                    {"id": "echo", "type": "iso.work", "parameters": {"isolation": "process"}},
                    {"id": "a", "type": "iso.async", "parameters": {"isolation": "process"}},
                ],
                "edges": [{"id": "e", "source": "make", "target": "echo"}],
            }
        )
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.nodes["echo"].outputs["output"] == TYPED
    assert type(result.nodes["echo"].outputs["output"]["pair"]) is tuple
    assert result.nodes["a"].outputs == {"output": 2}, "an async node runs isolated too"


def test_the_pool_size_bounds_isolated_nodes_at_once(tmp_path: Path) -> None:
    log = tmp_path / "pool.log"
    nodes = [
        {
            "id": f"n{i}",
            "type": "iso.work",
            "parameters": {
                "isolation": "process",
                "action": "sleep",
                "seconds": 0.3,
                "log": str(log),
            },
        }
        for i in range(3)
    ]
    flow = loads_flow(json.dumps({"id": "pool", "name": "pool", "nodes": nodes}))
    with create_conductor(str(tmp_path / "s"), plugins=[Plugin()], process_workers=1) as c:
        result = c.run(flow)
        assert result.ok, result.error
        assert len(set(c.process_pool.pids)) == 1
    events = []
    for line in log.read_text().splitlines():
        kind, _, pid, at = line.split()
        events.append((float(at), kind, pid))
    events.sort()
    running = 0
    for _, kind, _ in events:
        running += 1 if kind == "start" else -1
        assert running <= 1, "one worker: one isolated node at a time"


def test_a_memory_ceiling_fails_the_run(tmp_path: Path) -> None:
    flow = _flow(action="sleep", seconds=30)
    with create_conductor(
        str(tmp_path / "s"), plugins=[Plugin()], process_workers=1, memory_ceiling=1
    ) as c:
        t0 = time.monotonic()
        result = c.run(flow)
    assert time.monotonic() - t0 < 10
    assert result.status == "failed"
    assert result.error is not None and result.error.code == ErrorCode.RESOURCE_LIMIT
    assert result.error.context["limit"] == "memoryCeiling"
    assert "memory ceiling of 1 MB" in result.error.message


def test_a_thread_node_reports_its_cpu_time(tmp_path: Path) -> None:
    flow = loads_flow(
        json.dumps(
            {
                "id": "t",
                "name": "t",
                "nodes": [{"id": "w", "type": "iso.work", "parameters": {"action": "echo"}}],
            }
        )
    )
    with create_conductor(str(tmp_path / "s"), plugins=[Plugin()]) as c:
        res = c.run(flow).nodes["w"]
    assert res.outputs is not None and res.outputs["pid"] == os.getpid()
    assert res.cpu_ms is not None and res.peak_memory is None


def test_limits_without_isolation_are_refused_when_validated(conductor: Conductor) -> None:
    flow = loads_flow(
        json.dumps(
            {
                "id": "v",
                "name": "v",
                "nodes": [{"id": "w", "type": "iso.work", "parameters": {"cpuLimit": 1}}],
            }
        )
    )
    report = conductor.validate(flow)
    [problem] = report.errors
    assert problem.node_id == "w"
    assert problem.location == "nodes[0].parameters.cpuLimit"
    assert "isolation: process" in (problem.hint or "")


def test_a_container_cannot_be_isolated(conductor: Conductor) -> None:
    flow = loads_flow(
        json.dumps(
            {
                "id": "g",
                "name": "g",
                "nodes": [
                    {
                        "id": "g",
                        "type": "group",
                        "parameters": {"isolation": "process"},
                        "nodes": [{"id": "w", "type": "iso.work"}],
                    }
                ],
            }
        )
    )
    [problem] = conductor.validate(flow).errors
    assert problem.location == "nodes[0].parameters.isolation"


def test_a_worker_left_with_a_thread_running_is_replaced(
    conductor: Conductor, tmp_path: Path
) -> None:
    log = tmp_path / "thread.log"
    assert conductor.run(_flow(action="thread", log=str(log))).ok
    worker = int(log.read_text().split()[2])
    assert _wait_gone(worker) == []


def test_isolated_nodes_obey_the_run_concurrency(conductor: Conductor, tmp_path: Path) -> None:
    log = tmp_path / "concurrency.log"
    params = {"isolation": "process", "action": "sleep", "seconds": 0.2, "log": str(log)}
    flow = loads_flow(
        json.dumps(
            {
                "id": "one-at-a-time",
                "name": "one at a time",
                "settings": {"runtime": {"concurrency": 1}},
                "nodes": [
                    {"id": f"n{i}", "type": "iso.work", "parameters": params} for i in range(3)
                ],
            }
        )
    )
    assert conductor.run(flow).ok
    running = 0
    for line in sorted(log.read_text().splitlines(), key=lambda line: float(line.split()[3])):
        running += 1 if line.startswith("start") else -1
        assert running <= 1


@node("iso.env", outputs={"output": Any})
def env_node(ctx: NodeContext, params: Any) -> dict[str, Any]:
    import os as _os

    return {"output": _os.environ.get("ATOMITON_TEST_LATE")}


def test_a_worker_has_the_conductors_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set after the fork server may have started: a new worker still sees it."""

    class P:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [env_node]

    monkeypatch.setenv("ATOMITON_TEST_LATE", "here")
    flow = loads_flow(
        '{"id": "env", "name": "env", "nodes": [{"id": "e", "type": "iso.env", '
        '"parameters": {"isolation": "process"}}]}'
    )
    with create_conductor(str(tmp_path), plugins=[P()], process_workers=1) as c:
        assert c.run(flow).nodes["e"].outputs == {"output": "here"}
