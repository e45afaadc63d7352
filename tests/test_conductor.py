"""The conductor against real asyncio timing: concurrency, timeouts, retries, failures, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from atomiton_core import (
    Conductor,
    ExecutionStatus,
    FlowValidationError,
    NodeStatus,
    loads_flow,
    signals,
    wire,
)


@contextlib.contextmanager
def node_started(conductor: Conductor, path: str) -> Iterator[asyncio.Event]:
    """An event set when the node at ``path`` starts (its ``node_started`` signal)."""
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    def on_started(sender: Any, event: signals.NodeEvent) -> None:
        if event.path == path:
            loop.call_soon_threadsafe(started.set)

    with signals.node_started.connected_to(on_started, sender=conductor):
        yield started


def test_independent_branches_run_concurrently(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: branches
name: Two branches
nodes:
  - {id: a, type: test.sleep, parameters: {seconds: 0.3, value: A}}
  - {id: b, type: test.sleep, parameters: {seconds: 0.3, value: B}}
"""
    )
    order: list[str] = []

    def on_started(sender: Any, event: signals.NodeEvent) -> None:
        order.append(f"start {event.path}")

    def on_completed(sender: Any, event: signals.NodeEvent) -> None:
        order.append(f"end {event.path}")

    with (
        signals.node_started.connected_to(on_started, sender=conductor),
        signals.node_completed.connected_to(on_completed, sender=conductor),
    ):
        result = conductor.run(flow)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.outputs["a"]["output"] == "A" and result.outputs["b"]["output"] == "B"
    assert sorted(order[:2]) == ["start a", "start b"], order  # both started before either ended


