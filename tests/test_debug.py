"""Step-through debugging, fault injection and slow motion (conductor.debug), on real runs."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    ConfigurationError,
    ExecutionStatus,
    NodeContext,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
    signals,
)

CHAIN = """
id: dbg
name: Debugged
nodes:
  - {id: a, type: const, parameters: {value: [1, 2]}}
  - {id: b, type: transform, parameters: {operation: map, expression: "item * 10"}}
  - {id: c, type: transform, parameters: {operation: map, expression: "item + 1"}}
  - {id: side, type: const, parameters: {value: 5}}
edges:
  - {source: a, target: b}
  - {source: b, target: c}
"""

ran: list[str] = []


@node("dbg.work", outputs={"out": int}, blocking=True)
def work(ctx: NodeContext, params: Any, n: int = 0) -> dict[str, Any]:
    ran.append(threading.current_thread().name)
    return {"out": n + 1}


class _Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [work]


@pytest.fixture
def conductor(tmp_path: Path) -> Any:
    c = create_conductor(tmp_path / "store", plugins=[_Plugin()], record_runs=True, max_workers=1)
    yield c
    c.close()


def _sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test run on a loop of its own (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def _statuses(execution: Any) -> dict[str, str]:
    return {p: str(r.status) for p, r in execution.snapshot.nodes.items()}


@_sync
async def test_a_breakpoint_pauses_before_the_node_with_its_inputs_and_step_runs_one(
    conductor: Any,
) -> None:
    paused_events: list[signals.NodeEvent] = []

    def on_paused(sender: Any, event: signals.NodeEvent) -> None:
        paused_events.append(event)

    signals.node_paused.connect(on_paused, sender=conductor)
    try:
        execution = conductor.start(loads_flow(CHAIN), breakpoints=["b"])
        debugger = execution.debugger
        first = await debugger.wait_paused()
        assert first is not None and (first.node_id, first.reason) == ("b", "breakpoint")
        assert first.inputs == {"input": [1, 2]}  # resolved from a's outputs
        states = _statuses(execution)
        assert states["a"] == "completed" and states["b"] == "pending"
        assert states["c"] == "pending"
        assert paused_events[0].node_id == "b"  # 'side' may wait behind it, paused too
        assert {e.node_id for e in paused_events} <= {"b", "side"}
        assert paused_events[0].inputs == {"input": [1, 2]}
        assert paused_events[0].message == "breakpoint"  # why it paused

        let_go = debugger.step()  # b runs; the run pauses before the next node to start
        assert let_go is not None and let_go.node_id == "b"
        nxt = await debugger.wait_paused()
        assert nxt is not None and nxt.reason == "step"
        # 'side' was ready from the start: it waited behind the breakpoint
        assert {p.node_id for p in debugger.paused} <= {"side", "c"}
        assert debugger.cont() >= 1
        result = await execution.result()
    finally:
        signals.node_paused.disconnect(on_paused)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.outputs["c"] == {"output": [11, 21]}
    assert await debugger.wait_paused() is None  # over: nobody waits for ever


@_sync
async def test_each_step_runs_exactly_one_node(conductor: Any) -> None:
    chain = CHAIN.replace("  - {id: side, type: const, parameters: {value: 5}}\n", "")
    execution = conductor.start(loads_flow(chain), step=True)
    debugger = execution.debugger
    order = []
    while (paused := await debugger.wait_paused()) is not None:
        done = sum(s == "completed" for s in _statuses(execution).values())
        assert done == len(order)  # every node let go before this pause has completed
        order.append(paused.node_id)
        assert [p.node_id for p in debugger.paused] == [paused.node_id]
        debugger.step()
    result = await execution.result()
    assert order == ["a", "b", "c"] and result.status is ExecutionStatus.COMPLETED


@_sync
async def test_step_from_the_start_and_abort(conductor: Any) -> None:
    execution = conductor.start(loads_flow(CHAIN), step=True)
    first = await execution.debugger.wait_paused()
    assert first is not None and first.reason == "step"
    assert all(s == "pending" for s in _statuses(execution).values())
    assert execution.debugger.abort()
    result = await execution.result()
    assert result.status is ExecutionStatus.CANCELLED
    assert "aborted in the debugger" in str(result.error)
    assert str(result.nodes["b"].status) in ("cancelled", "pending")
    record = conductor.storage.record(result.execution_id)
    assert record.status == "cancelled"


@_sync
async def test_a_paused_run_holds_no_thread(conductor: Any) -> None:
    """One worker thread in all: while a blocking node is paused, another run's blocking node
    still gets it."""
    flow = loads_flow(
        "id: held\nname: Held\nnodes:\n  - {id: w, type: dbg.work}\n", source="held.flow.yaml"
    )
    execution = conductor.start(flow, breakpoints=["w"])
    paused = await execution.debugger.wait_paused()
    assert paused is not None and paused.node_id == "w"
    ran.clear()
    other = await asyncio.wait_for(conductor.execute(flow), timeout=30)
    assert other.status is ExecutionStatus.COMPLETED and len(ran) == 1
    execution.debugger.cont()
    assert (await execution.result()).status is ExecutionStatus.COMPLETED


@_sync
async def test_nothing_times_out_while_paused(conductor: Any) -> None:
    """The flow's timeout and a container's are moved on by the time the run was paused:
    paused three times as long as either, the run completes."""
    flow = loads_flow(
        """
id: slowpause
name: Paused long
settings:
  runtime: {timeout: 400}
