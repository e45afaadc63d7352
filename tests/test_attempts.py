"""Attempts never overlap: each has its own cancellation token, and a retry waits for the
thread of the attempt before it (real threads, real time, generous margins)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import NodeContext, Parameters, create_conductor, hookimpl, loads_flow, node
from atomiton_core.conductor import attempts


class Nap(Parameters):
    seconds: float = 1.0


spans: list[tuple[int, float, float, bool]] = []
last_ended = threading.Event()
release = threading.Event()


@node("t.nap", params=Nap, outputs={"output": int})
def nap(ctx: NodeContext, params: Nap) -> dict[str, Any]:
    """Sleeps, ignoring its token; records when each attempt really ran."""
    start = time.monotonic()
    time.sleep(params.seconds)
    spans.append((ctx.attempt, start, time.monotonic(), ctx.cancelled))
    if ctx.attempt == 3:
        last_ended.set()
    return {"output": 1}


@node("t.polite", outputs={"output": int})
def polite(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    """Returns as soon as its attempt is cancelled."""
    fresh = ctx.cancelled
    ctx.stop_event.wait(30)
    spans.append((ctx.attempt, float(fresh), 0.0, ctx.cancelled))
    if ctx.attempt == 2:
        last_ended.set()
    return {"output": 1}


@node("t.stubborn", outputs={"output": int})
def stubborn(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    release.wait(30)
    return {"output": 1}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [nap, polite, stubborn]


def run(tmp_path: Path, node_yaml: str) -> Any:
    conductor = create_conductor(tmp_path, plugins=[Plugin()], record_runs=False)
    return conductor.run(loads_flow(f"id: a\nname: A\nnodes:\n  - {node_yaml}\n"))


@pytest.mark.slow
def test_a_blocking_node_that_times_out_never_runs_twice_at_once(tmp_path: Path) -> None:
    spans.clear()
    last_ended.clear()
    result = run(
        tmp_path,
        "{id: n, type: t.nap, parameters: {seconds: 1, timeout: 100, retries: 2, retryDelay: 0}}",
    )
    assert result.nodes["n"].status == "failed" and result.nodes["n"].error.code == "TIMEOUT"
    assert result.nodes["n"].attempts == 3
    assert last_ended.wait(30)
    ordered = sorted(spans, key=lambda s: s[1])
    assert [s[0] for s in ordered] == [1, 2, 3]
    for before, after in itertools.pairwise(ordered):
        assert after[1] >= before[2], f"attempt {after[0]} started before {before[0]} ended"
    assert all(cancelled for *_, cancelled in ordered)  # each saw its own token set


def test_each_attempt_has_its_own_token(tmp_path: Path) -> None:
    spans.clear()
    last_ended.clear()
    t0 = time.monotonic()
    result = run(
        tmp_path, "{id: n, type: t.polite, parameters: {timeout: 100, retries: 1, retryDelay: 0}}"
    )
    assert time.monotonic() - t0 < 20  # it returned at each timeout, not after 30 s
    assert result.nodes["n"].error.code == "TIMEOUT" and result.nodes["n"].attempts == 2
    assert last_ended.wait(30)  # the second attempt's thread has returned too
    assert [(a, fresh, cancelled) for a, fresh, _, cancelled in sorted(spans)] == [
        (1, 0.0, True),
        (2, 0.0, True),  # the retry started with a token of its own, not yet set
    ]


def test_a_thread_that_runs_on_stops_the_retries_and_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(attempts, "STRAY_GRACE_S", 0.3)
    release.clear()
    caplog.set_level(logging.WARNING, logger="atomiton.conductor")
    try:
        result = run(
            tmp_path,
            "{id: n, type: t.stubborn, parameters: {timeout: 100, retries: 3, retryDelay: 0}}",
        )
    finally:
        release.set()
    err = result.nodes["n"].error
    assert err.code == "TIMEOUT" and result.nodes["n"].attempts == 1
    assert "attempt 2 was not started" in err.message and "ctx.cancelled" in err.hint
    reports = [r for r in caplog.records if "ignores its cancellation" in r.getMessage()]
    assert len(reports) <= 1  # once at most (the run may end before the report is due)


@pytest.mark.slow
def test_a_timed_out_thread_does_not_hold_the_process_at_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import time
        from atomiton_core import create_conductor, hookimpl, loads_flow, node

        @node("t.forever", outputs={"output": int})
        def forever(ctx, params):
            time.sleep(600)   # ignores ctx.cancelled

        class P:
            @hookimpl
            def atomiton_node_types(self):
                return [forever]

        c = create_conductor("memory://exit", plugins=[P()])
        flow = loads_flow("id: f\\nname: F\\nnodes:\\n  - {id: n, type: t.forever, parameters: {timeout: 100}}\\n")
        print(c.run(flow).status, flush=True)
        """
    )
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "failed"
    assert time.monotonic() - t0 < 30  # not the node's 600 s


