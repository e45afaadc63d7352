"""Per-flow statistics (atomiton_core.storage.stats) over runs a real conductor recorded.

Every figure is checked against one computed here from the records as ``RunRecord`` reads
them back (``storage.record(id).to_result()``), with the nearest-rank rule written out again.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from atomiton_core import (
    Conductor,
    ExecutionResult,
    NodeContext,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
)
from atomiton_core.errors import ConfigurationError, FlowNotFound
from atomiton_core.storage.flows import FlowStorage
from atomiton_core.storage.stats import FlowStats, percentile

#: How long the slow node sleeps (inside the node: the test waits on nothing else).
SLOW_MS = 25


class SleepParams(BaseModel):
    ms: float = 1


@node("stats.sleep", params=SleepParams, outputs={"output": object}, blocking=False)
async def sleep_node(ctx: NodeContext, params: SleepParams, input: Any = None) -> dict[str, Any]:
    """Take ``ms`` milliseconds."""
    await asyncio.sleep(params.ms / 1000)
    return {"output": input}


@node("stats.flaky", outputs={"output": object}, blocking=False)
def flaky_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    """Fail when the run's variable ``fail`` is true."""
    if ctx.variables.get("fail"):
        raise RuntimeError("asked to fail")
    return {"output": input}


@node("stats.big", outputs={"output": object}, blocking=False)
def big_node(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    """An output too large to sit in the log: stored as a blob."""
    return {"output": b"x" * 100_000}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [sleep_node, flaky_node, big_node]


FLOW = f"""
id: profiled
name: Profiled
variables: {{fail: {{type: boolean, defaultValue: false}}}}
nodes:
  - {{id: start, type: edit-fields, parameters: {{values: {{n: 1}}}}}}
  - {{id: memo, type: edit-fields, parameters: {{values: {{m: 2}}, cache: true}}}}
  - {{id: slow, type: stats.sleep, parameters: {{ms: {SLOW_MS}}}}}
  - {{id: flaky, type: stats.flaky, parameters: {{retries: 1, retryDelay: 0}}}}
  - {{id: after, type: edit-fields, parameters: {{values: {{done: true}}}}}}
  - id: each
    type: loop
    parameters: {{loopType: times, count: 3}}
    nodes:
      - {{id: step, type: edit-fields, parameters: {{values: {{s: 1}}}}}}
edges:
  - {{source: start, target: slow}}
  - {{source: slow, target: flaky}}
  - {{source: flaky, target: after}}
"""
#: The runs, oldest first: ``flaky`` fails in 2 of 5.
FAILS = [False, True, False, True, False]


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


def make_conductor(url: str, **kw: Any) -> Conductor:
    return create_conductor(url, plugins=[Plugin()], autoload=False, **kw)


@pytest.fixture(params=["file", "memory"])
def recorded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Conductor]:
    """Five runs of FLOW recorded by a real conductor: on local disk (one log file per run)
    and in memory (an object store: the log in numbered segments)."""
    url = str(tmp_path / "store") if request.param == "file" else f"memory://stats/{tmp_path.name}"
    conductor = make_conductor(url)
    flow = loads_flow(FLOW)
    for fail in FAILS:
        conductor.run(flow, {"fail": fail})
    yield conductor
    conductor.close()


def stored_results(storage: FlowStorage, flow_id: str) -> list[ExecutionResult]:
    """The runs of a flow as the record reader gives them, newest first."""
    return [storage.record(r.execution_id).to_result() for r in storage.runs(flow_id=flow_id)]


