"""Debugging a run on a real server: breakpoints, step, continue, abort and injected faults,
through the HTTP API (httpx) and the client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from atomiton_core import ExecutionStatus
from atomiton_core.server.client import RemoteConductor

CHAIN = """
id: remote-debug
name: Remote debug
nodes:
  - {id: a, type: const, parameters: {value: [1, 2]}}
  - {id: b, type: transform, parameters: {operation: map, expression: "item * 10"}}
  - {id: c, type: transform, parameters: {operation: map, expression: "item + 1"}}
edges:
  - {source: a, target: b}
  - {source: b, target: c}
"""


@pytest.fixture(scope="module")
def remote(served: Any) -> Iterator[RemoteConductor]:
    with RemoteConductor(served.url, served.token) as client:
        yield client


def test_the_client_pauses_steps_and_continues_a_remote_run(remote: RemoteConductor) -> None:
    async def main() -> None:
        execution = await remote.start_async(CHAIN, breakpoints=["b"])
        debugger = execution.debugger
        paused = await debugger.wait_paused()
        assert paused is not None and (paused.node_id, paused.reason) == ("b", "breakpoint")
        assert paused.inputs == {"input": [1, 2]}
        assert debugger.breakpoints == {"b"}
        snapshot = execution.snapshot
        assert str(snapshot.nodes["b"].status) == "pending"
        assert str(snapshot.nodes["a"].status) == "completed"
        debugger.step()
        nxt = await debugger.wait_paused()
        assert nxt is not None and (nxt.node_id, nxt.reason) == ("c", "step")
        assert nxt.inputs == {"input": [10, 20]}
        assert debugger.cont() == ()
        result = await execution.result()
        assert result.status is ExecutionStatus.COMPLETED
        assert result.outputs["c"] == {"output": [11, 21]}
        assert await debugger.wait_paused() is None

    asyncio.run(main())


def test_abort_and_breakpoints_set_while_running(remote: RemoteConductor) -> None:
    async def main() -> None:
        execution = await remote.start_async(CHAIN, step=True)
        debugger = execution.debugger
        first = await debugger.wait_paused()
        assert first is not None and first.node_id == "a"
        debugger.set_breakpoints(["c"])
        debugger.cont()  # runs on to c, the breakpoint set meanwhile
        at_c = await debugger.wait_paused()
        assert at_c is not None and (at_c.node_id, at_c.reason) == ("c", "breakpoint")
        debugger.abort()
        result = await execution.result()
        assert result.status is ExecutionStatus.CANCELLED
        assert "aborted in the debugger" in str(result.error)

    asyncio.run(main())


def test_injection_through_the_http_api(served: Any) -> None:
    headers = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as http:
        answer = http.post(
            "/api/executions?wait=30",
            json={"flow": CHAIN, "inject": {"b": "error"}, "slowMo": 10},
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["status"] == "failed"
        assert result["nodes"]["b"]["injected"] == "error"
        assert result["nodes"]["b"]["error"]["code"] == "INJECTED_FAULT"
        bad = http.post("/api/executions", json={"flow": CHAIN, "inject": {"b": "slow"}})
        assert bad.status_code == 400 and "cannot inject 'slow'" in bad.text
        wrong = http.post("/api/executions", json={"flow": CHAIN, "breakpoints": ["zz"]})
        assert wrong.status_code == 400 and "breakpoint 'zz' names no node" in wrong.text
        typed = http.post("/api/executions", json={"flow": CHAIN, "slowMo": "fast"})
        assert typed.status_code == 400 and "`slowMo` must be milliseconds" in typed.text
        plain = http.post("/api/executions?wait=30", json={"flow": CHAIN}).json()
        debug = http.get(f"/api/executions/{plain['executionId']}/debug")
        assert debug.status_code == 409  # over (and never debugged)
        unknown = http.post("/api/executions/nope/debug", json={"action": "step"})
        assert unknown.status_code == 404
        started = http.post("/api/executions", json={"flow": CHAIN, "step": True}).json()
        eid = started["executionId"]
        assert http.post(f"/api/executions/{eid}/debug", json={}).status_code == 400
        steer = http.post(f"/api/executions/{eid}/debug", json={"action": "jump"})
        assert steer.status_code == 400 and "step, continue or abort" in steer.text
        done = http.post(f"/api/executions/{eid}/debug", json={"action": "abort"})
        assert done.status_code == 200, done.text
