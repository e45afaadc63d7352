"""check_node finds each broken rule, names it, and passes nodes that keep the contract."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from atomiton_core import ExecutionError, NodeContext, node
from atomiton_core.testing import RULES, ContractViolation, NodeContractTests, check_node
from atomiton_core.testing.contract import checkable_classes, same


class Factor(BaseModel):
    factor: int = Field(1, ge=-3, le=3)


@node("good.scale", params=Factor, outputs={"values": list, "total": float}, pure=True)
def good_scale(ctx: NodeContext, params: Factor, values: list[float]) -> dict[str, Any]:
    scaled = [v * params.factor for v in values]
    return {"values": scaled, "total": float(sum(scaled))}


@node("good.strict", outputs={"out": int}, blocking=False, pure=True)
def good_strict(ctx: NodeContext, params: BaseModel, n: int) -> dict[str, Any]:
    if n < 0:
        raise ExecutionError(f"n must not be negative, got {n}", hint="pass n >= 0")
    return {"out": n}


@node("good.wait", outputs={"out": Any})
async def good_wait(ctx: NodeContext, params: BaseModel, x: Any = None) -> dict[str, Any]:
    await asyncio.sleep(0.3)
    return {"out": x}


@node("bad.extra", outputs={"out": int}, blocking=False)
def bad_extra(ctx: NodeContext, params: BaseModel, n: int) -> dict[str, Any]:
    return {"out": n, "debug": True}


@node("bad.type", outputs={"out": int}, blocking=False)
def bad_type(ctx: NodeContext, params: BaseModel, n: int) -> dict[str, Any]:
    return {"out": str(n) if n > 10 else n}


@node("bad.not-dict", outputs={"out": int}, blocking=False)
def bad_not_dict(ctx: NodeContext, params: BaseModel) -> Any:
    return [1]


@node("bad.keyerror", outputs={"out": Any})
def bad_keyerror(ctx: NodeContext, params: BaseModel, record: dict[str, int]) -> dict[str, Any]:
    return {"out": record["id"]}


@node("bad.mutates", outputs={"out": list}, blocking=False)
def bad_mutates(ctx: NodeContext, params: BaseModel, items: list[int]) -> dict[str, Any]:
    items.sort()
    return {"out": items}


@node("bad.impure", outputs={"out": float}, blocking=False, pure=True)
def bad_impure(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    return {"out": random.random()}


@node("bad.cacheable", outputs={"out": float}, blocking=False, pure=True, cacheable=True)
def bad_cacheable(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    """Declared cacheable, but not deterministic: a cache would serve stale outputs."""
    return {"out": random.random()}


@node("bad.stubborn", outputs={"out": Any})
async def bad_stubborn(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        await asyncio.sleep(1.5)  # swallows the cancellation for a while
    return {"out": 1}


_released = threading.Event()


@node("sync.blocking", outputs={"out": Any})
def sync_blocking(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    _released.wait(5)
    return {"out": 1}


def _violation(node_type: Any, rule: str, **kw: Any) -> ContractViolation:
    kw.setdefault("max_examples", 30)
    with pytest.raises(ContractViolation) as info:
        check_node(node_type, rules=[rule], **kw)
    err = info.value
    assert err.rule == rule and err.node_type == node_type.id
    text = str(err)
    assert f"node type {node_type.id!r} broke the rule {rule!r}" in text
    assert "params:" in text and "inputs:" in text and "hint:" in text
    return err


@pytest.mark.parametrize("node_type", [good_scale, good_strict], ids=lambda t: t.id)
def test_good_nodes_pass_every_rule(node_type: Any) -> None:
    check_node(node_type, max_examples=20)


def test_undeclared_port_breaks_declared_outputs() -> None:
    err = _violation(bad_extra, "declared-outputs")
    assert "['debug']" in err.problem
    assert err.inputs == {"n": 0}  # shrunk to the minimal example


def test_wrong_type_breaks_declared_outputs_minimal_example() -> None:
    err = _violation(bad_type, "declared-outputs")
    assert "declared integer but the node returned str" in err.problem
    assert err.inputs == {"n": 11}


def test_non_dict_breaks_declared_outputs() -> None:
    assert "returned list" in _violation(bad_not_dict, "declared-outputs").problem


def test_bare_exception_breaks_atomiton_errors() -> None:
    err = _violation(bad_keyerror, "atomiton-errors")
    assert "KeyError" in err.problem and err.inputs == {"record": {}}
    # the rule is not checked when not asked for
    check_node(bad_keyerror, rules=["declared-outputs"], max_examples=5)


def test_mutation_breaks_inputs_not_mutated() -> None:
    err = _violation(bad_mutates, "inputs-not-mutated")
    assert err.inputs["items"] != sorted(err.inputs["items"])


def test_randomness_breaks_pure_deterministic() -> None:
    assert "two runs differ" in _violation(bad_impure, "pure-deterministic").problem


def test_a_wrongly_cacheable_node_is_found_by_its_authors_tests() -> None:
    """The kit runs cached nodes for real (its conductor has no cache), so a cacheable type
    that is not deterministic breaks pure-deterministic."""
    assert bad_cacheable.default_settings == {"cache": True}
    assert "two runs differ" in _violation(bad_cacheable, "pure-deterministic").problem


@pytest.mark.slow
def test_ignoring_cancellation_breaks_timeout() -> None:
    t0 = time.perf_counter()
    err = _violation(bad_stubborn, "timeout", timeout=0.1, margin=0.5, max_examples=3)
    assert "timeout=100 ms" in err.problem
    assert time.perf_counter() - t0 < 20


def test_slow_but_cancellable_node_passes_timeout() -> None:
    check_node(good_wait, rules=["timeout"], timeout=0.05, margin=0.5, max_examples=3)


def test_blocking_sync_node_is_reported_in_time_though_its_thread_runs_on() -> None:
    # documented limitation: the conductor answers on time, the worker thread is not stopped
    try:
        check_node(sync_blocking, rules=["timeout"], timeout=0.05, margin=0.5, max_examples=2)
    finally:
        _released.set()


def test_strategy_overrides_and_unknown_rules() -> None:
    check_node(
        good_scale,
        params=st.just({"factor": 2}),
        inputs=st.fixed_dictionaries({"values": st.lists(st.integers(0, 9), max_size=3)}),
        max_examples=5,
    )
    with pytest.raises(ValueError, match="unknown rule"):
        check_node(good_scale, rules=["fast"])
    assert set(RULES) == {
        "declared-outputs",
        "atomiton-errors",
        "inputs-not-mutated",
        "pure-deterministic",
        "timeout",
    }


def test_helpers() -> None:
    assert same({"a": [float("nan"), 1]}, {"a": [float("nan"), 1]})
    assert not same([1], [1, 2]) and not same(1, "1") and same(1, 1.0)
    assert checkable_classes(Any) is None
    assert checkable_classes(int | None) == (int, type(None))
    assert checkable_classes(list[int]) == (list,)
    assert float in checkable_classes(float) and int in checkable_classes(float)  # type: ignore[operator]


class TestGoodNodes(NodeContractTests):
    """The abstract suite, inherited in one line; the rest only tunes it."""

    node_types = [good_scale, good_strict, good_wait]
    max_examples = 5
    timeout = 0.1
