"""The engine: runs a planned graph, event-driven, with every execution setting enforced.

A :class:`GraphRun` keeps, per node, the count of predecessors not yet finished. A finished
node decrements its successors; those reaching zero become ready and start while the
concurrency limit allows. Async nodes get a task each — except that a task whose node
completes runs the next ready async node (no timeout, no retries) itself, so a chain costs
no new task per node (that node then shares the task's context variables); blocking sync
nodes get a worker thread (or a Dask task), cheap sync nodes run inline. Failure is
fail-fast (siblings cancelled) unless the node says ``continueOnFail``; then its dependants
are skipped and independent branches finish.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from atomiton_core import signals
from atomiton_core.conductor.plan import FROM_CONTAINER, FlowPlan, GraphPlan, PlannedNode
from atomiton_core.conductor.results import (
    ExecutionResult,
    ExecutionStatus,
    NodeResult,
    NodeStatus,
)
from atomiton_core.errors import (
    AtomitonError,
    ExecutionCancelled,
    ExecutionError,
    NodeTimeout,
    OutputContractError,
)
from atomiton_core.nodes.context import NodeContext

if TYPE_CHECKING:
    from atomiton_core.conductor.conductor import Conductor

__all__ = ["GraphRun", "PlannedNode", "Run"]

_perf = time.perf_counter
_now = time.time
_COMPLETED = NodeStatus.COMPLETED
_RUNNING = NodeStatus.RUNNING
_EMPTY: dict[str, Any] = {}
#: Python 3.12+ can start a task eagerly: a node that never suspends finishes inside
#: ``_launch`` with no trip through the event loop, still with its own task as current task.
_EAGER = sys.version_info >= (3, 12)


def _check_outputs(pn: PlannedNode, out: Any) -> dict[str, Any]:
    if out is None:
        return {}
    if type(out) is not dict and not isinstance(out, dict):
        raise OutputContractError(
            f"node {pn.id!r} ({pn.node_type.id}) returned {type(out).__name__}; a node returns "
            "a dict keyed by output port",
            node_id=pn.id,
        )
    declared = pn.declared_outputs
    if declared is not None and not declared.issuperset(out):
        extra = sorted(set(out) - declared)
        raise OutputContractError(
            f"node {pn.id!r} ({pn.node_type.id}) returned undeclared output port(s) {extra}; "
            f"declared: {sorted(declared)}",
            node_id=pn.id,
        )
    return out


def _as_error(exc: BaseException, pn: PlannedNode) -> AtomitonError:
    if isinstance(exc, AtomitonError):
        if exc.node_id is None:
            exc.node_id = pn.id
        return exc
    return ExecutionError.from_exception(exc, node_id=pn.id, node_type=pn.node_type.id)


class Run:
    """One execution of a flow plan."""

    def __init__(
        self,
        conductor: Conductor,
        plan: FlowPlan,
        execution_id: str,
        variables: dict[str, Any],
    ) -> None:
        self.conductor = conductor
        self.plan = plan
        self.execution_id = execution_id
        self.flow_id = plan.flow.id
        self.variables = variables
        self.result = ExecutionResult(execution_id, plan.flow.id)
        self.stop_event = threading.Event()
        self.cancel_requested = False
        self.progress = 0.0
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.top: GraphRun | None = None
        #: Plans of flows referenced by ``flow`` nodes, loaded once per run.
        self.subflows: dict[str, FlowPlan] = {}
        self.retain_outputs = conductor.retain_outputs
        self.retain_results = conductor.retain_results

    # -- signals -------------------------------------------------------------------------
    def node_event(
        self,
        signal: Any,
        kind: str,
        pn: PlannedNode,
        res: NodeResult,
        **extra: Any,
    ) -> None:
        if not signal.receivers:
            return
        signal.send(
            self.conductor,
            event=signals.NodeEvent(
                type=kind,
                execution_id=self.execution_id,
                flow_id=self.flow_id,
                node_id=pn.id,
                node_type=pn.node_type.id,
                path=res.path,
                timestamp=_now(),
                progress=self.current_progress(),
                status=str(res.status),
                attempt=res.attempts,
                error=res.error.to_dict() if res.error is not None else None,
                duration_ms=res.duration_ms,
                **extra,
            ),
        )

    def execution_event(self, signal: Any, kind: str) -> None:
        if not signal.receivers:
            return
        res = self.result
        signal.send(
            self.conductor,
            event=signals.ExecutionEvent(
                type=kind,
                execution_id=self.execution_id,
                flow_id=self.flow_id,
                timestamp=_now(),
                progress=self.progress,
                status=str(res.status),
                error=res.error.to_dict() if res.error is not None else None,
                result=res if res.status is not ExecutionStatus.RUNNING else None,
            ),
        )

    def current_progress(self) -> float:
        top = self.top
        if top is not None and top.n:
            value = (top.finished + top.frac_sum) / top.n
            if value > self.progress:
                self.progress = min(value, 1.0)
        return self.progress

    # -- called through NodeContext --------------------------------------------------------
    def node_progress(self, ctx: NodeContext, fraction: float, message: str | None) -> None:
        if threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self.node_progress, ctx, fraction, message)
            return
        graph = ctx._graph
        pn = ctx._node
        graph.set_fraction(pn.index, min(max(fraction, 0.0), 1.0))
        res = graph.results[pn.index]
        self.node_event(
            signals.node_progress, "node.progress", pn, res, fraction=fraction, message=message
        )

    async def run_children(
        self,
        ctx: NodeContext,
        inputs: Mapping[str, Any],
        label: str | None,
        variables: Mapping[str, Any] | None,
        concurrency: int | None,
        span: tuple[float, float] | None,
    ) -> dict[str, Any]:
        pn = ctx._node
        children = pn.children
        if children is None:
            raise ExecutionError(
                f"node {pn.id!r} ({pn.node_type.id}) asked to run children but has none",
                node_id=pn.id,
            )
        prefix = f"{ctx.path}/{label}/" if label else f"{ctx.path}/"
        scope = ctx._graph.variables
        if variables:
            scope = {**scope, **variables}
        graph = GraphRun(
            self,
            children,
            prefix,
            inputs,
            scope,
            concurrency if concurrency is not None else children.concurrency,
            parent=ctx,
            span=span,
        )
        await graph.run()
        return graph.container_outputs(pn)

    async def run_flow(
        self, ctx: NodeContext, flow_id: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        chain = ctx._graph.chain
        if flow_id in chain:
            raise ExecutionError(
                "flow reference cycle: " + " -> ".join([*chain, flow_id]),
                node_id=ctx.node_id,
                code="CIRCULAR_DEPENDENCY",
                retryable=False,
            )
        plan = self.subflows.get(flow_id)
        if plan is None:
            plan = await asyncio.to_thread(self.conductor.prepare_stored, flow_id)
            self.subflows[flow_id] = plan
        variables = dict(plan.variables)
        variables.update(inputs)
        graph = GraphRun(
            self,
            plan.root,
            f"{ctx.path}/",
            _EMPTY,
            variables,
            plan.root.concurrency,
            parent=ctx,
            span=(0.0, 1.0),
            chain=(*chain, flow_id),
        )
        await graph.run()
        results = graph.results
        return {
            results[i].node_id: graph.outputs[i] or {}
            for i in plan.root.sinks
            if results[i].status is _COMPLETED
        }

    # -- the whole execution ---------------------------------------------------------------
    async def main(self) -> ExecutionResult:
        result = self.result
        result.started_at = _now()
        t0 = _perf()
        self.execution_event(signals.execution_started, "execution.started")
        plan = self.plan
        self.top = top = GraphRun(
            self,
            plan.root,
            "",
            _EMPTY,
            self.variables,
            plan.root.concurrency,
            parent=None,
            chain=(self.flow_id,),
        )
        try:
            if plan.timeout_s is None:
                await top.run()
            else:
                try:
                    async with asyncio.timeout(plan.timeout_s):
                        await top.run()
                except TimeoutError:
                    raise NodeTimeout(
                        f"flow {self.flow_id!r} timed out after {plan.timeout_s * 1000:g} ms",
                        hint="raise settings.runtime.timeout or make the slow nodes faster",
                    ) from None
        except asyncio.CancelledError:
            if not self.cancel_requested:
                self._finish(ExecutionStatus.CANCELLED, t0, ExecutionCancelled("cancelled"))
                raise
            self._finish(
                ExecutionStatus.CANCELLED,
                t0,
                ExecutionCancelled(f"execution {self.execution_id!r} was cancelled"),
            )
        except AtomitonError as exc:
            self._finish(ExecutionStatus.FAILED, t0, exc)
        else:
            results = top.results
            outputs = top.outputs
            result.outputs = {
                results[i].node_id: outputs[i] or {}
                for i in plan.root.sinks
                if results[i].status is _COMPLETED
            }
            self._finish(ExecutionStatus.COMPLETED, t0, None)
        return result

    def finish_unstarted(self) -> None:
        """Report an execution cancelled before it ran a single step."""
        self.result.started_at = _now()
        self._finish(
            ExecutionStatus.CANCELLED,
            _perf(),
            ExecutionCancelled(f"execution {self.execution_id!r} was cancelled before it started"),
        )

    def _finish(self, status: ExecutionStatus, t0: float, error: AtomitonError | None) -> None:
        result = self.result
        result.status = status
        result.error = error
        result.duration_ms = (_perf() - t0) * 1000
        if status is ExecutionStatus.COMPLETED:
            self.progress = 1.0
            self.execution_event(signals.execution_completed, "execution.completed")
        elif status is ExecutionStatus.CANCELLED:
            self.execution_event(signals.execution_cancelled, "execution.cancelled")
        else:
            self.execution_event(signals.execution_failed, "execution.failed")


class GraphRun:
    """One run of one graph level: the flow's top level, or a container's children."""

    def __init__(
        self,
        run: Run,
        plan: GraphPlan,
        prefix: str,
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        concurrency: int | None,
        parent: NodeContext | None,
        span: tuple[float, float] | None = (0.0, 1.0),
        chain: tuple[str, ...] | None = None,
    ) -> None:
        self.run_ = run
        #: The part of the parent node's progress this graph accounts for (None: none).
        self.span = span
        #: Flow ids from the top-level flow down to this graph (sub-flow references).
        self.chain: tuple[str, ...] = (
            chain if chain is not None else parent._graph.chain if parent else ()
        )
        self.plan = plan
        self.prefix = prefix
        self.inputs = inputs
        self.variables = variables
        self.limit = concurrency
        self.parent = parent
        nodes = plan.nodes
        self.n = len(nodes)
        self.outputs: list[dict[str, Any] | None] = [None] * self.n
        self.remaining = [pn.n_preds for pn in nodes]
        self.ready: deque[int] = deque(plan.roots)
        self.running = 0
        self.finished = 0
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.error: AtomitonError | None = None
        self.stopping = False
        self.draining = False
        #: A task's eager first step is running inside ``_launch``.
        self.eager_step = False
        self.done: asyncio.Future[None] = run.loop.create_future()
        self.frac: dict[int, float] = {}
        self.frac_sum = 0.0
        self.observed = bool(
            signals.node_progress.receivers
            or signals.node_completed.receivers
            or signals.node_started.receivers
        )
        #: Without retained outputs, a node's outputs go once every consumer has started.
        self.consumers = [] if run.retain_outputs else [len(pn.successors) for pn in nodes]
        #: ``retain_results="errors"``: completed nodes leave the result table.
        self.prune = run.retain_results == "errors"
        table = run.result.nodes
        self.results: list[NodeResult] = []
        append = self.results.append
        for pn in nodes:
            path = prefix + pn.id if prefix else pn.id
            res = NodeResult(pn.id, pn.node_type.id, path)
            append(res)
            table[path] = res

    # -- driving -------------------------------------------------------------------------
    async def run(self) -> None:
        if self.n == 0:
            return
        self._drain()
        try:
            await self.done
        except asyncio.CancelledError:
            self._stop(cancel=True)
            while self.tasks:
                await asyncio.wait(list(self.tasks.values()))
            raise
        if self.error is not None:
            raise self.error

    def _drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        try:
            ready = self.ready
            limit = self.limit
            while ready and not self.stopping and (limit is None or self.running < limit):
                i = ready.popleft()
                try:
                    self._launch(i)
                except Exception as exc:  # a signal receiver raised
                    self._fail_run(_as_error(exc, self.plan.nodes[i]))
        finally:
            self.draining = False
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.done.done():
            return
        if self.finished == self.n or (self.stopping and self.running == 0):
            self.done.set_result(None)

    def _launch(self, i: int) -> None:
        kwargs = self._prepare(i)
        if kwargs is not None:
            self._spawn(i, kwargs)

    def _prepare(self, i: int) -> dict[str, Any] | None:
        """Gather a node's inputs and start it; skipped and inline nodes are finished here
        (None), others get the keyword arguments their task will call them with."""
        pn = self.plan.nodes[i]
        res = self.results[i]
        kwargs: dict[str, Any] = {}
        if pn.inputs:
            outputs = self.outputs
            live = 0
            for src, sport, tport, multiple in pn.inputs:
                source = self.inputs if src == FROM_CONTAINER else outputs[src]
                if source is None or sport not in source:
                    continue
                live += 1
                if multiple:
                    kwargs.setdefault(tport, []).append(source[sport])
                else:
                    kwargs[tport] = source[sport]
            if self.consumers:
                self._release(pn)
            if live == 0 or (pn.required and not pn.required.issubset(kwargs)):
                self._skip(i, "upstream")
                return None
        if not pn.settings.enabled:
            self._skip(i, "disabled")
            return None
        run = self.run_
        res.status = _RUNNING
        res.started_at = _now()
        res.attempts = 1
        if pn.inline:
            t0 = _perf()
            if signals.node_started.receivers:
                run.node_event(signals.node_started, "node.started", pn, res)
            try:
                out = _check_outputs(
                    pn, pn.fn(NodeContext(run, self, pn, res.path), pn.params, **kwargs)
                )
            except Exception as exc:
                res.duration_ms = (_perf() - t0) * 1000
                self._failed(i, _as_error(exc, pn))
                return None
            res.duration_ms = (_perf() - t0) * 1000
            self._completed(i, out)
            return None
        return kwargs

    def _spawn(self, i: int, kwargs: dict[str, Any]) -> None:
        """Give a node its task."""
        self.running += 1
        loop = self.run_.loop
        coro = self._node_task(i, self.plan.nodes[i], self.results[i], kwargs)
        if loop.get_task_factory() is not None:
            task = loop.create_task(coro)
        elif _EAGER:
            self.eager_step = True
            try:
                task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
            finally:
                self.eager_step = False
            if task.done():  # it settled itself already
                return
        else:  # what create_task does with no factory, minus its bookkeeping
            task = asyncio.Task(coro, loop=loop)
        self.tasks[i] = task

    def _release(self, pn: PlannedNode) -> None:
        """Drop predecessors' outputs once their last consumer has taken its inputs."""
        consumers = self.consumers
        nodes = self.plan.nodes
        for p in pn.preds:
            consumers[p] -= 1
            if consumers[p] == 0 and not nodes[p].keep:
                self.outputs[p] = None

    async def _node_task(
        self, i: int, pn: PlannedNode, res: NodeResult, kwargs: dict[str, Any]
    ) -> None:
        """A node's task. It settles its own outcome; a task cancelled by ``_stop`` is
        settled by the done callback ``_stop`` adds (it may be cancelled before it starts).

        When the node completes and the next ready node is a direct async one, that node runs
        on in this task (a chain then costs no task and no loop round trip per node); every
        64 such hops the task yields to the loop, so a long chain never starves it.
        """
        task = self.tasks.get(i)  # None during an eager first step: no continuation then
        hops = 0
        while True:
            try:
                if pn.direct:
                    run = self.run_
                    t0 = _perf()
                    if signals.node_started.receivers:
                        run.node_event(signals.node_started, "node.started", pn, res)
                    try:
                        ctx = NodeContext(run, self, pn, res.path)
                        out = _check_outputs(pn, await pn.fn(ctx, pn.params, **kwargs))
                    finally:
                        res.duration_ms = (_perf() - t0) * 1000
                else:
                    out = await self._attempts(pn, res, kwargs)
            except asyncio.CancelledError:
                if self.stopping:
                    raise
                # the node cancelled itself: a failure like any other
                self._settle(i, None, ExecutionCancelled(f"node {pn.id!r} was cancelled"))
                return
            except Exception as exc:
                self._settle(i, None, _as_error(exc, pn))
                return
            following = self._settle(i, out, None, task)
            if following is None:
                return
            i, kwargs = following
            pn = self.plan.nodes[i]
            res = self.results[i]
            hops += 1
            if not hops & 63:
                await asyncio.sleep(0)

    def _settle(
        self,
        i: int,
        out: dict[str, Any] | None,
        err: AtomitonError | None,
        task: asyncio.Task[None] | None = None,
    ) -> tuple[int, dict[str, Any]] | None:
        """Record a task's outcome; with ``task``, maybe hand it the next ready node."""
        if err is not None and self.eager_step:
            # a failure surfaces after the ready nodes launched with it have started, as
            # without eager tasks (fail-fast cancels siblings, it does not pre-empt them)
            self.run_.loop.call_soon(self._settle, i, out, err)
            return None
        self.running -= 1
        self.tasks.pop(i, None)
        try:
            if err is None:
                self._completed(i, out or {})
            else:
                self._failed(i, err)
        except Exception as exc:  # a signal receiver raised: the run fails with its error
            self._fail_run(_as_error(exc, self.plan.nodes[i]))
        following = None
        if task is not None and err is None and not self.stopping and not self.eager_step:
            following = self._continue_with(task)
        self._drain()
        return following

    def _continue_with(self, task: asyncio.Task[None]) -> tuple[int, dict[str, Any]] | None:
        """Take the first ready node for ``task`` if it is a direct async node."""
        ready = self.ready
        nodes = self.plan.nodes
        limit = self.limit
        while ready and nodes[ready[0]].direct and (limit is None or self.running < limit):
            j = ready.popleft()
            try:
                kwargs = self._prepare(j)
            except Exception as exc:  # a signal receiver raised
                self._fail_run(_as_error(exc, nodes[j]))
                return None
            if kwargs is not None:
                self.running += 1
                self.tasks[j] = task
                return j, kwargs
        return None

    async def _attempts(
        self, pn: PlannedNode, res: NodeResult, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        run = self.run_
        ctx = NodeContext(run, self, pn, res.path)
        settings = pn.settings
        timeout_s = pn.timeout_s
        node_type = pn.node_type
        t0 = _perf()
        attempt = 0
        while True:
            attempt += 1
            ctx.attempt = res.attempts = attempt
            if signals.node_started.receivers:
                run.node_event(signals.node_started, "node.started", pn, res)
            try:
                if node_type.is_async:
                    pending: Any = pn.fn(ctx, pn.params, **kwargs)
                else:
                    pending = run.conductor.executor.submit(run.loop, pn.fn, ctx, pn.params, kwargs)
                if timeout_s is None:
                    out = await pending
                else:
                    scope = asyncio.timeout(timeout_s)
                    try:
                        async with scope:
                            out = await pending
                    except TimeoutError:
                        if not scope.expired():
                            raise
                        raise NodeTimeout(
                            f"node {pn.id!r} ({node_type.id}) timed out after "
                            f"{settings.timeout:g} ms",
                            node_id=pn.id,
                            hint="raise its 'timeout' parameter (milliseconds)",
                        ) from None
                out = _check_outputs(pn, out)
                res.duration_ms = (_perf() - t0) * 1000
                return out
            except Exception as exc:
                err = _as_error(exc, pn)
                if attempt > settings.retries or not err.retryable:
                    res.duration_ms = (_perf() - t0) * 1000
                    raise err  # noqa: B904 - err carries the node's exception as __cause__
            delay_ms = settings.retry_delay * 2 ** (attempt - 1)
            if err.retry_after is not None:
                delay_ms = max(delay_ms, err.retry_after * 1000)
            res.error = err
            if signals.node_retrying.receivers:
                run.node_event(signals.node_retrying, "node.retrying", pn, res, delay_ms=delay_ms)
            res.error = None
            await asyncio.sleep(delay_ms / 1000)

    def _task_done(self, i: int, task: asyncio.Task[None]) -> None:
        if self.tasks.get(i) is not task:  # it settled itself
            return
        self.running -= 1
        del self.tasks[i]
        try:
            if task.cancelled():
                if self.stopping:
                    self._cancelled(i)
                else:  # the node cancelled itself: a failure like any other
                    self._failed(
                        i, ExecutionCancelled(f"node {self.plan.nodes[i].id!r} was cancelled")
                    )
            else:
                exc = task.exception()
                err = exc or ExecutionCancelled(f"node {self.plan.nodes[i].id!r} was cancelled")
                self._failed(i, _as_error(err, self.plan.nodes[i]))
        except Exception as exc:  # a signal receiver raised: the run fails with its error
            self._fail_run(_as_error(exc, self.plan.nodes[i]))
        self._drain()

    # -- node outcomes -------------------------------------------------------------------
    def _advance(self, i: int) -> None:
        self.finished += 1
        frac = self.frac
        if frac and i in frac:
            self.frac_sum -= frac.pop(i)
        remaining = self.remaining
        ready = self.ready
        for s in self.plan.nodes[i].successors:
            remaining[s] -= 1
            if remaining[s] == 0:
                ready.append(s)
        if self.observed and self.span is not None and self.parent is not None:
            self._propagate()

    def _completed(self, i: int, out: dict[str, Any]) -> None:
        res = self.results[i]
        res.status = _COMPLETED
        if self.run_.retain_outputs:
            res.outputs = out
        self.outputs[i] = out
        self._advance(i)
        if signals.node_completed.receivers:
            self.run_.node_event(
                signals.node_completed, "node.completed", self.plan.nodes[i], res, outputs=out
            )
        if self.prune:
            self.run_.result.nodes.pop(res.path, None)

    def _skip(self, i: int, reason: str) -> None:
        res = self.results[i]
        res.status = NodeStatus.SKIPPED
        res.reason = reason
        self._advance(i)
        if signals.node_skipped.receivers:
            self.run_.node_event(
                signals.node_skipped, "node.skipped", self.plan.nodes[i], res, message=reason
            )

    def _failed(self, i: int, err: AtomitonError) -> None:
        pn = self.plan.nodes[i]
        res = self.results[i]
        res.status = NodeStatus.FAILED
        res.error = err
        if pn.settings.continue_on_fail:
            self._advance(i)
            self.run_.node_event(signals.node_failed, "node.failed", pn, res)
            return
        self.run_.node_event(signals.node_failed, "node.failed", pn, res)
        self._fail_run(err)

    def _fail_run(self, err: AtomitonError) -> None:
        if self.error is None:
            self.error = err
        self._stop(cancel=False)

    def _cancelled(self, i: int) -> None:
        res = self.results[i]
        res.status = NodeStatus.CANCELLED
        if res.error is None:
            res.error = ExecutionCancelled(
                f"node {res.node_id!r} was cancelled", node_id=res.node_id
            )
        if res.started_at is not None and res.duration_ms is None:
            res.duration_ms = (_now() - res.started_at) * 1000
        self.run_.node_event(signals.node_cancelled, "node.cancelled", self.plan.nodes[i], res)

    def _stop(self, *, cancel: bool) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.parent is None:
            self.run_.stop_event.set()
        for i, task in self.tasks.items():
            task.cancel()
            task.add_done_callback(partial(self._task_done, i))
        status = NodeStatus.CANCELLED if cancel else NodeStatus.SKIPPED
        for res in self.results:
            if res.status is NodeStatus.PENDING:
                res.status = status
                res.reason = "cancelled" if cancel else "run failed"
        self._maybe_done()

    # -- progress ------------------------------------------------------------------------
    def set_fraction(self, i: int, fraction: float) -> None:
        old = self.frac.get(i, 0.0)
        if fraction > old:
            self.frac[i] = fraction
            self.frac_sum += fraction - old
            if self.span is not None and self.parent is not None:
                self._propagate()

    def fraction(self) -> float:
        return (self.finished + self.frac_sum) / self.n if self.n else 1.0

    def _propagate(self) -> None:
        parent = self.parent
        span = self.span
        if parent is not None and span is not None:
            start, end = span
            parent._graph.set_fraction(parent._node.index, start + (end - start) * self.fraction())

    # -- results -------------------------------------------------------------------------
    def container_outputs(self, container: PlannedNode) -> dict[str, Any]:
        outputs = self.outputs
        if self.plan.outputs_from:
            out: dict[str, Any] = {}
            for src, sport, name in self.plan.outputs_from:
                source = outputs[src]
                if source is not None and sport in source:
                    out[name] = source[sport]
            return out
        return {
            self.results[i].node_id: outputs[i] for i in self.plan.sinks if outputs[i] is not None
        }
