"""Hypothesis: in random DAGs every node runs exactly once, never before its inputs."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomiton_core import Edge, Flow, NodeSpec


@st.composite
def dags(draw: st.DrawFn) -> Flow:
    n = draw(st.integers(1, 25))
    edges: list[Edge] = []
    for target in range(n):
        sources = draw(st.lists(st.integers(0, max(target - 1, 0)), max_size=3, unique=True))
        edges.extend(
            Edge(source=f"n{s}", target=f"n{target}", target_handle="deps")
            for s in sources
            if s < target
        )
    concurrency = draw(st.none() | st.integers(1, 4))
    order = draw(st.permutations(list(range(n))))
    return Flow(
        id="dag",
        name="Random DAG",
        nodes=[NodeSpec(id=f"n{i}", type="test.record") for i in order],
        edges=edges,
        settings={"runtime": {"concurrency": concurrency}},
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dags())
def test_each_node_runs_once_after_its_inputs(conductor_factory: Any, flow: Flow) -> None:
    log: list[Any] = []
    conductor = conductor_factory(config={"log": log})
    result = conductor.run(flow)
    assert result.ok, result.error
    ran = [path for path, _ in log]
    assert sorted(ran) == sorted(n.id for n in flow.nodes)
    position = {path: i for i, path in enumerate(ran)}
    for edge in flow.edges:
        assert position[edge.source] < position[edge.target]
    received = dict(log)
    for node in flow.nodes:
        expected = sorted(e.source for e in flow.edges if e.target == node.id)
        assert received[node.id] == expected
