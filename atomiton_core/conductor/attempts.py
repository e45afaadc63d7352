"""Running one node: its attempts, timeout, retries and backoff, and its output check.

:func:`run_attempts` is the general case: each attempt is timed out after the node's
``timeout``, a retryable failure is retried up to ``retries`` times after ``retryDelay``
doubled per attempt (or the cause's ``Retry-After`` when longer), and a blocking sync node
runs on the conductor's executor. Nodes with no timeout and no retries take one of two
specialisations that do the same with nothing to enforce:

- :func:`run_inline`, for cheap sync nodes (``blocking=False``), called by the scheduler
  itself: no task and no thread (10x faster than a thread per node, chain or fan-out of
  10,000);
- the *direct* path for async nodes, written into the scheduler's node task
  (``GraphRun._node_task``) so that it costs no coroutine of its own and lets a chain run on
  in one task (1.5-1.9x faster than :func:`run_attempts` on a 10,000-node chain; the same on
  a fan-out; a separate coroutine per node cost another 4-5 %).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import types
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, cast

from atomiton_core import signals
from atomiton_core.conductor.cluster import held
from atomiton_core.conductor.dask_executor import on_cluster
from atomiton_core.conductor.events import emit_node
from atomiton_core.conductor.executors import LocalExecutor
from atomiton_core.conductor.threads import ThreadCall
from atomiton_core.errors import AtomitonError, ExecutionError, NodeTimeout, OutputContractError
from atomiton_core.nodes.context import NodeContext

if TYPE_CHECKING:
    from atomiton_core.conductor.executors import Executor
    from atomiton_core.conductor.isolation import IsolatedCall, ProcessPool
    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.run import Run
    from atomiton_core.conductor.scheduler import GraphRun
    from atomiton_core.results import NodeResult

__all__ = ["AttemptToken", "as_error", "check_outputs", "cpu_timed", "run_attempts", "run_inline"]

_perf = time.perf_counter
_log = logging.getLogger("atomiton.conductor")


def check_outputs(pn: PlannedNode, out: Any) -> dict[str, Any]:
    """A node's return value as its outputs, or OutputContractError saying what is wrong."""
    if out is None:
        return {}
    if type(out) is not dict and not isinstance(out, dict):
        raise OutputContractError(
            f"{pn.type_id} returned {type(out).__name__}; a node returns "
            "a dict keyed by output port",
            node_id=pn.id,
        )
    declared = pn.declared_outputs
    if declared is not None and not declared.issuperset(out):
        extra = sorted(set(out) - declared)
        raise OutputContractError(
            f"{pn.type_id} returned undeclared output port(s) {extra}; "
            f"declared: {sorted(declared)}",
            node_id=pn.id,
        )
    return out


def as_error(exc: BaseException, pn: PlannedNode, path: str | None) -> AtomitonError:
    """The SDK error for what a node raised, naming the node and where it sits."""
    if isinstance(exc, AtomitonError):
        return exc.at(pn.id, path)
    err = ExecutionError.from_exception(exc, node_id=pn.id, node_type=pn.type_id)
    err.path = path
    return err


