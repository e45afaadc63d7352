"""RemoteConductor against a real server: the same results, of the same classes, as local."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    AtomitonError,
    Conductor,
    ConfigurationError,
    ExecutionResult,
    ExecutionStatus,
    FlowNotFound,
    FlowValidationError,
    NodeResult,
    NodeStatus,
    loads_flow,
    signals,
    wire,
)
from atomiton_core.errors import Unauthorized
from atomiton_core.server.client import RemoteConductor, RemoteExecution

VOLATILE = {"executionId", "startedAt", "durationMs", "cpuMs"}


def comparable(data: Any) -> Any:
    """A result's JSON without ids and timings, which differ between two runs."""
    if isinstance(data, dict):
        return {k: comparable(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [comparable(v) for v in data]
    return data


def untimed(result: ExecutionResult) -> ExecutionResult:
    """The same result with the id and timings (which differ between two runs) cleared."""
    nodes = {
        path: dataclasses.replace(n, started_at=None, duration_ms=None, cpu_ms=None)
        for path, n in result.nodes.items()
    }
    return dataclasses.replace(
        result, execution_id="", started_at=None, duration_ms=None, nodes=nodes
    )


@pytest.fixture(scope="module")
def remote(served: Any) -> Iterator[RemoteConductor]:
    with RemoteConductor(served.url, served.token) as client:
        yield client


def test_remote_and_local_results_are_equal(
    remote: RemoteConductor, local_conductor: Conductor, demo_yaml: str, tmp_path: Path
) -> None:
    flow = loads_flow(demo_yaml)
    local = local_conductor.run(flow, {"who": "Grace"})
    path = tmp_path / "demo.flow.yaml"
    path.write_text(demo_yaml)
    for given in (flow, str(path), path, "demo", flow.to_data(), demo_yaml):
        result = remote.run(given, {"who": "Grace"})
        assert type(result) is ExecutionResult
        assert all(type(n) is NodeResult for n in result.nodes.values())
        assert untimed(result) == untimed(local)
        assert result.status is ExecutionStatus.COMPLETED and result.ok
        assert result.outputs == local.outputs == {"shout": {"output": ["HELLO GRACE"]}}
        assert set(result.nodes) == set(local.nodes)
        assert result.nodes["shout"].status is NodeStatus.COMPLETED
        assert result.nodes["shout"].outputs == local.nodes["shout"].outputs
        assert wire.dump(result).keys() == wire.dump(local).keys()
        assert comparable(wire.dump(result)) == comparable(wire.dump(local))
        assert result.execution_id != local.execution_id
        assert result.duration_ms is not None and result.started_at is not None


def test_failed_runs_compare_equal_too(remote: RemoteConductor, local_conductor: Conductor) -> None:
    flow = loads_flow(
        "id: broken\nname: Broken\nvariables: {unused: {type: number}}\nnodes:\n"
        "  - {id: make, type: edit-fields, parameters: {values: {n: 1}}}\n"
        "  - {id: bad, type: transform, parameters: {operation: map, expression: 'item.n / 0'}}\n"
        "edges:\n  - {source: make, target: bad, sourceHandle: output, targetHandle: input}\n"
    )
    inputs = {"unused": 1}
    local = local_conductor.run(flow, inputs)
    remote_result = remote.run(flow, inputs)
    assert local.status == remote_result.status == ExecutionStatus.FAILED
    assert comparable(wire.dump(remote_result)) == comparable(wire.dump(local))
    assert untimed(remote_result) == untimed(local)
    assert remote_result.error is not None and local.error is not None
    assert type(remote_result.error) is type(local.error)
    assert remote_result.error.code == local.error.code == "EXPRESSION_ERROR"
    assert remote_result.nodes["bad"].error is not None
    assert remote_result.nodes["bad"].error.node_id == "bad"
    with pytest.raises(AtomitonError, match="division by zero"):
        remote_result.raise_for_status()


def test_invalid_flows_raise_the_validation_error(remote: RemoteConductor, demo_yaml: str) -> None:
    flow = loads_flow(demo_yaml.replace("type: transform", "type: trasnform"))
    with pytest.raises(FlowValidationError) as info:
        remote.run(flow)
    problem = info.value.report.problems[0]
    assert problem.code == "NODE_TYPE_NOT_FOUND" and problem.node_id == "shout"
    report = remote.validate(flow)
    assert not report.ok and report.errors[0].code == "NODE_TYPE_NOT_FOUND"
    assert remote.validate("demo").ok
    with pytest.raises(FlowNotFound):
        remote.run("no-such-flow")


def test_start_events_and_cancel(remote: RemoteConductor) -> None:
    async def scenario() -> tuple[list[Any], ExecutionResult]:
        execution = await remote.start_async("sleepy")
        assert isinstance(execution, RemoteExecution)
        seen: list[Any] = []
        asked = False
        async for event in execution.events():
            seen.append(event)
            # once: a progress event may still arrive while the cancel takes effect
            if event.type == "node.progress" and not asked:
                assert execution.cancel() is True
                asked = True
        return seen, await execution.result()

    events, result = asyncio.run(scenario())
    assert all(isinstance(e, signals.NodeEvent | signals.ExecutionEvent) for e in events)
    types = [e.type for e in events]
    assert types[0] == "execution.started" and types[-1] == "execution.cancelled"
    assert "node.cancelled" in types
    assert result.status is ExecutionStatus.CANCELLED
    assert result.nodes["nap"].status is NodeStatus.CANCELLED
    assert remote.cancel(result.execution_id) is False
    assert remote.get(result.execution_id).status is ExecutionStatus.CANCELLED
    assert result.execution_id in {e["executionId"] for e in remote.executions()}


def test_sync_start_returns_a_handle_at_once(remote: RemoteConductor) -> None:
    execution = remote.start("sleepy")
    assert execution.snapshot.status is ExecutionStatus.RUNNING and not execution.done()
    assert execution.cancel()
    result = asyncio.run(execution.result())
    assert result.status is ExecutionStatus.CANCELLED and execution.done()


def test_fifty_concurrent_executions_all_complete(remote: RemoteConductor) -> None:
    async def many() -> list[ExecutionResult]:
        return await asyncio.gather(*(remote.execute("demo", {"who": f"n{i}"}) for i in range(50)))

    results = asyncio.run(many())
    assert [r.status for r in results] == [ExecutionStatus.COMPLETED] * 50
    assert [r.outputs["shout"]["output"] for r in results] == [[f"HELLO N{i}"] for i in range(50)]
    assert len({r.execution_id for r in results}) == 50


def test_flows_crud_and_nodes(remote: RemoteConductor, demo_yaml: str, tmp_path: Path) -> None:
    assert {"edit-fields", "transform", "group"} <= {t["id"] for t in remote.nodes()}
    assert remote.health()["status"] == "ok"
    path = tmp_path / "client.flow.yaml"
    path.write_text(demo_yaml.replace("id: demo", "id: client-flow"))
    saved = remote.save_flow(path)
    assert saved["id"] == "client-flow"
    assert remote.get_flow_yaml("client-flow").startswith("# the demo flow")
    flow = remote.get_flow("client-flow")
    assert flow.id == "client-flow" and [n.id for n in flow.nodes] == ["greet", "shout"]
    flow.name = "Renamed"
    remote.save_flow(flow)
    assert {f["id"]: f["name"] for f in remote.list_flows()}["client-flow"] == "Renamed"
    remote.delete_flow("client-flow")
    with pytest.raises(FlowNotFound):
        remote.get_flow("client-flow")


def test_a_wrong_token_is_unauthorized(served: Any) -> None:
    with RemoteConductor(served.url, "wrong") as client:
        with pytest.raises(Unauthorized) as info:
            client.list_flows()
        assert info.value.http_status == 401
        assert info.value.code == "UNAUTHORIZED"
        assert client.health()["status"] == "ok"


def test_run_inside_a_loop_is_refused(remote: RemoteConductor) -> None:
    async def inside() -> None:
        remote.run("demo")

    with pytest.raises(ConfigurationError, match="event loop"):
        asyncio.run(inside())


def test_an_unknown_input_is_refused_by_the_server_naming_it(
    remote: RemoteConductor, demo_yaml: str
) -> None:
    from atomiton_core.errors import VariableError

    with pytest.raises(VariableError, match="input 'whom' is not a variable") as exc:
        remote.run(loads_flow(demo_yaml), {"whom": "Grace"})
    assert "did you mean 'who'?" in (exc.value.hint or "")


def test_the_server_validates_as_the_conductor_does(remote: RemoteConductor) -> None:
    """An undefined name in a template is a problem over HTTP too."""
    report = remote.validate(
        "id: u\nname: U\nnodes:\n"
        "  - {id: a, type: edit-fields, parameters: {values: {m: '{{ whom }}'}}}\n"
    )
    (problem,) = report.errors
    assert problem.code == "UNDEFINED_NAME" and problem.node_id == "a"
