"""What a run keeps: ``retain_outputs`` and ``retain_results`` of ``create_conductor``."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from atomiton_core import (
    ConfigurationError,
    Edge,
    Flow,
    NodeContext,
    NodeSpec,
    NodeStatus,
    create_conductor,
    hookimpl,
    node,
    signals,
)


class Payload:
    """An output value whose lifetime the tests watch through a weak reference."""


alive: dict[str, weakref.ref[Payload]] = {}


@node("keep.make", outputs={"out": Any}, blocking=False)
def make(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    payload = Payload()
    alive[ctx.path] = weakref.ref(payload)
    return {"out": payload}


@node("keep.probe", outputs={"out": Any})
async def probe(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    await asyncio.sleep(0)
    gc.collect()
    return {"out": sorted(path for path, ref in alive.items() if ref() is not None)}


@node("keep.fail", outputs={"out": Any}, blocking=False)
def fail(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    raise ValueError("boom")


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [make, probe, fail]


def _chain(*types: str, **parameters: Any) -> Flow:
    nodes = [NodeSpec(id=f"n{i}", type=t, parameters=parameters) for i, t in enumerate(types)]
    edges = [
        Edge(source=f"n{i}", target=f"n{i + 1}", source_handle="out", target_handle="x")
        for i in range(len(types) - 1)
    ]
    return Flow(id="keep", name="keep", nodes=nodes, edges=edges)


def _run(flow: Flow, **kw: Any) -> Any:
    alive.clear()
    conductor = create_conductor(
        "memory://retention", plugins=[Plugin()], autoload=False, record_runs=False, **kw
    )
    with conductor:
        return conductor.run(flow)


def test_by_default_every_output_is_kept() -> None:
    result = _run(_chain("keep.make", "keep.make", "keep.make", "keep.probe"))
    assert result.outputs["n3"]["out"] == ["n0", "n1", "n2"]
    assert all(result.nodes[f"n{i}"].outputs is not None for i in range(4))


def test_without_retained_outputs_they_go_once_consumed_and_sinks_stay() -> None:
    flow = _chain("keep.make", "keep.make", "keep.make", "keep.probe")
    result = _run(flow, retain_outputs=False)
    assert result.ok
    # n2's payload is the probe's own input; n0 and n1 were released as the chain went on
    assert result.outputs["n3"]["out"] == ["n2"]
    assert all(result.nodes[f"n{i}"].outputs is None for i in range(4))


def test_a_fanned_out_output_lives_until_its_last_consumer_starts() -> None:
    nodes = [NodeSpec(id="src", type="keep.make"), NodeSpec(id="a", type="keep.probe")]
    nodes += [NodeSpec(id="b", type="keep.probe")]
    edges = [
        Edge(source="src", target=t, source_handle="out", target_handle="x") for t in ("a", "b")
    ]
    result = _run(Flow(id="fan", name="fan", nodes=nodes, edges=edges), retain_outputs=False)
    assert result.outputs["a"]["out"] == ["src"] and result.outputs["b"]["out"] == ["src"]


def test_retain_results_errors_keeps_only_what_did_not_complete() -> None:
    flow = _chain("keep.make", "keep.fail", "keep.make", continueOnFail=True)
    seen: list[str] = []

    def on_completed(sender: Any, event: signals.NodeEvent) -> None:
        seen.append(event.path)

    with signals.node_completed.connected_to(on_completed):
        result = _run(flow, retain_results="errors")
    assert seen == ["n0"]  # signals still report every node
    assert set(result.nodes) == {"n1", "n2"}
    assert result.nodes["n1"].status is NodeStatus.FAILED
    assert result.nodes["n2"].status is NodeStatus.SKIPPED


def test_retain_results_errors_still_returns_the_flow_outputs() -> None:
    result = _run(_chain("keep.make", "keep.make"), retain_results="errors")
    assert result.ok and result.nodes == {} and set(result.outputs) == {"n1"}


def test_retain_results_rejects_unknown_values() -> None:
    with pytest.raises(ConfigurationError, match="retain_results"):
        create_conductor("memory://retention", autoload=False, retain_results="some")  # type: ignore[arg-type]
