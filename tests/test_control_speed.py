"""The faster paths under control flow and blocking nodes keep their behaviour: calls handed to
pool threads for the event loop (outcome, cancellation before a thread takes them, abandoned
work counted until it ends), lazily made attempt tokens (thread-safe under many threads),
thinned progress of many items, the CPU time of thread nodes; a container's items whose
children run in the container's own task: a cancellation or a timeout lands in them, a thread
child's token is set, a thread that runs on is reported, a node cancelling itself fails only
its item, chains and deep nesting; and the control benchmark runs (tiny)."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    Edge,
    ExecutionStatus,
    Flow,
    NodeContext,
    NodeSpec,
    NodeStatus,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
)
from atomiton_core.conductor import attempts
from atomiton_core.conductor.attempts import AttemptToken
from atomiton_core.conductor.threads import DaemonThreadPool
from atomiton_core.nodes.builtin.iteration import PROGRESS_REPORTS, Outputs, iterate

ROOT = Path(__file__).resolve().parent.parent


def test_a_thread_call_settles_the_loops_future() -> None:
    async def main() -> tuple[Any, BaseException | None, bool]:
        pool = DaemonThreadPool(2)
        loop = asyncio.get_running_loop()
        try:
            ok = pool.call(loop, lambda: threading.current_thread().name)
            name = await ok.future

            def fail() -> None:
                raise ValueError("no")

            bad = pool.call(loop, fail)
            with pytest.raises(ValueError) as raised:
                await bad.future
            return name, raised.value, ok.done() and bad.done()
        finally:
            pool.shutdown()

    name, err, done = asyncio.run(main())
    assert name.startswith("atomiton-") and str(err) == "no" and done


def test_a_thread_call_cancelled_before_a_thread_takes_it_never_runs() -> None:
    ran: list[int] = []

    async def main() -> bool:
        pool = DaemonThreadPool(1)
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        try:
            busy = pool.call(loop, gate.wait)  # the only thread waits
            queued = pool.call(loop, lambda: ran.append(1))
            assert queued.cancel() and queued.done() and queued.future.cancelled()
            assert not busy.cancel()  # a thread runs it already
            gate.set()
            await busy.future
            await asyncio.sleep(0.05)
            return queued.done()
        finally:
            pool.shutdown()

    assert asyncio.run(main()) and ran == []


def test_abandoned_work_lets_the_pool_grow_until_it_ends() -> None:
    async def main() -> list[int]:
        pool = DaemonThreadPool(1)
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        seen: list[int] = []
        try:
            running = threading.Event()
            stuck = pool.call(loop, lambda: (running.set(), gate.wait()))
            assert await asyncio.to_thread(running.wait, 10)  # a thread runs it
            stuck.abandon()
            seen.append(pool._abandoned)
            quick = pool.call(loop, lambda: 2)  # a second thread starts in its place
            assert await asyncio.wait_for(quick.future, 10) == 2
            ended = stuck.ended()
            gate.set()
            await asyncio.wait_for(ended, 10)
            seen.append(pool._abandoned)
            seen.append(len(pool._threads))
        finally:
            pool.shutdown()
        return seen

    assert asyncio.run(main()) == [1, 0, 2]


def test_abandoned_work_stops_counting_when_it_ends_after_its_loop_closed() -> None:
    pool = DaemonThreadPool(1)
    gate = threading.Event()

    async def main() -> int:
        running = threading.Event()
        stuck = pool.call(asyncio.get_running_loop(), lambda: (running.set(), gate.wait()))
        assert await asyncio.to_thread(running.wait, 10)  # a thread runs it
        stuck.abandon()
        stuck.abandon()  # once is counted
        return pool._abandoned

    try:
        assert asyncio.run(main()) == 1  # the loop is closed now
        gate.set()
        deadline = time.monotonic() + 10
        while pool._abandoned and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._abandoned == 0
    finally:
        pool.shutdown()


def test_a_shut_down_pool_cancels_the_calls_it_still_holds() -> None:
    async def main() -> bool:
        pool = DaemonThreadPool(1)
        loop = asyncio.get_running_loop()
        gate = threading.Event()
        busy = pool.call(loop, gate.wait)
        queued = pool.call(loop, lambda: 1)
        pool.shutdown(wait=False, cancel_futures=True)
        gate.set()
        await busy.future
        with pytest.raises(asyncio.CancelledError):
            await queued.future
        return queued.done()

    assert asyncio.run(main())


def test_an_attempt_token_is_an_event() -> None:
    token = AttemptToken()
    assert isinstance(token, threading.Event) and not token.is_set()
    assert token.wait(0.01) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(token.wait(10)))
    waiter.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    token.set()
    waiter.join(10)
    assert woke == [True] and time.monotonic() - t0 < 5
    assert token.is_set() and token.wait() is True
    token.clear()
    assert not token.is_set()


def _hammer(rng: random.Random) -> None:
    """8 tokens, 4 waiters each (half with a timeout), a setter each, all let go at once."""
    tokens = [AttemptToken() for _ in range(8)]
    woke: list[tuple[int, bool, float]] = []
    lock = threading.Lock()
    go = threading.Barrier(8 * 4 + 8)
    pauses = [rng.randrange(3) for _ in tokens]

    def waiter(k: int, timeout: float | None) -> None:
        go.wait()
        t0 = time.monotonic()
        got = tokens[k].wait(timeout)
        with lock:
            woke.append((k, got, time.monotonic() - t0))

    def setter(k: int) -> None:
        go.wait()
        for _ in range(pauses[k]):
            tokens[k].is_set()
            time.sleep(0)
        tokens[k].set()
        tokens[k].set()  # twice: no harm

    threads = [
        threading.Thread(target=waiter, args=(k, None if j % 2 else 30.0))
        for k in range(8)
        for j in range(4)
    ] + [threading.Thread(target=setter, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(woke) == 32 and all(got for _k, got, _s in woke)
    assert max(s for _k, _g, s in woke) < 10
    assert all(t.is_set() for t in tokens)


def test_an_attempt_token_wakes_every_waiter_of_many_threads() -> None:
    """Threads wait on tokens (with and without timeouts) while others set and read them:
    every waiter of a set token wakes, none hangs."""
    rng = random.Random(15)
    for _round in range(20):
        _hammer(rng)
    # clear and set again while waiters come and go: a cleared token times out
    token = AttemptToken()
    token.set()
    token.clear()
    assert token.wait(0.01) is False
    late: list[bool] = []
    later = threading.Thread(target=lambda: late.append(token.wait(30)))
    later.start()
    time.sleep(0.02)
    token.set()
    later.join(30)
    assert late == [True]


def test_many_items_report_progress_about_a_thousand_times() -> None:
    count = PROGRESS_REPORTS * 5 + 3
    reported: list[tuple[float, int]] = []

    async def one(i: int) -> Outputs:
        return {"i": i}

    for concurrency in (1, 4):
        reported.clear()
        asyncio.run(
            iterate(
                one,
                count,
                concurrency=concurrency,
                progress=lambda fraction, i: reported.append((fraction, i)),
            )
        )
        assert PROGRESS_REPORTS <= len(reported) <= PROGRESS_REPORTS + 1
        assert reported[-1][0] == 1.0
        fractions = [f for f, _ in reported]
        assert fractions == sorted(fractions)


class Burn:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [burn]


@node("speed.burn", outputs={"out": int})
def burn(ctx: NodeContext, params: Any, x: int = 0) -> dict[str, Any]:
    """Blocking (a sync node): 30 ms of CPU in its thread."""
    start = time.thread_time()
    while time.thread_time() - start < 0.03:
        pass
    return {"out": x + 1}


def test_blocking_nodes_in_a_loop_report_their_threads_cpu(tmp_path: Path) -> None:
    conductor = create_conductor(tmp_path, plugins=[Burn()])
    flow = loads_flow(
        """
