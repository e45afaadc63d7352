"""``atomiton runs``: the history in storage, read by real subprocesses of the command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import Conductor, NodeContext, Parameters, create_conductor, hookimpl, loads_flow
from atomiton_core import node as node_type

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
GATE = threading.Event()


@node_type("cli-runs.gate", outputs={"output": int}, blocking=True)
def gate(ctx: NodeContext, params: Parameters, input: Any = None) -> dict[str, Any]:
    """Waits for the test (a thread: the loop goes on writing the log meanwhile)."""
    assert GATE.wait(60)
    return {"output": 1}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [gate]


def atomiton(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ATOMITON, *args], capture_output=True, text=True, timeout=60)


FLOW = (
    "id: hist\nname: hist\nnodes:\n"
    "  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}\n"
    "  - {id: b, type: transform, parameters: {operation: map, expression: 'item.x / item.d'}}\n"
    "edges:\n  - {source: a, target: b}\n"
)


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, Conductor]:
    url = str(tmp_path / "store")
    conductor = create_conductor(url, plugins=[Plugin()])
    return url, conductor


def test_list_show_delete_and_prune(store: tuple[str, Conductor]) -> None:
    url, conductor = store
    flow = loads_flow(FLOW)
    failed = conductor.run(flow)  # item.d is undefined
    ok = conductor.run(loads_flow(FLOW.replace("item.x / item.d", "item.x")))
    listed = atomiton("runs", "list", "--storage", url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["executionId"] for r in rows] == [ok.execution_id, failed.execution_id]
    assert rows[1]["status"] == "failed" and rows[1]["error"]
    only = json.loads(
        atomiton("runs", "list", "--status", "failed", "--json", "--storage", url).stdout
    )
    assert [r["executionId"] for r in only] == [failed.execution_id]
    table = atomiton("runs", "list", "--storage", url)
    assert failed.execution_id in table.stdout and "failed" in table.stdout
    shown = atomiton("runs", "show", failed.execution_id, "--storage", url)
    assert shown.returncode == 0, shown.stderr
    for text in ("hist", "failed", "edit-fields", "completed", "item.x / item.d"):
        assert text in shown.stdout, (text, shown.stdout)
    record = json.loads(
        atomiton("runs", "show", ok.execution_id, "--json", "--storage", url).stdout
    )
    assert record["nodes"]["b"]["outputs"] == {"output": [1]}
    logs = atomiton("runs", "logs", ok.execution_id, "--storage", url)
    lines = logs.stdout.splitlines()
    assert "execution.started" in lines[0] and "execution.completed" in lines[-1]
    assert sum("node.completed" in line for line in lines) == 2
    missing = atomiton("runs", "show", "nope", "--storage", url)
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
    pruned = atomiton("runs", "prune", "--keep", "1", "--storage", url)
    assert "deleted 1 run" in pruned.stdout
    deleted = atomiton("runs", "delete", ok.execution_id, "--storage", url)
    assert deleted.returncode == 0
    assert json.loads(atomiton("runs", "list", "--json", "--storage", url).stdout) == []


def test_logs_follow_a_run_as_it_goes(store: tuple[str, Conductor]) -> None:
    url, conductor = store
    GATE.clear()
    flow = loads_flow(
        "id: slow\nname: slow\nnodes:\n  - {id: first, type: edit-fields, parameters: {values: {x: 1}}}\n"
        "  - {id: wait, type: cli-runs.gate}\nedges:\n  - {source: first, target: wait}\n"
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    def drive() -> None:
        async def go() -> Any:
            execution = conductor.start(flow)
            box["id"] = execution.execution_id
            started.set()
            return await execution.result()

        box["result"] = loop.run_until_complete(go())

    runner = threading.Thread(target=drive)
    runner.start()
    try:
        assert started.wait(30)
        follower = subprocess.Popen(
            [*ATOMITON, "runs", "logs", box["id"], "--follow", "--storage", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        seen = []
        for line in follower.stdout:  # the run is held at `wait`: the log so far, then more
            seen.append(line)
            if "node.started" in line and "wait" in line:
                break
        assert not any("execution.completed" in line for line in seen)
        GATE.set()
        rest, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert "execution.completed" in rest.splitlines()[-1]
    finally:
        GATE.set()
        runner.join(60)
        loop.close()
    assert box["result"].ok