def test_figures_match_the_records(recorded: Conductor) -> None:
    storage = recorded.storage
    assert storage is not None
    stats = storage.stats("profiled")
    results = stored_results(storage, "profiled")
    assert len(results) == 5
    assert stats.runs == stats.finished == 5 and stats.unfinished == 0
    assert stats.statuses == {"completed": 3, "failed": 2}
    durations = [r.duration_ms for r in results if r.duration_ms is not None]
    assert stats.p50_ms == nearest_rank(durations, 50)
    assert stats.p95_ms == nearest_rank(durations, 95) == max(durations)
    assert stats.since == min(r.started_at for r in results if r.started_at is not None)

    flaky = stats.node("flaky")
    assert flaky.node_type == "stats.flaky"
    assert (flaky.runs, flaky.ran, flaky.failed) == (5, 5, 2)
    assert flaky.failure_rate == 0.4
    assert flaky.mean_attempts == (1 + 2 + 1 + 2 + 1) / 5  # one retry when it fails
    flaky_ms = [r.nodes["flaky"].duration_ms for r in results]
    assert flaky.p50_ms == nearest_rank([d for d in flaky_ms if d is not None], 50)

    slow = stats.node("slow")
    slow_ms = [r.nodes["slow"].duration_ms for r in results]
    assert all(d is not None and d >= SLOW_MS for d in slow_ms), slow_ms
    assert slow.p50_ms == nearest_rank([d for d in slow_ms if d is not None], 50)
    assert slow.p95_ms == max(d for d in slow_ms if d is not None)
    assert slow.failure_rate == 0.0 and slow.mean_attempts == 1.0
    start_ms = stats.node("start").p50_ms
    assert slow.p50_ms is not None and start_ms is not None and slow.p50_ms > start_ms

    # the node after the flaky one did not run when it failed
    after = stats.node("after")
    after_statuses = [str(r.nodes["after"].status) for r in results if "after" in r.nodes]
    assert after.ran == after_statuses.count("completed") == 3
    assert after.skipped == after_statuses.count("skipped")
    assert after.failure_rate == 0.0

    # cached: computed once per value of the variables (a cache key includes them)
    memo = stats.node("memo")
    memo_statuses = [str(r.nodes["memo"].status) for r in results]
    assert memo_statuses.count("cached") == memo.cached == 3
    assert memo.ran == memo.runs == 2 and memo.statuses == {"completed": 2, "cached": 3}

    # a loop's child: one place in the flow, each iteration an execution
    step = stats.node("each/step")
    assert step.node_id == "step" and step.node_type == "edit-fields"
    assert (step.runs, step.ran, step.failed) == (5, 15, 0)
    step_ms = [
        res.duration_ms
        for r in results
        for path, res in r.nodes.items()
        if path.startswith("each/iteration ") and res.duration_ms is not None
    ]
    assert len(step_ms) == 15
    assert step.p95_ms == nearest_rank(step_ms, 95)
    names = [n.node for n in stats.nodes]
    assert names.index("each/step") == names.index("each") + 1  # right after its container


def test_the_last_n_runs_newest_first(recorded: Conductor) -> None:
    storage = recorded.storage
    assert storage is not None
    newest = stored_results(storage, "profiled")[:2]  # FAILS[3:]: a failure, then a success
    stats = storage.stats("profiled", last=2)
    assert stats.last == 2 and stats.runs == 2
    assert stats.statuses == {"completed": 1, "failed": 1}
    assert stats.node("flaky").failure_rate == 0.5
    assert stats.p95_ms == max(r.duration_ms for r in newest if r.duration_ms is not None)
    assert stats.since == min(r.started_at for r in newest if r.started_at is not None)
    with pytest.raises(ConfigurationError, match="last 1 or more runs"):
        storage.stats("profiled", last=0)


def test_an_unknown_flow_and_a_flow_without_runs(tmp_path: Path) -> None:
    conductor = make_conductor(str(tmp_path / "store"))
    storage = conductor.storage
    assert storage is not None
    with pytest.raises(FlowNotFound, match=r"no flow 'nope' in storage .* and no runs of it"):
        storage.stats("nope")
    with pytest.raises(FlowNotFound):
        storage.stats("../escape")  # an id no flow can have: not found, not a crash
    storage.save(loads_flow(FLOW))
    empty = storage.stats("profiled")
    assert (empty.runs, empty.nodes, empty.p50_ms, empty.since) == (0, [], None, None)
    # a flow run from a file (never stored) has statistics through its runs
    conductor.run(loads_flow(FLOW.replace("id: profiled", "id: unsaved")))
    assert storage.stats("unsaved").runs == 1
    conductor.close()


KILLER = """
import os, sys
from atomiton_core import create_conductor, hookimpl, loads_flow, node

@node("stats.exit", outputs={"output": object}, blocking=False)
def exit_node(ctx, params, input=None):
    os._exit(3)  # the process dies mid-run: its record stays "running", its writer gone

class Plugin:
    @hookimpl
    def atomiton_node_types(self):
        return [exit_node]

conductor = create_conductor(sys.argv[1], plugins=[Plugin()], autoload=False)
conductor.run(loads_flow(
    "id: profiled\\nname: P\\nnodes:\\n"
    "  - {id: start, type: edit-fields, parameters: {values: {n: 1}}}\\n"
    "  - {id: flaky, type: stats.exit}\\nedges:\\n  - {source: start, target: flaky}\\n"
))
"""
#: Set by ``stats.gate`` once it runs; the node then waits for ``RELEASE``.
GATES: dict[str, asyncio.Event] = {}


@node("stats.gate", outputs={"output": object}, blocking=False)
async def gate_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    """Say it runs, then wait for the test."""
    GATES["running"].set()
    await GATES["release"].wait()
    return {"output": input}


