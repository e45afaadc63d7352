"""Every node's CPU time: inline and async nodes measured on the loop's thread, containers and
sub-flows with their children's, real clocks (the nodes burn CPU until the thread's clock has
moved; figures are checked against that and against wall time, with margins)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    Conductor,
    NodeContext,
    Parameters,
    create_conductor,
    hookimpl,
    loads_flow,
    wire,
)
from atomiton_core import node as node_type


class Burn(Parameters):
    ms: float = 30.0
    steps: int = 1
    pause: float = 0.0


def _burn(ms: float) -> None:
    start = time.thread_time()
    while (time.thread_time() - start) * 1000 < ms:
        pass


@node_type("cpu.inline", params=Burn, outputs={"output": int}, blocking=False)
def burn_inline(ctx: NodeContext, params: Burn) -> dict[str, Any]:
    _burn(params.ms)
    return {"output": 1}


@node_type("cpu.nap", params=Burn, outputs={"output": int}, blocking=False)
def nap_inline(ctx: NodeContext, params: Burn) -> dict[str, Any]:
    """Wrongly blocking: wall time passes, almost no CPU."""
    time.sleep(params.pause)
    return {"output": 1}


@node_type("cpu.async", params=Burn, outputs={"output": int})
async def burn_async(ctx: NodeContext, params: Burn) -> dict[str, Any]:
    for _ in range(params.steps):
        _burn(params.ms / params.steps)
        await asyncio.sleep(params.pause)
    return {"output": 1}


@node_type("cpu.forever", outputs={"output": int})
async def forever(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    try:
        await asyncio.Event().wait()
    finally:
        _burn(5)  # cleanup work after the cancellation is still this node's
    return {"output": 1}


@node_type("cpu.fails", params=Burn, outputs={"output": int})
async def fails(ctx: NodeContext, params: Burn) -> dict[str, Any]:
    _burn(params.ms)
    await asyncio.sleep(0)
    raise ValueError("no")


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [burn_inline, nap_inline, burn_async, forever, fails]


def _flow(nodes: list[dict[str, Any]], fid: str = "cpu") -> Any:
    return loads_flow(json.dumps({"id": fid, "name": fid, "nodes": nodes}))


@pytest.fixture()
def conductor(tmp_path: Path) -> Any:
    with create_conductor(str(tmp_path / "s"), plugins=[Plugin()]) as c:
        yield c


def test_an_inline_node_reports_its_cpu_not_its_wall_time(conductor: Conductor) -> None:
    result = conductor.run(
        _flow(
            [
                {"id": "burn", "type": "cpu.inline", "parameters": {"ms": 40}},
                {"id": "nap", "type": "cpu.nap", "parameters": {"pause": 0.2}},
            ]
        )
    )
    assert result.ok, result.error
    burn, nap = result.nodes["burn"], result.nodes["nap"]
    assert burn.cpu_ms is not None and burn.duration_ms is not None
    assert 40 <= burn.cpu_ms <= burn.duration_ms + 1
    assert nap.cpu_ms is not None and nap.duration_ms is not None
    assert nap.duration_ms >= 200 and nap.cpu_ms < 50  # it slept: wall time, not CPU
    assert wire.dump(result)["nodes"]["burn"]["cpuMs"] == burn.cpu_ms


@pytest.mark.parametrize("settings", [{}, {"timeout": 10_000}, {"retries": 1}])
def test_an_async_node_reports_the_cpu_of_its_own_steps(
    conductor: Conductor, settings: dict[str, Any]
) -> None:
    """Three steps of 20 ms CPU with 0.1 s waits between them; an inline neighbour burns
    meanwhile, and is not counted in the async node's figure."""
    params = {"ms": 60, "steps": 3, "pause": 0.1, **settings}
    result = conductor.run(
        _flow(
            [
                {"id": "a", "type": "cpu.async", "parameters": params},
                {"id": "other", "type": "cpu.async", "parameters": {"ms": 100, "steps": 2}},
            ]
        )
    )
    assert result.ok, result.error
    a = result.nodes["a"]
    assert a.cpu_ms is not None and a.duration_ms is not None
    assert 60 <= a.cpu_ms < 90, a.cpu_ms  # not the neighbour's 100 ms
    assert a.duration_ms >= 300


def test_a_failing_async_node_keeps_its_cpu_time(conductor: Conductor) -> None:
    result = conductor.run(_flow([{"id": "f", "type": "cpu.fails", "parameters": {"ms": 30}}]))
    assert result.status == "failed"
    f = result.nodes["f"]
    assert f.status == "failed" and f.error is not None and "no" in f.error.message
    assert f.cpu_ms is not None and f.cpu_ms >= 30


def test_a_cancelled_async_node_counts_its_cleanup(conductor: Conductor) -> None:
    async def go() -> Any:
        execution = conductor.start(_flow([{"id": "f", "type": "cpu.forever"}]))
        async for event in execution.events():
            if event.type == "node.started":
                execution.cancel()
        return await execution.result()

    result = asyncio.run(go())
    assert result.status == "cancelled"
    f = result.nodes["f"]
    assert f.status == "cancelled"
    assert f.cpu_ms is not None and f.cpu_ms >= 5


def test_containers_and_subflows_report_their_childrens_cpu(conductor: Conductor) -> None:
    assert conductor.storage is not None
    conductor.storage.save(
        _flow([{"id": "x", "type": "cpu.inline", "parameters": {"ms": 20}}], fid="sub")
    )
    result = conductor.run(
        _flow(
            [
                {
                    "id": "g",
                    "type": "group",
                    "nodes": [
                        {"id": "i", "type": "cpu.inline", "parameters": {"ms": 20}},
                        {"id": "a", "type": "cpu.async", "parameters": {"ms": 20}},
                    ],
                },
                {
                    "id": "l",
                    "type": "loop",
                    "parameters": {"array": [1, 2, 3]},
                    "nodes": [{"id": "i", "type": "cpu.inline", "parameters": {"ms": 10}}],
                },
                {"id": "s", "type": "flow", "parameters": {"flowId": "sub"}},
            ]
        )
    )
    assert result.ok, result.error
    nodes = result.nodes
    g, loop, s = nodes["g"], nodes["l"], nodes["s"]
    assert g.cpu_ms == pytest.approx(nodes["g/i"].cpu_ms + nodes["g/a"].cpu_ms)  # type: ignore[operator]
    assert g.cpu_ms is not None and g.cpu_ms >= 40
    iterations = [r.cpu_ms for p, r in nodes.items() if p.startswith("l/") and p.endswith("/i")]
    assert len(iterations) == 3
    assert loop.cpu_ms == pytest.approx(sum(iterations))  # type: ignore[arg-type]
    assert s.cpu_ms == pytest.approx(nodes["s/x"].cpu_ms)
    assert s.cpu_ms is not None and 20 <= s.cpu_ms < 40


def test_cpu_time_can_be_turned_off(tmp_path: Path) -> None:
    flow = _flow(
        [
            {"id": "i", "type": "cpu.inline", "parameters": {"ms": 5}},
            {"id": "a", "type": "cpu.async", "parameters": {"ms": 5}},
        ]
    )
    with create_conductor(str(tmp_path / "s"), plugins=[Plugin()], cpu_time=False) as c:
        result = c.run(flow)
    assert result.ok
    assert result.nodes["i"].cpu_ms is None and result.nodes["a"].cpu_ms is None
