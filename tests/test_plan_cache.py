"""The conductor's plan cache: an unchanged flow is planned once, a changed one again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atomiton_core import Conductor, NodeContext, Parameters, create_conductor, hookimpl, node
from atomiton_core.conductor import plan as plan_module
from atomiton_core.flow.models import Flow


class Add(Parameters):
    add: int = 1


@node("pc.add", params=Add, outputs={"output": int}, multiple=["input"], blocking=False)
def add(ctx: NodeContext, params: Add, input: list[int] | None = None) -> dict[str, Any]:
    return {"output": sum(input or []) + params.add}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [add]


@pytest.fixture()
def conductor(tmp_path: Path) -> Any:
    with create_conductor(tmp_path / "store", plugins=[Plugin()], autoload=False) as c:
        yield c


@pytest.fixture()
def planned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the flows planned, in order."""
    seen: list[str] = []
    real = plan_module._plan_flow

    def counting(flow: Flow, *args: Any) -> Any:
        seen.append(flow.id)
        return real(flow, *args)

    monkeypatch.setattr(plan_module, "_plan_flow", counting)
    return seen


def _flow(adds: list[int], fid: str = "pc") -> Flow:
    nodes = [
        {"id": f"n{i}", "type": "pc.add", "parameters": {"add": a}} for i, a in enumerate(adds)
    ]
    edges = [
        {
            "source": f"n{i}",
            "target": f"n{i + 1}",
            "sourceHandle": "output",
            "targetHandle": "input",
        }
        for i in range(len(adds) - 1)
    ]
    return Flow.from_data({"id": fid, "name": fid, "nodes": nodes, "edges": edges})


def _last(conductor: Conductor, flow: Any) -> int:
    result = conductor.run(flow)
    assert result.ok, result.error
    return int(result.outputs[f"n{len(result.nodes) - 1}"]["output"])


def test_an_unchanged_flow_is_planned_once(conductor: Conductor, planned: list[str]) -> None:
    flow = _flow([1, 2, 3])
    assert _last(conductor, flow) == 6
    assert _last(conductor, flow) == 6
    assert conductor.prepare(flow) is conductor.prepare(flow)
    assert planned == ["pc"]


def test_an_equal_flow_object_reuses_the_plan(conductor: Conductor, planned: list[str]) -> None:
    assert _last(conductor, _flow([1, 2])) == 3
    assert _last(conductor, _flow([1, 2])) == 3
    assert planned == ["pc"]


def test_a_flow_changed_in_place_is_planned_again(conductor: Conductor, planned: list[str]) -> None:
    flow = _flow([1, 2, 3])
    assert _last(conductor, flow) == 6
    flow.nodes[1].parameters["add"] = 10  # a dict changed in place, no field set anew
    assert _last(conductor, flow) == 14
    flow.nodes[1].parameters["add"] = 2  # back as it was: the first plan is good again
    assert _last(conductor, flow) == 6
    assert planned == ["pc", "pc"]


def test_a_plan_whose_flow_changed_since_is_not_given_to_an_equal_flow(
    conductor: Conductor, planned: list[str]
) -> None:
    first = _flow([1, 2, 3])
    assert _last(conductor, first) == 6
    first.nodes[0].parameters["add"] = 100  # the cached plan's own flow drifts away
    assert _last(conductor, _flow([1, 2, 3])) == 6  # an equal flow: planned anew, runs right
    assert len(planned) == 2


def test_flows_running_stored_flows_are_planned_every_time(
    conductor: Conductor, planned: list[str]
) -> None:
    assert conductor.storage is not None
    conductor.storage.save(_flow([5], fid="inner"))
    outer = Flow.from_data(
        {
            "id": "outer",
            "name": "outer",
            "nodes": [{"id": "sub", "type": "flow", "parameters": {"flowId": "inner"}}],
            "edges": [],
        }
    )
    assert conductor.run(outer).ok
    assert conductor.run(outer).ok
    assert planned.count("outer") == 2  # whether it is valid depends on storage


def test_the_cache_is_bounded(conductor: Conductor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module.PlanCache, "MAX_PLANS", 3)
    for k in range(6):
        conductor.prepare(_flow([k]))
    assert len(conductor.plans) == 3
    monkeypatch.setattr(plan_module.PlanCache, "MAX_NODES", 4)
    conductor.prepare(_flow([1, 2, 3]))
    conductor.prepare(_flow([1, 2, 3, 4, 5]))  # larger than the whole cache: not kept
    assert len(conductor.plans) <= 2


class Holds(Parameters):
    value: Any = None


@node("pc.holds", params=Holds, outputs={"output": Any}, blocking=False)
def holds(ctx: NodeContext, params: Holds) -> dict[str, Any]:
    return {"output": params.value}


def test_a_flow_holding_a_python_object_runs_and_is_planned_every_time(
    tmp_path: Path, planned: list[str]
) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"  # two of them look alike: no digest may tell them apart

    with create_conductor(tmp_path / "s", plugins=[Plugin(), HoldsPlugin()], autoload=False) as c:
        first, second = Opaque(), Opaque()
        for value in (first, second):
            flow = Flow.from_data(
                {"id": "h", "name": "h", "nodes": [{"id": "n", "type": "pc.holds"}], "edges": []}
            )
            flow.nodes[0].parameters["value"] = value
            result = c.run(flow)
            assert result.ok, result.error
            assert result.outputs["n"]["output"] is value
    assert planned == ["h", "h"]


class HoldsPlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [holds]