def test_sync_nodes_run_in_threads_concurrently(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: threads
name: Sync branches
nodes:
  - {id: a, type: test.sync-sleep, parameters: {seconds: 0.3, value: 1}}
  - {id: b, type: test.sync-sleep, parameters: {seconds: 0.3, value: 2}}
  - {id: c, type: test.sync-sleep, parameters: {seconds: 0.3, value: 3}}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert result.ok
    assert time.perf_counter() - t0 < 0.75


def test_concurrency_limit_is_respected(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: limited
name: Limited
settings: {runtime: {concurrency: 2}}
nodes:
"""
        + "".join(
            f"  - {{id: n{i}, type: test.sleep, parameters: {{seconds: 0.15}}}}\n" for i in range(4)
        )
    )
    result = conductor.run(flow)
    assert result.ok
    spans = sorted(
        (result.nodes[f"n{i}"].outputs["started"], result.nodes[f"n{i}"].outputs["ended"])  # type: ignore[index]
        for i in range(4)
    )
    for t, _ in spans:
        running = sum(1 for s, e in spans if s <= t < e)
        assert running <= 2
    assert spans[-1][1] - spans[0][0] >= 0.28  # two waves of 0.15 s


def test_parallel_false_runs_one_at_a_time(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: serial
name: Serial
settings: {runtime: {parallel: false}}
nodes:
  - {id: a, type: test.sleep, parameters: {seconds: 0.1}}
  - {id: b, type: test.sleep, parameters: {seconds: 0.1}}
"""
    )
    result = conductor.run(flow)
    a, b = result.nodes["a"].outputs, result.nodes["b"].outputs
    assert a is not None and b is not None
    assert a["ended"] <= b["started"] or b["ended"] <= a["started"]


def test_data_flows_along_edges_and_sinks_are_outputs(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: sums
name: Sums
nodes:
  - {id: one, type: test.sleep, parameters: {value: 1}}
  - {id: two, type: test.sleep, parameters: {value: 2}}
  - {id: add, type: test.add}
  - {id: again, type: test.add}
edges:
  - {source: one, sourceHandle: output, target: add, targetHandle: a}
  - {source: two, sourceHandle: output, target: add, targetHandle: b}
  - {source: add, sourceHandle: output, target: again, targetHandle: a}
  - {source: one, sourceHandle: output, target: again, targetHandle: b}
"""
    )
    result = conductor.run(flow)
    assert result.outputs == {"again": {"output": 4}}
    assert result.nodes["add"].outputs == {"output": 3}


def test_timeout_fails_quickly_with_timeout_code(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: slow
name: Slow
nodes:
  - {id: slow, type: test.sleep, parameters: {seconds: 5, timeout: 200}}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    elapsed = time.perf_counter() - t0
    assert result.status is ExecutionStatus.FAILED
    node = result.nodes["slow"]
    assert node.status is NodeStatus.FAILED
    assert node.error is not None and node.error.code == "TIMEOUT"
    assert "200 ms" in node.error.message and node.error.node_id == "slow"
    assert str(node.error).startswith("node 'slow': test.sleep timed out after 200 ms")
    assert result.error is not None and result.error.code == "TIMEOUT"
    assert elapsed < 1.5


def test_retries_with_backoff_then_success(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: flaky
name: Flaky
nodes:
  - {id: f, type: test.flaky, parameters: {failures: 2, retries: 2, retryDelay: 50}}
"""
    )
    events: list[Any] = []
    with signals.node_retrying.connected_to(
        lambda s, event: events.append(event), sender=conductor
    ):
        t0 = time.perf_counter()
        result = conductor.run(flow)
        elapsed = time.perf_counter() - t0
    assert result.ok
    assert result.nodes["f"].attempts == 3
    assert result.nodes["f"].outputs == {"output": 3}
    assert [e.delay_ms for e in events] == [50, 100]  # exponential backoff
    assert elapsed >= 0.15


def test_retries_exhausted_fail(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: flaky
name: Flaky
nodes:
  - {id: f, type: test.flaky, parameters: {failures: 5, retries: 1, retryDelay: 1}}
"""
    )
    result = conductor.run(flow)
    assert result.status is ExecutionStatus.FAILED
    assert result.nodes["f"].attempts == 2
    assert "attempt 2" in str(result.nodes["f"].error)


def test_continue_on_fail_skips_only_dependants(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: cof
name: Continue on fail
nodes:
  - {id: bad, type: test.fail, parameters: {continueOnFail: true}}
  - {id: after-bad, type: test.sleep}
  - {id: after-after, type: test.sleep}
  - {id: good, type: test.sleep, parameters: {seconds: 0.1, value: ok}}
  - {id: after-good, type: test.sleep}
edges:
  - {source: bad, target: after-bad}
  - {source: after-bad, target: after-after}
  - {source: good, target: after-good}
"""
    )
    result = conductor.run(flow)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.nodes["bad"].status is NodeStatus.FAILED
    assert result.nodes["bad"].error is not None
    assert result.nodes["bad"].error.code == "EXECUTION_FAILED"
    assert "ValueError: boom" in result.nodes["bad"].error.message
    assert result.nodes["after-bad"].status is NodeStatus.SKIPPED
    assert result.nodes["after-after"].status is NodeStatus.SKIPPED
    assert result.nodes["after-good"].status is NodeStatus.COMPLETED
    assert result.outputs == {"after-good": {"output": "ok", **_timing(result, "after-good")}}


def _timing(result: Any, node_id: str) -> dict[str, Any]:
    out = result.nodes[node_id].outputs
    return {"started": out["started"], "ended": out["ended"]}


def test_fail_fast_cancels_running_siblings(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: ff
name: Fail fast
nodes:
  - {id: bad, type: test.fail}
  - {id: long, type: test.sleep, parameters: {seconds: 10}}
  - {id: later, type: test.sleep}
edges:
  - {source: long, target: later}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert time.perf_counter() - t0 < 2
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None and "boom" in result.error.message
    assert result.nodes["long"].status is NodeStatus.CANCELLED
    assert result.nodes["later"].status is NodeStatus.SKIPPED


def test_disabled_node_is_skipped_and_reported(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: dis
name: Disabled
nodes:
  - {id: off, type: test.sleep, parameters: {enabled: false, value: 1}}
  - {id: on, type: test.sleep, parameters: {value: 2}}
"""
    )
    result = conductor.run(flow)
    assert result.ok
    assert result.nodes["off"].status is NodeStatus.SKIPPED
    assert result.nodes["off"].reason == "disabled"
    assert result.outputs == {"on": result.nodes["on"].outputs}


def test_cancel_stops_a_running_flow(conductor: Conductor, log: list[Any]) -> None:
    flow = loads_flow(
        """
id: long
name: Long
nodes:
  - {id: first, type: test.sleep, parameters: {seconds: 5}}
  - {id: second, type: test.sleep, parameters: {seconds: 0}}
edges:
  - {source: first, target: second}
"""
    )

    async def scenario() -> Any:
        with node_started(conductor, "first") as first:
            execution = conductor.start(flow)
            await asyncio.wait_for(first.wait(), 30)
        assert execution.execution_id in conductor.running
        assert conductor.cancel(execution.execution_id)
        t0 = time.perf_counter()
        result = await execution.result()
        return result, time.perf_counter() - t0

    result, elapsed = asyncio.run(scenario())
    assert elapsed < 1
    assert result.status is ExecutionStatus.CANCELLED
    assert result.error is not None and result.error.code == "CANCELLED"
    assert result.nodes["first"].status is NodeStatus.CANCELLED
    assert result.nodes["second"].status is NodeStatus.CANCELLED
    assert ("sleep-done", "first") not in log
    assert conductor.running == []
    assert conductor.cancel(result.execution_id) is False


def test_cancelling_the_awaiting_task_cancels_the_execution(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: w\nname: W\nnodes:\n  - {id: s, type: test.sleep, parameters: {seconds: 5}}\n"
    )

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conductor.execute(flow), 0.2)
        for eid in conductor.running:  # its cancellation may still be under way: await its end
            execution = conductor.get_execution(eid)
            assert execution is not None
            assert (await execution.result()).status is ExecutionStatus.CANCELLED
        assert conductor.running == []

    asyncio.run(scenario())


def test_flow_timeout(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: ft
name: Flow timeout
settings: {runtime: {timeout: 200}}
nodes:
  - {id: s, type: test.sleep, parameters: {seconds: 5}}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert time.perf_counter() - t0 < 1.5
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None and result.error.code == "TIMEOUT"
    assert result.nodes["s"].status is NodeStatus.CANCELLED


def test_inputs_override_variables(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: vars
name: Vars
variables:
  who: {type: string, defaultValue: world}
  n: {type: number, defaultValue: 1}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {msg: "Hello {{ who }}", twice: "{{ n * 2 }}"}, keepOnlySet: true}
"""
    )
    assert conductor.run(flow).outputs["greet"]["output"] == {"msg": "Hello world", "twice": 2}
    assert conductor.run(flow, {"who": "Ada", "n": 5}).outputs["greet"]["output"] == {
        "msg": "Hello Ada",
        "twice": 10,
    }


def test_undeclared_output_port_fails_the_node(conductor: Conductor) -> None:
    flow = loads_flow("id: b\nname: B\nnodes:\n  - {id: b, type: test.bad-output}\n")
    result = conductor.run(flow)
    assert result.status is ExecutionStatus.FAILED
    err = result.nodes["b"].error
    assert err is not None and err.code == "INVALID_OUTPUT" and "surprise" in err.message


def test_invalid_flow_raises_before_anything_runs(conductor: Conductor, log: list[Any]) -> None:
    flow = loads_flow(
        "id: x\nname: X\nnodes:\n  - {id: a, type: test.sleep}\n  - {id: b, type: nope}\n"
    )
    with pytest.raises(FlowValidationError) as info:
        conductor.run(flow)
    assert "nope" in str(info.value)
    assert info.value.code == "VALIDATION_FAILED"
    assert log == []


def test_result_json_shape(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: shape
name: Shape
nodes:
  - {id: a, type: test.sleep, parameters: {value: {x: 1}}}
  - {id: bad, type: test.fail, parameters: {continueOnFail: true}}
"""
    )
    data = wire.dump(conductor.run(flow))
    assert set(data) >= {"executionId", "status", "outputs", "nodes", "durationMs"}
    assert data["status"] == "completed"
    node = data["nodes"]["a"]
    assert set(node) >= {"status", "outputs", "error", "attempts", "startedAt", "durationMs"}
    assert node["outputs"]["output"] == {"x": 1}
    assert data["nodes"]["bad"]["error"]["code"] == "EXECUTION_FAILED"
    assert isinstance(data["durationMs"], float)


def test_run_inside_event_loop_is_refused_clearly(conductor: Conductor) -> None:
    flow = loads_flow("id: x\nname: X\nnodes:\n  - {id: a, type: test.sleep}\n")

    async def scenario() -> None:
        with pytest.raises(Exception, match=r"await conductor\.execute"):
            conductor.run(flow)

    asyncio.run(scenario())


def test_plan_reuse(conductor: Conductor) -> None:
    flow = loads_flow("id: x\nname: X\nnodes:\n  - {id: a, type: test.add}\n")
    plan = conductor.prepare(flow)
    results = [conductor.run(plan) for _ in range(3)]
    assert all(r.ok for r in results)
    assert len({r.execution_id for r in results}) == 3


def test_group_feeds_children_and_defines_outputs(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: grp
name: Group
nodes:
  - {id: one, type: test.sleep, parameters: {value: 1}}
  - {id: two, type: test.sleep, parameters: {value: 2}}
  - id: g
    type: group
    nodes:
      - {id: add, type: test.add}
      - {id: inner-sink, type: test.sleep, parameters: {value: unused}}
    edges:
      - {source: g, sourceHandle: left, target: add, targetHandle: a}
      - {source: g, sourceHandle: right, target: add, targetHandle: b}
      - {source: add, sourceHandle: output, target: g, targetHandle: total}
  - {id: after, type: test.add}
edges:
  - {source: one, target: g, targetHandle: left}
  - {source: two, target: g, targetHandle: right}
  - {source: g, sourceHandle: total, target: after, targetHandle: a}
"""
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.nodes["g"].outputs == {"total": 3}
    assert result.nodes["g/add"].outputs == {"output": 3}
    assert result.outputs == {"after": {"output": 3}}


def test_group_without_output_edges_outputs_sinks_by_child_id(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: grp2
name: Group sinks
nodes:
  - id: g
    type: group
    parameters: {parallel: false}
    nodes:
      - {id: x, type: test.sleep, parameters: {value: 1}}
      - {id: y, type: test.sleep, parameters: {value: 2}}
      - {id: z, type: test.add}
    edges:
      - {source: x, target: z, targetHandle: a}
"""
    )
    result = conductor.run(flow)
    out = result.outputs["g"]
    assert set(out) == {"y", "z"}
    assert out["z"] == {"output": 1}


def test_group_timeout_and_retries_apply_to_the_group(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: gt
name: Group timeout
nodes:
  - id: g
    type: group
    parameters: {timeout: 200}
    nodes:
      - {id: s, type: test.sleep, parameters: {seconds: 5}}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert time.perf_counter() - t0 < 1.5
    assert result.nodes["g"].error is not None and result.nodes["g"].error.code == "TIMEOUT"
    assert result.nodes["g/s"].status is NodeStatus.CANCELLED


def test_cancel_before_the_first_step(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: c0\nname: C0\nnodes:\n  - {id: s, type: test.sleep, parameters: {seconds: 5}}\n"
    )
    heard: list[str] = []

    async def scenario() -> Any:
        execution = conductor.start(flow)
        assert execution.cancel()  # before the loop ever ran it
        return await execution.result()

    with signals.execution_cancelled.connected_to(
        lambda s, event: heard.append(event.status), sender=conductor
    ):
        result = asyncio.run(scenario())
    assert result.status is ExecutionStatus.CANCELLED
    assert result.error is not None and result.error.code == "CANCELLED"
    assert heard == ["cancelled"]
    assert conductor.running == []


def _chain(n: int) -> Any:
    from atomiton_core import Edge, Flow, NodeSpec

    nodes = [NodeSpec(id=f"n{i}", type="test.flaky", parameters={"failures": 0}) for i in range(n)]
    edges = [Edge(source=f"n{i}", target=f"n{i + 1}") for i in range(n - 1)]
    return Flow(id="chain", name="Chain", nodes=nodes, edges=edges)


def test_a_long_chain_of_quick_async_nodes_never_starves_the_loop(conductor: Conductor) -> None:
    """Chained async nodes run on in one task, yielding to the loop every few dozen nodes."""
    plan = conductor.prepare(_chain(3000))

    async def scenario() -> tuple[Any, int]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.ensure_future(ticker())
        result = await conductor.execute(plan)
        stop = True
        await other
        return result, ticks

    result, ticks = asyncio.run(scenario())
    assert result.ok and len(result.nodes) == 3000
    assert all(r.status is NodeStatus.COMPLETED for r in result.nodes.values())
    assert ticks >= 3000 // 64 - 1  # the other task kept running meanwhile


def test_cancel_reaches_a_chain_running_on_in_one_task(conductor: Conductor) -> None:
    flow = _chain(200)
    flow.nodes.append(
        flow.nodes[0].model_validate(
            {"id": "slow", "type": "test.sleep", "parameters": {"seconds": 5}}
        )
    )
    flow.edges.append(flow.edges[0].model_validate({"source": "n199", "target": "slow"}))

    async def scenario() -> Any:
        with node_started(conductor, "slow") as slow:
            execution = conductor.start(flow)
            await asyncio.wait_for(slow.wait(), 30)
        execution.cancel()
        return await execution.result()

    result = asyncio.run(scenario())
    assert result.status is ExecutionStatus.CANCELLED
    assert result.nodes["n199"].status is NodeStatus.COMPLETED
    assert result.nodes["slow"].status is NodeStatus.CANCELLED


def test_a_flow_may_be_given_as_data_text_a_path_or_a_model(
    conductor: Conductor, tmp_path: Any
) -> None:
    """An app embedding the conductor often has the flow's data (from JSON, an editor)."""
    import json

    from atomiton_core import AtomitonError, ConfigurationError, loads_flow

    data = {
        "id": "given",
        "name": "Given",
        "variables": {"who": {"type": "string", "defaultValue": "world"}},
        "nodes": [
            {
                "id": "hi",
                "type": "edit-fields",
                "parameters": {"values": {"m": "hi {{ who }}"}, "keepOnlySet": True},
            }
        ],
    }
    text = (
        "id: given\nname: Given\nvariables: {who: {type: string, defaultValue: world}}\n"
        "nodes:\n  - {id: hi, type: edit-fields, parameters: "
        "{values: {m: 'hi {{ who }}'}, keepOnlySet: true}}\n"
    )
    path = tmp_path / "given.flow.yaml"
    path.write_text(text)
    for flow in (data, text, json.dumps(data), path, str(path), loads_flow(text)):
        result = conductor.run(flow, {"who": "Ada"})  # type: ignore[arg-type]
        assert result.ok, (flow, result.error)
        assert result.outputs["hi"]["output"] == {"m": "hi Ada"}
    with pytest.raises(ConfigurationError, match="a flow cannot be given as a value of type int"):
        conductor.run(42)  # type: ignore[arg-type]
    with pytest.raises(AtomitonError, match=r"nodes\[0\]\.type"):
        conductor.run({"id": "x", "name": "X", "nodes": [{"id": "a"}]})
