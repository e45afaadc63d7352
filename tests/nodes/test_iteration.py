"""The iteration helper under loop and parallel: order, bound, errors, race, timeouts, cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atomiton_core.errors import ExecutionError, NodeTimeout
from atomiton_core.nodes.builtin.iteration import Iterated, Outputs, iterate


class Items:
    """``run_one`` for ``iterate``: item i suspends ``steps[i]`` times, fails if in ``failing``;
    records what ran, what was cancelled and how many ran at once."""

    def __init__(self, steps: list[int], failing: frozenset[int] = frozenset()) -> None:
        self.steps = steps
        self.failing = failing
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.running = 0
        self.most = 0

    async def __call__(self, i: int) -> Outputs:
        self.started.append(i)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            for _ in range(self.steps[i]):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled.append(i)
            raise
        finally:
            self.running -= 1
        if i in self.failing:
            raise ExecutionError(f"item {i} failed")
        return {"value": i}


def run(coro: Awaitable[Iterated]) -> Iterated:
    async def main() -> Iterated:
        try:
            return await coro
        finally:
            assert asyncio.all_tasks() == {asyncio.current_task()}, "a task outlived iterate()"

    return asyncio.run(main())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), max_size=12), st.frozensets(st.integers(0, 11)), st.integers(1, 5)
)
def test_every_item_runs_once_within_the_bound_and_comes_back_in_input_order(
    steps: list[int], failing: frozenset[int], concurrency: int
) -> None:
    failing = frozenset(i for i in failing if i < len(steps))
    items = Items(steps, failing)
    result = run(iterate(items, len(steps), concurrency=concurrency, collect=(ExecutionError,)))
    assert sorted(items.started) == list(range(len(steps)))
    assert items.most <= concurrency
    assert result.outputs == [None if i in failing else {"value": i} for i in range(len(steps))]
    assert sorted(result.completed) == [i for i in range(len(steps)) if i not in failing]
    assert [e["index"] for e in result.errors] == sorted(failing)
    assert all(e["error"]["message"] == f"item {e['index']} failed" for e in result.errors)


def test_completed_lists_items_in_the_order_they_finished() -> None:
    result = run(iterate(Items([6, 0, 4, 2]), 4, concurrency=4))
    assert result.completed == [1, 3, 2, 0]
    assert result.outputs == [{"value": i} for i in range(4)]


def test_one_at_a_time_runs_in_the_calling_task_and_yields_every_32_items() -> None:
    async def main() -> tuple[set[asyncio.Task[Any] | None], int]:
        tasks: set[asyncio.Task[Any] | None] = set()
        ticks = 0

        async def inline(i: int) -> Outputs:  # never suspends, like inline children
            tasks.add(asyncio.current_task())
            return {}

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks = 0
        await iterate(inline, 100)
        other.cancel()
        return tasks, ticks

    tasks, ticks = asyncio.run(main())
    assert len(tasks) == 1 and None not in tasks
    assert ticks == 3  # after items 32, 64 and 96


def test_a_timeout_lands_in_an_unbounded_run_of_items_that_never_suspend() -> None:
    ran = 0

    async def inline(i: int) -> Outputs:
        nonlocal ran
        ran += 1
        return {}

    async def main() -> None:
        async with asyncio.timeout(0.05):
            await iterate(inline, None, until=lambda done, _: done >= 10_000_000)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert 0 < ran < 10_000_000


@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_error_not_collected_is_raised_and_the_items_still_running_are_cancelled(
    concurrency: int,
) -> None:
    items = Items([0, 0, 5, 5, 5, 5], failing=frozenset({1}))
    with pytest.raises(ExecutionError, match="item 1 failed"):
        run(iterate(items, 6, concurrency=concurrency))
    assert items.running == 0
    assert sorted(set(items.started) - {0, 1}) == sorted(items.cancelled)
    if concurrency == 1:
        assert items.started == [0, 1]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_until_ends_a_run_of_unknown_length(concurrency: int) -> None:
    seen: list[tuple[int, Outputs | None]] = []

    def until(done: int, last: Outputs | None) -> bool:
        seen.append((done, last))
        return done == 3

    result = run(iterate(Items([1] * 10), None, concurrency=concurrency, until=until))
    assert result.outputs == [{"value": 0}, {"value": 1}, {"value": 2}]
    assert seen == [(1, {"value": 0}), (2, {"value": 1}), (3, {"value": 2})]


def test_first_the_lowest_index_among_those_finished_together_wins() -> None:
    async def main() -> tuple[Iterated, list[int]]:
        gates = [asyncio.Event() for _ in range(3)]
        cancelled: list[int] = []

        async def gated(i: int) -> Outputs:
            try:
                await gates[i].wait()
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
            return {"value": i}

        async def release() -> None:
            await asyncio.sleep(0)
            gates[2].set()
            gates[1].set()  # both finish before iterate() looks

        releaser = asyncio.create_task(release())
        result = await iterate(gated, 3, concurrency=3, first=True)
        await releaser
        return result, cancelled

    result, cancelled = asyncio.run(main())
    assert result.winner == (1, {"value": 1})
    assert cancelled == [0]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_first_a_failing_winner_fails_the_run(concurrency: int) -> None:
    items = Items([0, 3, 3], failing=frozenset({0}))
    with pytest.raises(ExecutionError, match="item 0 failed"):
        run(iterate(items, 3, concurrency=concurrency, first=True))
    assert items.running == 0


def test_first_does_not_start_items_once_decided() -> None:
    items = Items([1, 1, 0, 0])
    result = run(iterate(items, 4, concurrency=2, first=True))
    assert result.winner == (0, {"value": 0})
    assert items.started == [0, 1]


@pytest.mark.parametrize("concurrency", [1, 2])
def test_an_item_over_its_timeout_raises_the_callers_error(concurrency: int) -> None:
    async def slow_one(i: int) -> Outputs:
        if i == 1:
            await asyncio.Event().wait()
        return {"value": i}

    def timed_out(i: int) -> Exception:
        return NodeTimeout(f"item {i} timed out")

    result = run(
        iterate(
            slow_one,
            3,
            concurrency=concurrency,
            collect=(Exception,),
            timeout=(0.01, timed_out),
        )
    )
    assert result.outputs == [{"value": 0}, None, {"value": 2}]
    assert result.errors == [
        {
            "index": 1,
            "error": {"code": "TIMEOUT", "message": "item 1 timed out", "retryable": True},
        }
    ]


@pytest.mark.parametrize("concurrency", [1, 2])
@pytest.mark.parametrize(("on_error", "expected"), [(True, [1, 2, 3]), (False, [1, 2])])
def test_progress_counts_items_done(concurrency: int, on_error: bool, expected: list[int]) -> None:
    reported: list[tuple[float, int]] = []
    items = Items([0, 1, 2], failing=frozenset({1}))
    run(
        iterate(
            items,
            3,
            concurrency=concurrency,
            collect=(ExecutionError,),
            progress=lambda fraction, i: reported.append((fraction, i)),
            progress_on_error=on_error,
        )
    )
    indexes = [0, 1, 2] if on_error else [0, 2]
    assert reported == [(n / 3, i) for n, i in zip(expected, indexes, strict=True)]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_cancelling_the_caller_cancels_and_awaits_every_running_item(concurrency: int) -> None:
    async def main() -> list[int]:
        stopped: list[int] = []
        started = asyncio.Event()

        async def forever(i: int) -> Outputs:
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0)  # cleanup that itself suspends
                stopped.append(i)
            return {}

        caller: asyncio.Task[Iterated] = asyncio.create_task(
            iterate(forever, 5, concurrency=concurrency)
        )
        await started.wait()
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return stopped

    assert sorted(asyncio.run(main())) == list(range(concurrency))
