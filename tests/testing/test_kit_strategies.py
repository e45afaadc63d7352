"""The strategies draw only what is valid: params through the model, flows through validate."""

from __future__ import annotations

import enum
import typing
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from atomiton_core import Catalogue, NodeContext, hookimpl, node, validate
from atomiton_core.flow.models import Flow, NodeSpec
from atomiton_core.flow.validation import find_cycles
from atomiton_core.testing import StrategyError, flows, inputs_for, params_for


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = Field(0, ge=0, le=3)
    tags: list[str] = Field(default_factory=list, max_length=2)


class RichParams(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    ratio: float = Field(0.5, ge=0, le=1)
    count: int = Field(..., gt=0, lt=10)
    mode: Literal["fast", "slow"] = "fast"
    colour: Colour = Colour.RED
    label: str | None = Field(None, min_length=2, max_length=5)
    inner: Inner = Field(default_factory=Inner)
    maybe_inner: Inner | None = None
    items: list[Inner] = Field(default_factory=list, max_length=3)
    pair: tuple[int, str] = (1, "a")
    extra_data: dict[str, Any] = Field(default_factory=dict)


@node("kit.rich", params=RichParams, outputs={"out": Any}, blocking=False)
def rich(ctx: NodeContext, params: RichParams, x: Any = None) -> dict[str, Any]:
    return {"out": x}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(params_for(rich))
def test_params_for_draws_only_valid_parameters(params: dict[str, Any]) -> None:
    model = RichParams.model_validate(params)
    assert 0 < model.count < 10 and 0 <= model.ratio <= 1
    assert model.label is None or 2 <= len(model.label) <= 5
    assert all(0 <= i.level <= 3 for i in model.items)
    assert set(params) <= {info.alias or name for name, info in RichParams.model_fields.items()}
    assert "count" in params  # required
    # a flow using them validates too
    flow = Flow(id="f", name="f", nodes=[NodeSpec(id="n", type="kit.rich", parameters=params)])
    assert validate(flow, Catalogue({"kit.rich": rich})).ok


def test_params_for_covers_optional_and_nested_fields() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
    @given(params_for(rich))
    def collect(params: dict[str, Any]) -> None:
        seen.update(params)
        if isinstance(params.get("maybeInner"), dict):
            seen.add("maybeInner:dict")

    collect()
    assert {"ratio", "mode", "colour", "label", "inner", "items", "maybeInner:dict"} <= seen


def test_params_for_never_draws_reserved_parameters() -> None:
    class Loose(BaseModel):
        size: int = 1

    @node("kit.loose", params=Loose, blocking=False)
    def loose(ctx: NodeContext, params: Loose) -> dict[str, Any]:
        return {}

    @settings(max_examples=50)
    @given(params_for(loose))
    def check(params: dict[str, Any]) -> None:
        assert set(params) <= {"size"}

    check()


def test_params_for_recursive_model_is_a_clear_error() -> None:
    class Tree(BaseModel):
        children: list[Tree] = Field(default_factory=list)

    class TreeParams(BaseModel):
        tree: Tree = Field(default_factory=Tree)

    @node("kit.tree", params=TreeParams, blocking=False)
    def tree(ctx: NodeContext, params: TreeParams) -> dict[str, Any]:
        return {}

    with pytest.raises(StrategyError, match=r"kit\.tree.*recursive.*params=st\.fixed_dictionaries"):
        params_for(tree)


class Opaque:
    """A type the kit knows nothing about (and hypothesis cannot build)."""

    def __init__(self, secret):  # type: ignore[no-untyped-def]
        self.secret = secret


@node("kit.typed", outputs={"out": Any}, multiple=("many",), blocking=False)
def typed(
    ctx: NodeContext,
    params: BaseModel,
    a: int,
    b: str | None,
    c: list[float],
    d: dict[str, Any],
    e: Annotated[bool, "flag"],
    f: Literal[1, 2],
    many: int,
    g: Any = None,
    h: tuple[int, ...] = (),
) -> dict[str, Any]:
    return {"out": a}


@settings(max_examples=100)
@given(inputs_for(typed))
def test_inputs_for_follows_port_types(inputs: dict[str, Any]) -> None:
    assert {"a", "b", "c", "d", "e", "f", "many"} <= set(inputs) <= {*typed.inputs}
    assert isinstance(inputs["a"], int) and not isinstance(inputs["a"], bool)
    assert inputs["b"] is None or isinstance(inputs["b"], str)
    assert all(isinstance(x, float) and x == x for x in inputs["c"])
    assert isinstance(inputs["d"], dict) and isinstance(inputs["e"], bool)
    assert inputs["f"] in (1, 2)
    assert isinstance(inputs["many"], list) and inputs["many"]
    assert "h" not in inputs or isinstance(inputs["h"], tuple)


def test_inputs_for_unknown_type_names_the_hook() -> None:
    @node("kit.opaque", blocking=False)
    def opaque(ctx: NodeContext, params: BaseModel, thing: Opaque) -> dict[str, Any]:
        return {}

    @settings(max_examples=1, database=None)
    @given(inputs_for(opaque))
    def draw(inputs: dict[str, Any]) -> None:
        pass

    with pytest.raises(StrategyError, match=r"'Opaque'.*atomiton_hypothesis_strategies"):
        draw()


def test_inputs_for_uses_plugin_strategies() -> None:
    @node("kit.opaque2", blocking=False)
    def opaque(ctx: NodeContext, params: BaseModel, thing: Opaque) -> dict[str, Any]:
        return {}

    class StrategiesPlugin:
        @hookimpl
        def atomiton_hypothesis_strategies(self) -> dict[str, Any]:
            return {"Opaque": st.builds(Opaque, st.integers())}

    catalogue = Catalogue.load([StrategiesPlugin()], autoload=False)

    @settings(max_examples=10)
    @given(inputs_for(opaque, plugin_manager=catalogue.plugin_manager))
    def check(inputs: dict[str, Any]) -> None:
        assert isinstance(inputs["thing"], Opaque)

    check()


# -- flows -----------------------------------------------------------------------------------
@node("kit.source", outputs={"out": int, "other": str}, blocking=False)
def source(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    return {"out": 1, "other": "x"}


@node("kit.pipe", params=Inner, outputs={"out": Any}, blocking=False)
def pipe(ctx: NodeContext, params: Inner, input: Any, extra: Any = None) -> dict[str, Any]:
    return {"out": input}


@node("kit.join", outputs={"out": list}, multiple=("parts",), blocking=False)
def join(ctx: NodeContext, params: BaseModel, parts: list[Any]) -> dict[str, Any]:
    return {"out": parts}


def _catalogue() -> Catalogue:
    class Kit:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [source, pipe, join]

    return Catalogue.load([Kit()], autoload=False)


CATALOGUE = _catalogue()


def _acyclic(nodes: list[NodeSpec], edges: typing.Any) -> bool:
    succ: dict[str, list[str]] = {n.id: [] for n in nodes}
    for e in edges:
        if e.source in succ and e.target in succ:
            succ[e.source].append(e.target)
    if find_cycles(succ):
        return False
    return all(_acyclic(n.nodes or [], n.edges or []) for n in nodes)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(flows(CATALOGUE, ["kit.source", "kit.pipe", "kit.join"], max_nodes=8))
def test_flows_are_valid_dags(flow: Flow) -> None:
    report = validate(flow, CATALOGUE)
    assert report.ok, str(report)
    assert not report.warnings
    assert _acyclic(flow.nodes, flow.edges)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(flows(CATALOGUE, ["kit.source", "kit.pipe", "kit.join", "group"], nested=2))
def test_nested_flows_are_valid_dags(flow: Flow) -> None:
    report = validate(flow, CATALOGUE)
    assert report.ok, str(report)
    assert _acyclic(flow.nodes, flow.edges)


def test_nested_flows_do_nest() -> None:
    depths: set[int] = set()

    def depth(nodes: list[NodeSpec]) -> int:
        return max((1 + depth(n.nodes) for n in nodes if n.nodes), default=0)

    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(flows(CATALOGUE, ["kit.source", "kit.pipe", "group"], nested=2))
    def check(flow: Flow) -> None:
        depths.add(depth(flow.nodes))

    check()
    assert {0, 1} <= depths


def test_flows_run() -> None:
    from atomiton_core import ExecutionStatus, create_conductor

    conductor = create_conductor(
        "memory://kit-flows-run", plugins=[_KitPlugin()], autoload=False, record_runs=False
    )

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(flows(conductor.catalogue, ["kit.source", "kit.pipe", "kit.join", "group"], nested=1))
    def check(flow: Flow) -> None:
        assert conductor.run(flow).status is ExecutionStatus.COMPLETED

    try:
        check()
    finally:
        conductor.close()


class _KitPlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [source, pipe, join]


def test_flows_rejects_impossible_requests() -> None:
    with pytest.raises(StrategyError, match="not in the catalogue"):
        flows(CATALOGUE, ["nope"])
    with pytest.raises(StrategyError, match="source node type"):
        flows(CATALOGUE, ["kit.pipe"])


@node("kit.count", outputs={"n": int}, blocking=False)
def count(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    return {"n": 3}


@node("kit.word", outputs={"text": str}, blocking=False)
def word(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    return {"text": "abc"}


@node("kit.double", outputs={"n": int}, blocking=False)
def double(ctx: NodeContext, params: BaseModel, n: int) -> dict[str, Any]:
    return {"n": n * 2}


@node("kit.shout", outputs={"text": str}, blocking=False)
def shout(ctx: NodeContext, params: BaseModel, text: str, times: float = 1.0) -> dict[str, Any]:
    return {"text": text.upper() * int(times)}


class _TypedKit:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [count, word, double, shout]


def test_flows_join_only_ports_of_compatible_types() -> None:
    """An int output feeds int and float inputs, never a str one (and the reverse): every
    drawn flow runs to the end, none stopped by the check of an input's type."""
    from atomiton_core import ExecutionStatus, create_conductor

    conductor = create_conductor(
        "memory://kit-typed", plugins=[_TypedKit()], autoload=False, record_runs=False
    )
    catalogue = conductor.catalogue
    types = ["kit.count", "kit.word", "kit.double", "kit.shout"]
    joined: set[tuple[str, str]] = set()

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(flows(catalogue, types, max_nodes=6))
    def check(flow: Flow) -> None:
        kinds = {n.id: n.type for n in flow.nodes}
        for e in flow.edges:
            pair = (kinds[e.source], f"{kinds[e.target]}.{e.target_handle}")
            assert pair not in {("kit.word", "kit.double.n"), ("kit.count", "kit.shout.text")}
            assert pair not in {("kit.double", "kit.shout.text"), ("kit.shout", "kit.double.n")}
            joined.add(pair)
        result = conductor.run(flow)
        assert result.status is ExecutionStatus.COMPLETED, result.error

    try:
        check()
    finally:
        conductor.close()
    assert ("kit.count", "kit.shout.times") in joined  # int into a float port is drawn
    assert ("kit.word", "kit.shout.text") in joined and ("kit.count", "kit.double.n") in joined