id: burn
name: Burn
nodes:
  - id: one
    type: speed.burn
  - id: each
    type: loop
    parameters: {array: [1, 2, 3], concurrency: 3}
    nodes:
      - {id: b, type: speed.burn}
    edges:
      - {source: each, sourceHandle: item, target: b, targetHandle: x}
      - {source: b, sourceHandle: out, target: each, targetHandle: values}
"""
    )
    try:
        result = conductor.run(flow)
    finally:
        conductor.close()
    assert result.ok, result.error
    assert result.outputs["each"]["values"] == [2, 3, 4]
    cpu = result.nodes["one"].cpu_ms
    assert cpu is not None and cpu >= 25
    children = [result.nodes[f"each/iteration {i}/b"].cpu_ms for i in range(3)]
    assert all(c is not None and c >= 25 for c in children)
    assert (result.nodes["each"].cpu_ms or 0) >= 75


# -- a container's items, their children in the container's task ----------------------------

#: What the thread nodes below saw of their token when they returned, by item.
seen: dict[Any, bool] = {}
#: The ``x`` of each speed.polite node that has started waiting on its token.
waiting: set[Any] = set()
ended = threading.Event()
release = threading.Event()


@node("speed.hold", outputs={"out": Any})
async def hold(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    """Item 2 holds (30 s) and says so through ``ctx.config["held"]``; others pass through."""
    if x == 2:
        ctx.config["held"].set()
        await asyncio.sleep(30)
    return {"out": x}


@node("speed.polite", outputs={"out": Any})
def polite(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    """A thread node that waits ``x`` seconds on its token (returning early once it is set)
    and notes whether it was set."""
    waiting.add(x)
    ctx.stop_event.wait(float(x or 0))
    seen[x] = ctx.cancelled
    ended.set()
    return {"out": x}


@node("speed.stubborn", outputs={"out": Any})
def stubborn(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    """A thread node that ignores its token until ``release``."""
    release.wait(30)
    return {"out": x}


@node("speed.quits", outputs={"out": Any})
async def quits(ctx: NodeContext, params: Any, x: Any = None) -> dict[str, Any]:
    """Item 1 cancels itself; others pass through."""
    if x == 1:
        raise asyncio.CancelledError
    return {"out": x}


@node("speed.inc", outputs={"out": int})
async def inc(ctx: NodeContext, params: Any, x: int = 0) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"out": x + 1}


@node("speed.double", outputs={"out": int}, blocking=False)
def double(ctx: NodeContext, params: Any, x: int = 0) -> dict[str, Any]:
    """Inline (a cheap sync node)."""
    return {"out": x * 2}


class Items:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [hold, polite, stubborn, quits, inc, double]


def one_child_loop(child: str, items: list[Any], **params: Any) -> Flow:
    return loads_flow(
        f"""