nodes:
  - id: g
    type: group
    parameters: {timeout: 300}
    nodes:
      - {id: inner, type: const, parameters: {value: 1}}
"""
    )
    execution = conductor.start(flow, breakpoints=["g/inner"])
    paused = await execution.debugger.wait_paused()
    assert paused is not None and paused.path == "g/inner"
    # the stimulus is time itself: the run stays paused past both timeouts
    await asyncio.sleep(1.2)
    assert execution.snapshot.status is ExecutionStatus.RUNNING
    execution.debugger.cont()
    result = await execution.result()
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert result.duration_ms is not None and result.duration_ms > 1200


@_sync
async def test_injected_error_is_retried_and_recorded(conductor: Any) -> None:
    flow = loads_flow(
        CHAIN.replace(
            '{id: b, type: transform, parameters: {operation: map, expression: "item * 10"}}',
            '{id: b, type: transform, parameters: {operation: map, expression: "item * 10", '
            "retries: 2, retryDelay: 1}}",
        )
    )
    started: list[signals.NodeEvent] = []

    def on_started(sender: Any, event: signals.NodeEvent) -> None:
        started.append(event)

    signals.node_started.connect(on_started, sender=conductor)
    try:
        result = await conductor.execute(flow, inject={"b": "error"})
    finally:
        signals.node_started.disconnect(on_started)
    assert {e.node_id: e.injected for e in started} == {"a": None, "side": None, "b": "error"}
    b = result.nodes["b"]
    assert result.status is ExecutionStatus.FAILED
    assert b.error is not None and b.error.code == "INJECTED_FAULT" and b.attempts == 3
    assert b.injected == "error" and result.nodes["a"].injected is None
    assert str(result.nodes["c"].status) == "skipped"
    stored = conductor.storage.record(result.execution_id)
    assert stored.to_result().nodes["b"].injected == "error"
    assert stored.data["injected"] == {"b": "error"}


@_sync
async def test_injected_delay_counts_towards_the_node_timeout(conductor: Any) -> None:
    flow = loads_flow(CHAIN.replace('"item * 10"}}', '"item * 10", timeout: 200}}'))
    t0 = time.perf_counter()
    slow = await conductor.execute(flow, inject=["b=delay:100"])
    assert slow.status is ExecutionStatus.COMPLETED
    assert slow.nodes["b"].duration_ms is not None and slow.nodes["b"].duration_ms >= 100
    assert slow.nodes["b"].injected == "delay:100"
    assert time.perf_counter() - t0 >= 0.1
    late = await conductor.execute(flow, inject={"b": "delay:5000"})
    b = late.nodes["b"]
    assert b.error is not None and b.error.code == "TIMEOUT"
    assert "timed out after 200 ms (injected: delay:5000)" in b.error.message
    timed = await conductor.execute(flow, inject={"c": "timeout"})
    assert timed.nodes["c"].error is not None and timed.nodes["c"].error.code == "TIMEOUT"


@_sync
async def test_slow_motion_spaces_the_nodes_out(conductor: Any) -> None:
    """a -> b -> c each wait 150 ms before they start: at least 450 ms in all."""
    result = await conductor.execute(loads_flow(CHAIN), slow_mo=150)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.duration_ms is not None and result.duration_ms >= 450
    starts = sorted(r.started_at for r in result.nodes.values() if r.started_at is not None)
    assert starts[-1] - starts[0] >= 0.3 - 0.01  # the chain's last start, two waits later
    assert conductor.storage.record(result.execution_id).data["slowMoMs"] == 150


@_sync
async def test_breakpoints_in_a_loop_pause_each_item(conductor: Any) -> None:
    flow = loads_flow(
        """
id: items
name: Items
nodes:
  - {id: src, type: const, parameters: {value: [1, 2, 3]}}
  - id: each
    type: loop
    nodes:
      - {id: double, type: edit-fields, parameters: {values: {twice: "{{ item * 2 }}"}}}
    edges:
      - {source: double, sourceHandle: output, target: each, targetHandle: results}
edges:
  - {source: src, target: each, targetHandle: items}
"""
    )
    execution = conductor.start(flow, breakpoints=["double"])
    seen = []
    while True:
        paused = await execution.debugger.wait_paused()
        if paused is None:
            break
        seen.append(paused.path)
        execution.debugger.cont()
    result = await execution.result()
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert len(seen) == 3 and all(p.startswith("each/") and p.endswith("/double") for p in seen)


def test_bad_debug_options_are_refused_naming_them(conductor: Any) -> None:
    flow = loads_flow(CHAIN)

    async def start(**kw: Any) -> None:
        conductor.start(flow, **kw)

    with pytest.raises(ConfigurationError, match=r"breakpoint 'bb' names no node.*'b'\?"):
        asyncio.run(start(breakpoints=["bb"]))
    with pytest.raises(ConfigurationError, match="cannot inject 'boom' into node 'b'"):
        asyncio.run(start(inject={"b": "boom"}))
    with pytest.raises(ConfigurationError, match="cannot read the injection 'b'"):
        asyncio.run(start(inject=["b"]))
    with pytest.raises(ConfigurationError, match="injection 'nope' names no node"):
        asyncio.run(start(inject={"nope": "error"}))
    with pytest.raises(ConfigurationError, match="slow_mo=-1"):
        asyncio.run(start(slow_mo=-1))
    assert conductor.run(flow).status is ExecutionStatus.COMPLETED  # no option: no debugger
