"""One child run per item: the engine under the containers ``loop`` and ``parallel``.

A container's children are fed through container edges from its own id (``sourceHandle:
item`` / ``index``); an edge from a child to the container's id with ``targetHandle: X`` makes
``X`` an output holding one value per item, in order. ``iterate`` runs the items; the helpers
below turn what it ran into the container's outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from atomiton_core.errors import AtomitonError, ExecutionError
from atomiton_core.wire import dump_error

Outputs = dict[str, Any]
RunOne = Callable[[int], Awaitable[Outputs]]

#: The ``sourceHandle`` names both ``loop`` and ``parallel`` feed their children.
ITEM_SOURCES = frozenset({"item", "index", "items", "input"})

#: Inline children never suspend: items run one after another yield to the event loop this
#: often, so that a timeout or a cancellation can land.
_YIELD_EVERY = 32

#: About how many progress reports a run of many items makes at most (each is a signal, a
#: line of the run log, a message to the server's clients).
PROGRESS_REPORTS = 1000


@dataclass(slots=True)
class Iterated:
    """What ``iterate`` ran."""

    #: Per item, in input order: its outputs, or None where it failed (or, with ``first``,
    #: never ran). Items run one by one: only those that ran.
    outputs: list[Outputs | None]
    #: The items that failed, by index, with the error that was collected.
    failures: dict[int, Exception] = field(default_factory=dict)
    #: The items that succeeded, in the order they finished.
    completed: list[int] = field(default_factory=list)
    #: With ``first``: the item that won, and its outputs.
    winner: tuple[int, Outputs] | None = None

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The collected failures as ``errors`` output entries, by index."""
        return [error_entry(i, err) for i, err in sorted(self.failures.items())]


async def iterate(
    run_one: RunOne,
    count: int | None,
    *,
    concurrency: int = 1,
    collect: tuple[type[Exception], ...] = (),
    first: bool = False,
    timeout: tuple[float, Callable[[int], Exception]] | None = None,
    until: Callable[[int, Outputs | None], bool] | None = None,
    progress: Callable[[float, int], None] | None = None,
    progress_on_error: bool = True,
    stop_on_failure: bool = False,
) -> Iterated:
    """Run ``run_one(0)``, ``run_one(1)``, ... once per item; outputs come back in input order.

    ``count`` items, or with ``count`` None until ``until(items_run, last_outputs)`` is true
    (asked after each item run one by one). ``concurrency`` 1, or an unknown count, runs the
    items one after another in this task, no task per item; more starts that many workers,
    each taking the next item when it gets free. An error of a type in ``collect`` lands in
    ``failures`` and the run goes on; any other is raised, after the items still running are
    cancelled and awaited. ``first`` (a race): the run ends when an item finishes; among those
    finished by then the lowest index wins, and its error is raised if it failed.
    ``timeout``: (seconds per item, the error for item ``i`` when it runs over).
    ``progress(fraction, index)``: when ``count`` is known, after each item that succeeded
    and, with ``progress_on_error``, each whose error was collected; past
    :data:`PROGRESS_REPORTS` items, after every ``count // PROGRESS_REPORTS``-th such item
    and the last. ``stop_on_failure``: once an error is collected, no further item starts
    (those running finish); the items never started are neither in ``completed`` nor in
    ``failures``.
    """
    call = run_one if timeout is None else _with_timeout(run_one, *timeout)
    tick = _progress_counter(progress, count) if progress is not None and count else None
    tick_error = tick if progress_on_error else None
    if concurrency == 1 or count is None:
        return await _one_by_one(
            call, count, collect, first, until, tick, tick_error, stop_on_failure
        )
    return await _side_by_side(
        call, count, concurrency, collect, first, tick, tick_error, stop_on_failure
    )