id: items
name: Items
nodes:
  - id: each
    type: loop
    parameters: {{array: {items!r}, concurrency: {params.pop("concurrency", 1)}}}
    nodes:
      - {{id: c, type: {child}, parameters: {params!r}}}
    edges:
      - {{source: each, sourceHandle: item, target: c, targetHandle: x}}
      - {{source: c, sourceHandle: out, target: each, targetHandle: values}}
"""
    )


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_cancel_lands_in_the_item_a_loop_runs(tmp_path: Path, concurrency: int) -> None:
    async def scenario() -> tuple[Any, float, set[asyncio.Task[Any]]]:
        held = asyncio.Event()
        conductor = create_conductor(tmp_path, plugins=[Items()], config={"held": held})
        try:
            flow = one_child_loop("speed.hold", [0, 1, 2, 3, 4], concurrency=concurrency)
            execution = conductor.start(flow)
            await asyncio.wait_for(held.wait(), 30)
            t0 = time.monotonic()
            execution.cancel()
            result = await execution.result()
            me = asyncio.current_task()
            return result, time.monotonic() - t0, {t for t in asyncio.all_tasks() if t is not me}
        finally:
            conductor.close()

    result, took, left = asyncio.run(scenario())
    assert result.status is ExecutionStatus.CANCELLED
    assert took < 5
    assert result.nodes["each/iteration 2/c"].status is NodeStatus.CANCELLED
    assert result.nodes["each/iteration 1/c"].status is NodeStatus.COMPLETED
    assert result.nodes["each"].status is NodeStatus.CANCELLED
    if concurrency == 1:
        assert "each/iteration 3/c" not in result.nodes  # never started
    assert left == set()


def test_a_cancel_sets_the_token_of_a_loop_items_thread(tmp_path: Path) -> None:
    seen.clear()
    waiting.clear()
    ended.clear()

    async def scenario() -> Any:
        conductor = create_conductor(tmp_path, plugins=[Items()], record="off")
        try:
            execution = conductor.start(one_child_loop("speed.polite", [0, 30, 0]))
            deadline = time.monotonic() + 30
            while 30 not in waiting and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # until item 1's thread waits on its token
            assert 0 in seen and 30 in waiting
            ended.clear()
            execution.cancel()
            return await execution.result()
        finally:
            conductor.close()

    t0 = time.monotonic()
    result = asyncio.run(scenario())
    assert ended.wait(10) and time.monotonic() - t0 < 10
    assert result.status is ExecutionStatus.CANCELLED
    assert seen == {0: False, 30: True}
    assert result.nodes["each/iteration 1/c"].status is NodeStatus.CANCELLED


def test_a_timeout_in_a_loop_items_thread_fails_that_item_and_sets_its_token(
    tmp_path: Path,
) -> None:
    seen.clear()
    conductor = create_conductor(tmp_path, plugins=[Items()])
    try:
        result = conductor.run(one_child_loop("speed.polite", [0, 30, 0.01], timeout=100))
    finally:
        conductor.close()
    assert result.ok, result.error
    out = result.outputs["each"]
    assert out["values"] == [0, None, 0.01]
    assert [(e["index"], e["error"]["code"]) for e in out["errors"]] == [(1, "TIMEOUT")]
    assert ended.wait(10)
    deadline = time.monotonic() + 10
    while 30 not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == {0: False, 30: True, 0.01: False}


def test_a_loop_items_thread_that_runs_on_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(attempts, "STRAY_GRACE_S", 0.2)
    caplog.set_level(logging.WARNING, logger="atomiton.conductor")
    release.clear()

    async def scenario() -> Any:
        conductor = create_conductor(tmp_path, plugins=[Items()], record="off")
        try:
            result = await conductor.execute(
                one_child_loop("speed.stubborn", [1, 2], timeout=50, concurrency=2)
            )
            deadline = time.monotonic() + 30  # the report comes once the grace is over
            while not _stray_reports(caplog) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return result
        finally:
            release.set()
            conductor.close()

    result = asyncio.run(scenario())
    assert result.ok, result.error
    assert [e["error"]["code"] for e in result.outputs["each"]["errors"]] == ["TIMEOUT"] * 2
    reports = _stray_reports(caplog)
    assert len(reports) == 1 and "'c'" in reports[0]


def _stray_reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ignores its cancellation" in r.getMessage()]


def test_a_node_that_cancels_itself_fails_only_its_item(tmp_path: Path) -> None:
    conductor = create_conductor(tmp_path, plugins=[Items()])
    try:
        result = conductor.run(one_child_loop("speed.quits", [0, 1, 2]))
    finally:
        conductor.close()
    assert result.ok, result.error
    out = result.outputs["each"]
    assert out["values"] == [0, None, 2]
    assert [(e["index"], e["error"]["code"]) for e in out["errors"]] == [(1, "CANCELLED")]
    assert result.nodes["each/iteration 1/c"].status is NodeStatus.FAILED


@pytest.mark.parametrize("kind", ["loop", "parallel"])
def test_a_chain_of_children_with_an_inline_node_in_it(tmp_path: Path, kind: str) -> None:
    source = "array" if kind == "loop" else "operations"
    flow = loads_flow(
        f"""