def run_inline(
    graph: GraphRun, pn: PlannedNode, res: NodeResult, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """One attempt of a cheap sync node, in the scheduler's own call."""
    t0 = _perf()
    if graph.trace is not None:
        graph.trace.node_started(pn, res)
    if signals.node_started.receivers:
        emit_node(graph.run_, signals.node_started, "node.started", pn, res)
    clock = graph.run_.cpu_clock
    c0 = clock() if clock is not None else 0.0
    try:
        return check_outputs(pn, pn.fn(NodeContext(graph, pn, res.path), pn.params, **kwargs))
    finally:
        if clock is not None:
            res.cpu_ms = (clock() - c0) * 1000
        res.duration_ms = (_perf() - t0) * 1000


_NOT_STARTED = object()


@types.coroutine
def cpu_timed(
    step: Awaitable[Any],
    graph: GraphRun,
    index: int,
    clock: Callable[[], float],
    first: Any = _NOT_STARTED,
    used: float = 0.0,
) -> Generator[Any, Any, Any]:
    """Await an async node's coroutine, measuring the CPU time of each of its steps (what
    runs between two of its suspensions, on the loop's thread) into its result's ``cpu_ms``.
    ``first``: what the coroutine's first step, already run by the caller in ``used``
    seconds of CPU, yielded.

    A node that runs children (a container, a ``flow`` node) has their figures instead, added
    up by the scheduler as each child graph ends: its own steps would count the inline
    children that ran inside them.
    """
    inner = step.__await__()
    sent: Any = None
    thrown: BaseException | None = None
    try:
        if first is not _NOT_STARTED:
            try:
                sent = yield first
            except BaseException as early:  # cancellation and the rest go to the node
                thrown = early
        while True:
            t = clock()
            try:
                if thrown is None:
                    yielded = inner.send(sent)
                else:
                    error, thrown = thrown, None
                    yielded = inner.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                used += clock() - t
            try:
                sent = yield yielded
            except BaseException as exc:  # cancellation and the rest go to the node
                thrown, sent = exc, None
    finally:
        if index not in graph.inclusive:
            res = graph.results[index]
            res.cpu_ms = (res.cpu_ms or 0.0) + used * 1000


async def run_attempts(
    graph: GraphRun, pn: PlannedNode, res: NodeResult, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Every attempt of a node with a timeout, retries or a blocking body.

    Each attempt has its own cancellation token (``ctx.cancelled``), set when the attempt
    times out, fails, or is cancelled (the run's cancel or fail-fast). A blocking node's
    attempt that ended this way may still run in its thread: the next attempt waits for it to
    end (:data:`STRAY_GRACE_S` at least) and is not started while it runs, so attempts never
    overlap; a thread that outlives the grace is reported once, naming the node.
    """
    run = graph.run_
    settings = pn.settings
    isolated = settings.isolated
    cluster = run.cluster
    remote = cluster is not None and not isolated and on_cluster(pn)
    if cluster is not None and run.cluster_values and not remote and held(kwargs):
        kwargs = await cluster.fetch(kwargs)  # a node here needs the values themselves
        if pn.inline:
            return run_inline(graph, pn, res, kwargs)
    ctx = NodeContext(graph, pn, res.path)
    timeout_s = pn.timeout_s
    is_async = pn.node_type.is_async
    executor: Executor | ProcessPool
    if isolated:
        executor = run.conductor.process_pool
    elif cluster is not None:
        executor = run.conductor.threads
    else:
        executor = run.conductor.executor
    local = executor if isinstance(executor, LocalExecutor) else None
    debugger = run.debugger
    injection = debugger.injection(pn, res.path) if debugger is not None else None
    t0 = _perf()
    attempt = 0
    while True:
        attempt += 1
        ctx.attempt = res.attempts = attempt
        token = ctx._token = AttemptToken()
        if graph.trace is not None:
            graph.trace.node_started(pn, res)
        if signals.node_started.receivers:
            emit_node(run, signals.node_started, "node.started", pn, res)
        work: concurrent.futures.Future[Any] | ThreadCall | None = None
        try:
            left = timeout_s
            if injection is not None:  # fails, times out, or starts later (conductor.debug)
                left = await injection.apply(pn, timeout_s)
            if remote:
                assert cluster is not None
                pending: Any = cluster.run_node(run, pn, ctx, res, kwargs)
            elif is_async and not isolated:
                pending = pn.fn(ctx, pn.params, **kwargs)
                clock = run.cpu_clock
                if clock is not None and not pn.node_type.container:
                    pending = cpu_timed(pending, graph, pn.index, clock)
            elif local is not None:  # a thread of this process, its outcome sent to the loop
                work = local.call(run.loop, pn.fn, ctx, pn.params, kwargs)
                pending = work.future
            else:
                pending = executor.submit(run.loop, pn.fn, ctx, pn.params, kwargs)
                if isinstance(pending, concurrent.futures.Future):  # a thread of this process
                    work, pending = pending, asyncio.wrap_future(pending, loop=run.loop)
            if left is None:
                out = await pending
            else:
                scope = asyncio.timeout(left)
                try:
                    async with scope:
                        if debugger is not None and pn.runs_children:
                            debugger.scopes.add(scope)  # stopped while the run is paused
                        out = await pending
                except TimeoutError:
                    if not scope.expired():
                        raise
                    raise NodeTimeout(
                        f"{pn.type_id} timed out after {settings.timeout:g} ms",
                        node_id=pn.id,
                        hint="raise its 'timeout' parameter (milliseconds)",
                    ) from None
                finally:
                    if debugger is not None:
                        debugger.scopes.discard(scope)
            out = check_outputs(pn, out)
            res.duration_ms = (_perf() - t0) * 1000
            return out
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt...: this node's failure
            err = as_error(exc, pn, res.path)
            if attempt > settings.retries or not err.retryable:
                res.duration_ms = (_perf() - t0) * 1000
                raise err  # noqa: B904 - err carries the node's exception as __cause__
        finally:
            token.set()  # this attempt is over, whatever its thread still does
            if work is not None:
                if not work.done() and not (isinstance(work, ThreadCall) and work.cancel()):
                    if isolated:  # killed with its process group; the pool replaces it
                        cast("IsolatedCall", work).kill()
                    else:  # another thread may take its place while it runs on
                        abandon = getattr(executor, "abandon", None)
                        if abandon is not None:
                            abandon(work)
                        run.loop.call_later(STRAY_GRACE_S, _report_stray, run, work, pn.id)
                res.cpu_ms = ctx.cpu_ms
                res.peak_memory = ctx.peak_memory
        delay_ms = settings.retry_delay * 2 ** (attempt - 1)
        if err.retry_after is not None:
            delay_ms = max(delay_ms, err.retry_after * 1000)
        res.error = run.redactor.error(err) if run.redactor.values else err
        if graph.trace is not None:
            graph.trace.node_retrying(pn, res, delay_ms)
        if signals.node_retrying.receivers:
            emit_node(run, signals.node_retrying, "node.retrying", pn, res, delay_ms=delay_ms)
        res.error = None
        await asyncio.sleep(delay_ms / 1000)
        if work is not None and not work.done():
            grace = max(0.0, STRAY_GRACE_S - delay_ms / 1000)
            ended = (
                work.ended()
                if isinstance(work, ThreadCall)
                else asyncio.wrap_future(work, loop=run.loop)
            )
            await asyncio.wait({ended}, timeout=grace)
            if ended.done() and not ended.cancelled():
                ended.exception()  # what the abandoned attempt ended with is not news
            if not work.done():
                res.duration_ms = (_perf() - t0) * 1000
                raise NodeTimeout(
                    f"attempt {attempt} still runs in its thread after it "
                    f"{'timed out' if isinstance(err, NodeTimeout) else 'failed'}; "
                    f"attempt {attempt + 1} was not started, so attempts never overlap",
                    node_id=pn.id,
                    path=res.path,
                    hint="make the node return when ctx.cancelled is true (check it in "
                    "loops, wait on ctx.stop_event instead of sleeping)",
                    retryable=False,
                ) from err


#: How long a retry waits, at least, for an earlier attempt's thread to end.
STRAY_GRACE_S = 2.0

#: Guards every token's flag against a thread that starts waiting on it.
_TOKEN_GUARD = threading.Lock()


class AttemptToken(threading.Event):
    """An attempt's cancellation token (``ctx.cancelled``, ``ctx.stop_event``): an Event
    whose condition is made only when a thread first waits on it. Most attempts end with
    nobody waiting; a plain Event costs a Condition and a Lock per attempt (about 2.2 µs to
    make and set, against 0.3 µs)."""

    def __init__(self) -> None:  # no Event.__init__: its condition is what is put off
        self._flag = False
        self._cond: threading.Condition | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with _TOKEN_GUARD:
            self._flag = True
            cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()

    def clear(self) -> None:
        with _TOKEN_GUARD:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with _TOKEN_GUARD:
            if self._flag:
                return True
            cond = self._cond
            if cond is None:
                cond = self._cond = threading.Condition(threading.Lock())
            # taken before the guard is let go: a set() from now on notifies this wait
            cond.acquire()
        try:
            cond.wait(timeout)
            return self._flag
        finally:
            cond.release()

    def _at_fork_reinit(self) -> None:
        if self._cond is not None:
            self._cond._at_fork_reinit()  # type: ignore[attr-defined]


def _report_stray(
    run: Run, work: concurrent.futures.Future[Any] | ThreadCall, node_id: str
) -> None:
    """Say once per run and node that a node's thread runs on after its attempt ended."""
    if work.done() or node_id in run.strays:
        return
    run.strays.add(node_id)
    _log.warning(
        "node %r ignores its cancellation: its thread still runs %.0f s after its attempt "
        "ended (check ctx.cancelled in the node)",
        node_id,
        STRAY_GRACE_S,
    )