def _progress_counter(progress: Callable[[float, int], None], count: int) -> Callable[[int], None]:
    done = 0
    every = max(count // PROGRESS_REPORTS, 1)

    def tick(i: int) -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == count:
            progress(done / count, i)

    return tick


def _with_timeout(run_one: RunOne, seconds: float, timed_out: Callable[[int], Exception]) -> RunOne:
    async def call(i: int) -> Outputs:
        try:
            async with asyncio.timeout(seconds):
                return await run_one(i)
        except TimeoutError:
            raise timed_out(i) from None

    return call


async def _one_by_one(
    call: RunOne,
    count: int | None,
    collect: tuple[type[Exception], ...],
    first: bool,
    until: Callable[[int, Outputs | None], bool] | None,
    tick: Callable[[int], None] | None,
    tick_error: Callable[[int], None] | None,
    stop_on_failure: bool,
) -> Iterated:
    run = Iterated([])
    outputs, failures, completed = run.outputs, run.failures, run.completed
    i = 0
    while count is None or i < count:
        try:
            out: Outputs | None = await call(i)
        except collect as err:
            failures[i] = err
            out = None
            if tick_error is not None:
                tick_error(i)
            if stop_on_failure:
                outputs.append(out)
                break
        else:
            completed.append(i)
            if tick is not None:
                tick(i)
        outputs.append(out)
        if first:
            if out is None:
                raise failures[i]
            run.winner = (i, out)
            break
        i += 1
        if until is not None and until(i, out):
            break
        if i % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return run


async def _side_by_side(
    call: RunOne,
    count: int,
    concurrency: int,
    collect: tuple[type[Exception], ...],
    first: bool,
    tick: Callable[[int], None] | None,
    tick_error: Callable[[int], None] | None,
    stop_on_failure: bool,
) -> Iterated:
    run = Iterated([None] * count)
    if not count:
        return run
    outputs, failures, completed = run.outputs, run.failures, run.completed
    over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    next_item = 0
    working = min(concurrency, count)
    stopped = False  # stop_on_failure: an error was collected

    async def work() -> None:
        nonlocal next_item, working, stopped
        ran = 0
        try:
            while next_item < count and not over.done() and not stopped:
                i = next_item
                next_item += 1
                try:
                    outputs[i] = await call(i)
                except Exception as err:
                    if not first and not isinstance(err, collect):
                        if not over.done():
                            over.set_exception(err)
                        return
                    failures[i] = err
                    stopped = stop_on_failure
                    if tick_error is not None:
                        tick_error(i)
                else:
                    completed.append(i)
                    if tick is not None:
                        tick(i)
                if first and not over.done():
                    over.set_result(None)
                ran += 1
                if ran % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not over.done():  # an item cancelled itself: so is the run
                over.cancel()
            raise
        except BaseException as exc:
            if not over.done():
                over.set_exception(exc)
            raise
        working -= 1
        if not working and not over.done():
            over.set_result(None)

    workers = [asyncio.create_task(work()) for _ in range(working)]
    try:
        await over
        if first:
            winner = min([*completed, *failures])
            won = outputs[winner]
            if won is None:
                raise failures[winner]
            run.winner = (winner, won)
    finally:
        # only the workers still running are cancelled and awaited (awaiting finished ones,
        # as gather would, costs a trip through the loop each)
        running = [worker for worker in workers if not worker.done()]
        for worker in running:
            worker.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        for worker in workers:
            if not worker.cancelled():
                worker.exception()  # retrieved: what a worker raised is in ``over`` already
        if over.done() and not over.cancelled():
            over.exception()  # retrieved even when this task was cancelled before it looked
    return run


# -- the containers' outputs -----------------------------------------------------------------


def per_item_outputs(results: list[Outputs | None], names: tuple[str, ...]) -> dict[str, list[Any]]:
    """Container outputs per item -> one list per output name (None where an item failed)."""
    return {name: [r.get(name) if r is not None else None for r in results] for name in names}


def collect_outputs(
    listed: list[Outputs | None], errors: list[dict[str, Any]], names: tuple[str, ...]
) -> dict[str, Any]:
    """A container's outputs: ``errors``, and one list per child output (else ``results``)."""
    out: dict[str, Any] = {"errors": errors}
    if names:
        out.update(per_item_outputs(listed, names))
    else:
        out["results"] = listed
    return out


def error_entry(index: int, err: BaseException) -> dict[str, Any]:
    """One ``errors`` output entry: the item's index and its error."""
    data = dump_error(err) if isinstance(err, AtomitonError) else {"message": str(err)}
    return {"index": index, "error": data}


def as_list(items: Any, where: str) -> list[Any]:
    """The items a container runs over: a list, a tuple, a dict's values; None is none."""
    if items is None:
        return []
    if isinstance(items, list | tuple):
        return list(items)
    if isinstance(items, dict):
        return list(items.values())
    raise ExecutionError(
        f"{where} must be a list, got {type(items).__name__}",
        hint="feed it a list (e.g. a transform's output) or set the 'array' parameter",
        retryable=False,
    )
