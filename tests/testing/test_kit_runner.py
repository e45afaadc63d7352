"""run_node / arun_node / NodeRunner: one node through the real conductor."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import BaseModel, Field

from atomiton_core import (
    ExecutionError,
    ExpressionError,
    FlowValidationError,
    NodeContext,
    NodeTimeout,
    OutputContractError,
    node,
)
from atomiton_core.nodes.builtin.data import transform
from atomiton_core.nodes.builtin.group import group
from atomiton_core.testing import NodeRunner, arun_node, run_node
from atomiton_core.testing.runner import is_wrapped_exception


class ScaleParams(BaseModel):
    factor: float = Field(2.0, ge=0)


@node("kit.scale", params=ScaleParams, outputs={"value": float}, blocking=False)
def scale(ctx: NodeContext, params: ScaleParams, value: float) -> dict[str, Any]:
    return {"value": value * params.factor}


@node("kit.collect", outputs={"items": list}, multiple=("parts",), blocking=False)
def collect(ctx: NodeContext, params: BaseModel, parts: list[Any]) -> dict[str, Any]:
    return {"items": list(parts)}


@node("kit.identity", outputs={"same": bool}, blocking=False)
def identity(ctx: NodeContext, params: BaseModel, thing: Any) -> dict[str, Any]:
    return {"same": thing is SENTINEL}


@node("kit.boom", outputs={"out": Any})
def boom(ctx: NodeContext, params: BaseModel, x: Any = None) -> dict[str, Any]:
    raise KeyError("missing")


@node("kit.sleepy", outputs={"out": Any})
async def sleepy(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    await asyncio.sleep(10)
    return {"out": 1}


SENTINEL = object()


def test_run_node_returns_outputs_and_validates_params() -> None:
    assert run_node(scale, {"factor": 3}, value=2) == {"value": 6}
    assert run_node(scale, value=2) == {"value": 4}
    with pytest.raises(FlowValidationError, match="factor"):
        run_node(scale, {"factor": -1}, value=2)
    with pytest.raises(FlowValidationError, match="MISSING_REQUIRED_INPUT"):
        run_node(scale)


def test_run_node_by_id_and_builtin() -> None:
    out = run_node("transform", {"operation": "map", "expression": "item * 2"}, input=[1, 2])
    assert out == {"output": [2, 4]}
    with pytest.raises(ExpressionError):
        run_node(transform, {"operation": "map", "expression": "item.x()"}, input=[1])


def test_inputs_arrive_by_reference_and_multiple_ports_take_lists() -> None:
    assert run_node(identity, thing=SENTINEL) == {"same": True}
    assert run_node(collect, parts=[1, "a", None]) == {"items": [1, "a", None]}
    with pytest.raises(TypeError, match="several edges"):
        run_node(collect, parts=1)
    # a port named like an option of run_node goes through inputs=
    assert run_node(collect, inputs={"parts": [3]}) == {"items": [3]}


def test_errors_come_out_as_the_conductor_made_them() -> None:
    with pytest.raises(ExecutionError) as info:
        run_node(boom)
    assert is_wrapped_exception(info.value)
    assert info.value.context["exception_type"] == "KeyError"
    t0 = time.perf_counter()
    with pytest.raises(NodeTimeout):
        run_node(sleepy, {"timeout": 50})
    assert time.perf_counter() - t0 < 2


def test_undeclared_output_is_an_output_contract_error() -> None:
    @node("kit.extra", outputs={"out": int}, blocking=False)
    def extra(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
        return {"out": 1, "surprise": 2}

    with pytest.raises(OutputContractError, match="surprise"):
        run_node(extra)


def test_container_gets_an_echo_child_or_given_children() -> None:
    assert run_node(group, a=1, b=[2]) == {"echo": {"a": 1, "b": [2]}}
    children = (
        [{"id": "t", "type": "transform", "parameters": {"operation": "reverse"}}],
        [
            {"source": "node", "sourceHandle": "xs", "target": "t", "targetHandle": "input"},
            {"source": "t", "sourceHandle": "output", "target": "node", "targetHandle": "out"},
        ],
    )
    assert run_node(group, children=children, xs=[1, 2, 3]) == {"out": [3, 2, 1]}


def test_arun_node_and_running_loop_guard() -> None:
    async def main() -> None:
        assert await arun_node(scale, {"factor": 0.5}, value=4) == {"value": 2}
        with pytest.raises(ExecutionError, match="running event loop"):
            run_node(scale, value=1)

    asyncio.run(main())


def test_node_runner_reuses_one_conductor() -> None:
    with NodeRunner([scale, collect]) as runner:
        for i in range(20):
            assert runner.run(scale, {"factor": 1}, {"value": i}) == {"value": i}
        assert "kit.collect" in runner.catalogue
        assert runner.catalogue.get("kit.scale") is scale
        with pytest.raises(ValueError, match="not the one"):
            runner.resolve(sleepy)


def test_public_names_are_exactly_all() -> None:
    import atomiton_core.testing as kit

    for name in kit.__all__:
        assert getattr(kit, name) is not None
    with pytest.raises(AttributeError):
        kit.not_a_name  # noqa: B018
    assert set(kit.__all__) <= set(dir(kit))