def test_runs_going_or_killed_are_counted_apart(tmp_path: Path) -> None:
    """A run still going (its writer alive) and one whose process was killed mid-run
    (``interrupted``) count as unfinished; their nodes count nowhere."""
    url = str(tmp_path / "store")
    conductor = make_conductor(url)
    flow = loads_flow(FLOW)
    conductor.run(flow, {"fail": True})
    conductor.run(flow)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, url], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 3, killed.stderr
    storage = conductor.storage
    assert storage is not None
    gated = create_conductor(url, plugins=[Plugin(), GatePlugin()], autoload=False)
    going = loads_flow(
        FLOW.replace("type: edit-fields, parameters: {values: {done: true}}", "type: stats.gate")
    )

    async def while_one_runs() -> FlowStats:
        GATES.update(running=asyncio.Event(), release=asyncio.Event())
        execution = gated.start(going)
        await GATES["running"].wait()
        stats = await asyncio.to_thread(storage.stats, "profiled")
        GATES["release"].set()
        assert (await execution.result()).ok
        return stats

    stats = asyncio.run(while_one_runs())
    assert stats.runs == 4 and stats.finished == 2 and stats.unfinished == 2
    assert stats.statuses == {"running": 1, "interrupted": 1, "completed": 1, "failed": 1}
    # only the two finished runs count: flaky failed in one of them
    assert stats.node("flaky").failure_rate == 0.5
    assert stats.node("start").runs == 2
    after = stats.node("after")
    assert after.ran == 1 and after.node_type == "edit-fields"
    assert storage.stats("profiled").statuses == {"completed": 2, "interrupted": 1, "failed": 1}
    gated.close()
    conductor.close()


class GatePlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [gate_node]


def test_outputs_are_not_read(tmp_path: Path) -> None:
    """Outputs stored as blobs are never opened: without them the figures are the same."""
    conductor = make_conductor(str(tmp_path / "store"))
    flow = loads_flow(
        "id: blobs\nname: B\nnodes:\n  - {id: big, type: stats.big}\n"
        "  - {id: tail, type: edit-fields, parameters: {values: {x: 1}}}\n"
        "edges:\n  - {source: big, target: tail}\n"
    )
    result = conductor.run(flow)
    storage = conductor.storage
    assert storage is not None and result.ok
    blobs = tmp_path / "store" / "runs" / result.execution_id / "blobs"
    assert [p.stat().st_size > 100_000 for p in blobs.iterdir()] == [True]
    before = storage.stats("blobs")
    for blob in blobs.iterdir():
        blob.unlink()
    assert storage.stats("blobs") == before
    assert (
        before.node("big").ran == 1 and before.node("big").p50_ms == result.nodes["big"].duration_ms
    )
    conductor.close()


def test_a_large_record_listed_from_its_summary(tmp_path: Path) -> None:
    """A record over 64 KB (3,000 loop iterations) is listed from ``summary.json``; its
    nodes still count, read from its log."""
    conductor = make_conductor(str(tmp_path / "store"))
    flow = loads_flow(FLOW.replace("count: 3}", "count: 3000}"))
    result = conductor.run(flow)
    storage = conductor.storage
    assert storage is not None and result.ok
    assert (tmp_path / "store" / "runs" / result.execution_id / "summary.json").exists()
    assert "nodeLog" not in storage.runs(flow_id="profiled")[0].data  # the summary's
    step = storage.stats("profiled").node("each/step")
    assert (step.runs, step.ran) == (1, 3000)
    recorded = storage.record(result.execution_id).to_result()
    step_ms = [r.duration_ms for p, r in recorded.nodes.items() if p.endswith("/step")]
    assert step.p50_ms == nearest_rank([d for d in step_ms if d is not None], 50)
    conductor.close()


def test_records_that_keep_their_nodes_inline(tmp_path: Path) -> None:
    """``record="summary"`` keeps nodes in ``run.json`` (no log): the figures are the same."""
    conductor = make_conductor(str(tmp_path / "store"), record="summary")
    flow = loads_flow(FLOW)
    for fail in FAILS:
        conductor.run(flow, {"fail": fail})
    storage = conductor.storage
    assert storage is not None
    stats = storage.stats("profiled")
    assert stats.statuses == {"completed": 3, "failed": 2}
    assert stats.node("flaky").failure_rate == 0.4
    assert stats.node("each/step").ran == 15
    results = stored_results(storage, "profiled")
    slow_ms = [r.nodes["slow"].duration_ms for r in results]
    assert stats.node("slow").p50_ms == nearest_rank([d for d in slow_ms if d is not None], 50)
    conductor.close()


def test_node_lookup() -> None:
    stats = FlowStats("f", 50)
    with pytest.raises(KeyError, match="no node 'x'"):
        stats.node("x")


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), st.integers(1, 100))
def test_percentile_is_the_nearest_rank(values: list[float], p: int) -> None:
    """The smallest value with at least p% of the values at or below it."""
    got = percentile(values, p)
    assert got in values
    n = len(values)
    assert sum(v <= got for v in values) >= p / 100 * n
    assert sum(v < got for v in values) < p / 100 * n


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 20)], 95) == 19.0
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0
    with pytest.raises(ConfigurationError):
        percentile([1.0], 0)
