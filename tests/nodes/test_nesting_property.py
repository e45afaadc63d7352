"""Hypothesis: random nestings of group / loop / parallel run every node as often as the
structure implies, and give the same result whatever the concurrency."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomiton_core import Flow


@st.composite
def nested(
    draw: st.DrawFn, depth: int = 0, counter: list[int] | None = None, times: int = 1
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    counter = counter if counter is not None else [0]
    nodes: list[dict[str, Any]] = []
    expected: dict[str, int] = {}
    for _ in range(draw(st.integers(1, 3))):
        counter[0] += 1
        node_id = f"n{counter[0]}"
        kind = (
            draw(st.sampled_from(["leaf", "leaf", "group", "loop", "parallel"]))
            if depth < 3
            else "leaf"
        )
        if kind == "leaf":
            nodes.append({"id": node_id, "type": "test.record"})
            expected[node_id] = times
            continue
        k = 1 if kind == "group" else draw(st.integers(0, 3))
        children, inner = draw(nested(depth + 1, counter, times * k))
        spec: dict[str, Any] = {"id": node_id, "type": kind, "nodes": children, "edges": []}
        if kind == "loop":
            spec["parameters"] = {"array": list(range(k)), "concurrency": draw(st.integers(1, 3))}
        elif kind == "parallel":
            spec["parameters"] = {
                "operations": list(range(k)),
                "concurrency": draw(st.integers(1, 3)),
            }
        else:
            spec["parameters"] = {"parallel": draw(st.booleans())}
        leaves = [c for c in children if c["type"] == "test.record"]
        if len(leaves) >= 2 and draw(st.booleans()):
            spec["edges"].append(
                {"source": leaves[0]["id"], "target": leaves[1]["id"], "targetHandle": "deps"}
            )
        nodes.append(spec)
        expected[node_id] = times
        expected.update(inner)
    return nodes, expected


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(nested(), st.integers(1, 4))
def test_every_node_runs_as_often_as_the_structure_implies(
    conductor_factory: Any, structure: tuple[list[dict[str, Any]], dict[str, int]], concurrency: int
) -> None:
    nodes, expected = structure
    outputs = []
    for limit in (1, concurrency, None):
        log: list[Any] = []
        conductor = conductor_factory(config={"log": log})
        flow = Flow.model_validate(
            {
                "id": "nest",
                "name": "Nest",
                "nodes": nodes,
                "settings": {"runtime": {"concurrency": limit}},
            }
        )
        result = conductor.run(flow)
        assert result.ok, result.error
        runs = Counter(path.rsplit("/", 1)[-1] for path, _ in log)
        for leaf in (n["id"] for n in _walk(nodes) if n["type"] == "test.record"):
            assert runs[leaf] == expected[leaf], (leaf, expected[leaf], runs)
        outputs.append(result.outputs)
    assert outputs[0] == outputs[1] == outputs[2]


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in nodes:
        out.append(n)
        out.extend(_walk(n.get("nodes") or []))
    return out