stuck = threading.Event()


@node("t.stuck", outputs={"output": int})
def stuck_node(ctx: NodeContext, params: Any) -> dict[str, Any]:
    """Ignores its token until the test lets it go."""
    stuck.wait(60)
    return {"output": 1}


@node("t.quick", outputs={"output": int})
def quick(ctx: NodeContext, params: Any) -> dict[str, Any]:
    return {"output": 2}


def test_timed_out_threads_never_starve_the_next_node(tmp_path: Path) -> None:
    """More timed-out, still-running threads than the pool has: the next node still runs."""

    class P:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [stuck_node, quick]

    stuck.clear()
    conductor = create_conductor(tmp_path, plugins=[P()], max_workers=4, record_runs=False)
    try:
        nodes = [
            {
                "id": f"s{i}",
                "type": "t.stuck",
                "parameters": {"timeout": 50, "continueOnFail": True},
            }
            for i in range(6)
        ]
        flow = loads_flow(json.dumps({"id": "starve", "name": "starve", "nodes": nodes}))
        first = conductor.run(flow)
        assert all(first.nodes[f"s{i}"].error.code == "TIMEOUT" for i in range(6))
        t0 = time.monotonic()
        after = conductor.run(
            loads_flow('{"id": "q", "name": "q", "nodes": [{"id": "q", "type": "t.quick"}]}')
        )
        assert after.ok and after.nodes["q"].outputs == {"output": 2}
        assert time.monotonic() - t0 < 10
    finally:
        stuck.set()
        conductor.close()


counted = itertools.count()
#: Called by the 1000th t.count node, inside the run.
at_thousandth: list[Callable[[], Any]] = []


@node("t.count", outputs={"output": int}, multiple=["x"], blocking=False)
def count_node(ctx: NodeContext, params: Any, x: list[int] | None = None) -> dict[str, Any]:
    if next(counted) == 1000:
        for call in at_thousandth:
            call()
    return {"output": 1}


def test_a_long_run_of_inline_nodes_can_be_cancelled(tmp_path: Path) -> None:
    """Inline nodes finish inside the scheduler; it still hands the loop back, so a cancel
    lands while 50,000 of them are queued."""

    class P:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [count_node]

    n = 50_000
    nodes = [{"id": f"n{i}", "type": "t.count"} for i in range(n)]
    edges = [
        {"id": f"e{i}", "source": f"n{i - 1}", "target": f"n{i}", "targetHandle": "x"}
        for i in range(1, n)
    ]
    flow = loads_flow(json.dumps({"id": "long", "name": "long", "nodes": nodes, "edges": edges}))
    conductor = create_conductor(tmp_path, plugins=[P()], record_runs=False)
    plan = conductor.prepare(flow)

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        execution = conductor.start(plan)
        # asked for by the 1000th node, the cancel runs only once the scheduler hands the loop
        # back (no thread to wake: nothing but the scheduler decides when it lands)
        at_thousandth.append(lambda: loop.call_soon(execution.cancel))
        try:
            return await execution.result()
        finally:
            at_thousandth.clear()

    result = asyncio.run(main())
    assert result.status == "cancelled"
    done = sum(1 for r in result.nodes.values() if r.status == "completed")
    assert 1000 < done < n