id: chain
name: Chain
nodes:
  - id: each
    type: {kind}
    parameters: {{{source}: [1, 2, 3], concurrency: 2}}
    nodes:
      - {{id: a, type: speed.inc}}
      - {{id: b, type: speed.double}}
      - {{id: c, type: speed.inc}}
    edges:
      - {{source: each, sourceHandle: item, target: a, targetHandle: x}}
      - {{source: a, sourceHandle: out, target: b, targetHandle: x}}
      - {{source: b, sourceHandle: out, target: c, targetHandle: x}}
      - {{source: c, sourceHandle: out, target: each, targetHandle: values}}
"""
    )
    conductor = create_conductor(tmp_path, plugins=[Items()])
    try:
        result = conductor.run(flow)
    finally:
        conductor.close()
    assert result.ok, result.error
    assert result.outputs["each"]["values"] == [5, 7, 9]
    label = "iteration" if kind == "loop" else "operation"
    for i in range(3):
        for child in "abc":
            assert result.nodes[f"each/{label} {i}/{child}"].status is NodeStatus.COMPLETED


def test_loops_nested_forty_deep(tmp_path: Path) -> None:
    spec = NodeSpec(id="c", type="speed.inc")
    for depth in range(40):
        # each loop's "out": per iteration (one), the "out" of the node inside
        edges = [Edge(source=spec.id, target=f"l{depth}", source_handle="out", target_handle="out")]
        if depth == 0:
            edges.append(Edge(source="l0", target="c", source_handle="item", target_handle="x"))
        spec = NodeSpec(
            id=f"l{depth}", type="loop", parameters={"array": [0]}, nodes=[spec], edges=edges
        )
    conductor = create_conductor(tmp_path, plugins=[Items()])
    try:
        result = conductor.run(Flow(id="deep", name="Deep", nodes=[spec]))
    finally:
        conductor.close()
    assert result.ok, result.error
    value: Any = result.outputs["l39"]["out"]
    for _ in range(39):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == [1]
    assert len(result.nodes) == 41


def test_the_control_benchmark_runs() -> None:
    if not (ROOT / "benchmarks" / "control.py").exists():  # pragma: no cover - installed
        pytest.skip("benchmarks/ is not beside the tests")
    sys.path.insert(0, str(ROOT))
    from benchmarks import control

    res = asyncio.run(control.measure(n=20, repeats=1))
    assert len(res["containers"]) == 8 and len(res["blocking"]) == 2
    for row in res["containers"] + res["blocking"]:
        assert row["full_us"] > 0 and row["off_us"] > 0 and row["base_us"] > 0
    text = control.markdown(res)
    assert "| loop | default | 20 |" in text and "| fanout | 2 |" in text
