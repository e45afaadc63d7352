"""One execution of a flow plan: its lifecycle, from started to its result.

:class:`Run` starts the top-level graph (see :mod:`~atomiton_core.conductor.scheduler`), holds
the flow-wide timeout, turns the outcome into the :class:`~atomiton_core.ExecutionResult`
(completed, failed, cancelled) and emits the execution signals. Nodes run as described in
:mod:`~atomiton_core.conductor.attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from atomiton_core import signals
from atomiton_core.conductor.debug import Debugger, DebugOptions
from atomiton_core.conductor.events import emit_execution
from atomiton_core.conductor.plan import FlowPlan
from atomiton_core.conductor.progress import overall
from atomiton_core.conductor.runlog import RunLog, StoredOutputs, current_trigger, value_digest
from atomiton_core.conductor.scheduler import DONE, GraphRun
from atomiton_core.errors import (
    AtomitonError,
    ExecutionCancelled,
    NodeTimeout,
    ResourceLimitExceeded,
    StorageError,
)
from atomiton_core.results import ExecutionResult, ExecutionStatus
from atomiton_core.secrets import Redactor, Secrets

if TYPE_CHECKING:
    from collections.abc import Mapping

    from atomiton_core.conductor.conductor import Conductor
    from atomiton_core.conductor.dask_executor import DaskExecutor
    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.replay import Recording
    from atomiton_core.storage.runs import PriorRun

__all__ = ["Run"]

_log = logging.getLogger("atomiton.conductor")
#: Where signal receivers' errors are told (as ``conductor.events`` says).
_receivers_log = logging.getLogger("atomiton.signals")
_perf = time.perf_counter
_now = time.time
_EMPTY: dict[str, Any] = {}
#: How often the memory ceiling is checked while a run goes on.
MEMORY_POLL_S = 0.1


class Run:
    """One execution of a flow plan."""

    def __init__(
        self,
        conductor: Conductor,
        plan: FlowPlan,
        execution_id: str,
        variables: dict[str, Any],
        inputs: Mapping[str, Any] | None = None,
        prior: PriorRun | None = None,
        cache_mode: str | None = None,
        replay: Recording | None = None,
        debug: DebugOptions | None = None,
    ) -> None:
        self.conductor = conductor
        self.plan = plan
        self.execution_id = execution_id
        self.flow_id = plan.flow.id
        self.variables = variables
        #: What the caller gave (the variables are the flow's defaults with these over them).
        self.inputs: Mapping[str, Any] = inputs or {}
        #: What started the run by itself (a trigger of ``atomiton serve``), or None.
        self.trigger = current_trigger()
        #: The stored run this one resumes: its reusable node outputs by path.
        self.prior = prior
        self.resumed_from = prior.execution_id if prior is not None else None
        #: A replay: the recording that answers for the nodes that are not pure.
        self.replay = replay
        #: The paths of the nodes the recording answered for.
        self.answered: set[str] = set()
        #: The run's log and record (None: not recorded); ``trace``: the log when it keeps
        #: events and outputs (``record="full"``), which the scheduler feeds.
        self.log: RunLog | None = None
        self.trace: RunLog | None = None
        self.result = ExecutionResult(execution_id, plan.flow.id)
        self.stop_event = threading.Event()
        self.cancel_requested = False
        #: Why a requested cancel was asked (said in the result's error).
        self.abort_reason: str | None = None
        #: The task that runs ``main`` (set by whoever starts it).
        self.task: asyncio.Task[Any] | None = None
        #: Breakpoints, injected faults, slow motion (None: a run that is not debugged).
        self.debugger: Debugger | None = (
            Debugger(
                self,
                set(debug.breakpoints),
                dict(debug.injections),
                debug.slow_mo_ms,
                halted=debug.step,
            )
            if debug is not None
            else None
        )
        self.progress = 0.0
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.top: GraphRun | None = None
        #: An error failing the run from outside its nodes: a plugin's node hook, the memory
        #: ceiling (see ``receiver_failed``).
        self.receiver_error: AtomitonError | None = None
        #: Signal receivers that raised during this run: their key -> (what it is, the signal
        #: it first raised on, how many times it raised). See ``receiver_raised``.
        self.receiver_errors: dict[Any, list[Any]] = {}
        #: Nodes whose thread was reported running on after their attempt ended.
        self.strays: set[str] = set()
        #: Plans of flows referenced by ``flow`` nodes, loaded once per run.
        self.subflows: dict[str, FlowPlan] = {}
        #: Secret values this run handed out, masked in everything it shows.
        self.redactor = Redactor()
        for value in plan.secret_values:
            self.redactor.add(value)
        self.secrets = Secrets(conductor.secret_providers, self.redactor)
        self.retain_outputs = conductor.retain_outputs
        self.retain_results = conductor.retain_results
        #: The clock of inline and async nodes' CPU time; None: not measured.
        self.cpu_clock = time.thread_time if conductor.cpu_time else None
        #: The conductor's executor when it keeps the values of the nodes it runs (a Dask
        #: cluster; see ``conductor.cluster``), and how many such values this run holds.
        executor = conductor.executor
        self.cluster: DaskExecutor | None = (
            executor if getattr(executor, "holds_values", False) else None  # type: ignore[assignment]
        )
        self.cluster_values = 0
        storage = conductor.storage
        #: The conductor's output cache, unless this run does without it.
        self.cache_mode = cache_mode or conductor.cache_mode
        self.cache = conductor.cache_store if self.cache_mode != "off" else None
        #: Cached nodes this run said could not be cached (each is said once).
        self.uncached: set[str] = set()
        #: Cache entries this run queued for writing (the run ends once they are written).
        self.cache_writes = 0
        #: The run queued its flow to be kept with the runs (see RunLog): written before
        #: the run ends, as the cache entries are.
        self.keeps_flow = False
        if conductor.record != "off" and storage is not None:
            self.log = RunLog(self, storage, conductor.log_writer, conductor.record)  # type: ignore[arg-type]
            if self.log.full:
                self.trace = self.log
        #: A digest of the run's variables, when its nodes are keyed (for the log or a cache).
        self.variables_digest: str | None = None
        if self.trace is not None or (self.cache is not None and plan.root.uses_cache):
            self.variables_digest = value_digest(variables, "variables")

    def cache_put(self, key: str, pn: PlannedNode, stored: StoredOutputs) -> None:
        """Store a cached node's outputs, from the conductor's writer thread (creating a file
        is slow on some disks; the run goes on meanwhile and waits for them at its end). A
        cache that cannot be written is said once."""
        cache = self.cache
        assert cache is not None
        self.cache_writes += 1
        type_id, version, eid = pn.type_id, pn.node_type.version, self.execution_id

        def put() -> None:
            try:
                cache.put(key, type_id, version, eid, stored)
            except (OSError, StorageError) as exc:
                if "cache" not in self.uncached:
                    self.uncached.add("cache")
                    _log.error("run %s: the cache could not be written: %s", eid, exc)

        self.conductor.log_writer.call(put)

    def current_progress(self) -> float:
        self.progress = overall(self.top, self.progress)
        return self.progress

    def receiver_raised(self, signal: Any, receiver: Any, exc: BaseException) -> None:
        """A signal receiver raised: the run goes on. The first error of each receiver in a
        run is logged with its traceback; the count of them all, when the run ends."""
        key = _receiver_key(receiver)
        seen = self.receiver_errors.get(key)
        if seen is not None:
            seen[2] += 1
            return
        name = _receiver_name(receiver)
        self.receiver_errors[key] = [name, signal.name, 1]
        _receivers_log.error(
            "run %s: receiver %s of signal %r raised %s: %s; the run goes on, and this "
            "receiver's further errors in this run are counted, not logged",
            self.execution_id,
            name,
            signal.name,
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def _report_receivers(self) -> None:
        """Say, as the run ends, how often each receiver that raised did."""
        for name, signal_name, count in self.receiver_errors.values():
            if count > 1:
                _receivers_log.error(
                    "run %s: receiver %s raised %d times (first on signal %r)",
                    self.execution_id,
                    name,
                    count,
                    signal_name,
                )

    def receiver_failed(self, err: AtomitonError) -> None:
        """A plugin's node hook raised (or the memory ceiling was crossed): the run fails."""
        if self.receiver_error is None:
            self.receiver_error = err
        if self.top is not None:
            self.top.fail_run(err)

    async def _watch_memory(self, ceiling_mb: float) -> None:
        """Fail the run once the conductor's process and its workers hold over the ceiling."""
        import psutil

        me = psutil.Process()
        limit = ceiling_mb * 1024 * 1024
        while True:
            used = me.memory_info().rss
            pool = self.conductor._process_pool
            for pid in pool.pids if pool is not None else ():
                with contextlib.suppress(psutil.Error):  # a worker just replaced
                    used += psutil.Process(pid).memory_info().rss
            if used > limit:
                self.receiver_failed(
                    ResourceLimitExceeded(
                        f"the conductor used {used / 2**20:.0f} MB, over its memory ceiling "
                        f"of {ceiling_mb:g} MB; the run was stopped",
                        hint="raise memory_ceiling, or give the hungry nodes a memoryLimit",
                        limit="memoryCeiling",
                    )
                )
                return
            await asyncio.sleep(MEMORY_POLL_S)

    # -- the whole execution ---------------------------------------------------------------
    async def main(self) -> ExecutionResult:
        result = self.result
        result.started_at = _now()
        t0 = _perf()
        if self.log is not None:
            self.log.open()
        emit_execution(self, signals.execution_started, "execution.started")
        plan = self.plan
        self.top = top = GraphRun(
            self,
            plan.root,
            "",
            _EMPTY,
            self.variables,
            plan.root.concurrency,
            chain=(self.flow_id,),
        )
        ceiling = self.conductor.memory_ceiling
        watcher = (
            self.loop.create_task(self._watch_memory(ceiling)) if ceiling is not None else None
        )
        try:
            if "atomiton_before_run" in self.conductor.hooks:
                self.conductor.call_hook(
                    "atomiton_before_run",
                    execution_id=self.execution_id,
                    flow_id=self.flow_id,
                    inputs=self.variables,
                    config=self.conductor.config,
                )
            if self.receiver_error is not None:
                raise self.receiver_error
            if self.cluster is not None:
                await self.cluster.begin_run(self)
            if plan.timeout_s is None:
                await top.run()
            else:
                try:
                    async with asyncio.timeout(plan.timeout_s) as scope:
                        if self.debugger is not None:  # stopped while the run is paused
                            self.debugger.scopes.add(scope)
                        await top.run()
                except TimeoutError:
                    raise NodeTimeout(
                        f"flow {self.flow_id!r} timed out after {plan.timeout_s * 1000:g} ms",
                        hint="raise settings.runtime.timeout or make the slow nodes faster",
                    ) from None
        except asyncio.CancelledError:
            if not self.cancel_requested:
                self._finish(ExecutionStatus.CANCELLED, t0, ExecutionCancelled("cancelled"))
                if self.log is not None:  # cancelled from outside: the record is not waited for
                    self.log.close(result)
                self._announce()
                raise
            why = f" ({self.abort_reason})" if self.abort_reason else ""
            self._finish(
                ExecutionStatus.CANCELLED,
                t0,
                ExecutionCancelled(f"execution {self.execution_id!r} was cancelled{why}"),
            )
        except AtomitonError as exc:
            self._finish(ExecutionStatus.FAILED, t0, exc)
        else:
            results = top.results
            outputs = top.outputs
            result.outputs = {
                results[i].node_id: outputs[i] or {}
                for i in plan.root.sinks
                if results[i].status in DONE
            }
            fetched = await self._fetch_outputs() if self.cluster_values else None
            if fetched is None:
                self._finish(ExecutionStatus.COMPLETED, t0, None)
            else:
                self._finish(ExecutionStatus.FAILED, t0, fetched)
        finally:
            if watcher is not None:
                watcher.cancel()
            if self.cluster is not None:
                self.cluster.end_run(self)
        if self.cache_writes or self.keeps_flow:  # written before anyone hears it ended
            await self.conductor.log_writer.drained()
        if self.log is not None:  # the record is written before anyone hears the run ended
            await self.log.finish(result)
        self._announce()
        return result

    async def _fetch_outputs(self) -> AtomitonError | None:
        """The run's outputs that are held on the cluster, fetched (and the sinks' results
        with them); the error that prevented it, if any."""
        assert self.cluster is not None
        result = self.result
        try:
            result.outputs = await self.cluster.fetch(result.outputs)
        except AtomitonError as exc:
            return exc
        except Exception as exc:
            return StorageError(f"the run's outputs could not be fetched from the cluster: {exc}")
        for node_id, outs in result.outputs.items():
            res = result.nodes.get(node_id)
            if res is not None and res.outputs is not None:
                res.outputs = outs
        return None

    def finish_unstarted(self) -> None:
        """Report an execution cancelled before it ran a single step."""
        self.result.started_at = _now()
        self._finish(
            ExecutionStatus.CANCELLED,
            _perf(),
            ExecutionCancelled(f"execution {self.execution_id!r} was cancelled before it started"),
        )
        self._announce()

    def _finish(self, status: ExecutionStatus, t0: float, error: AtomitonError | None) -> None:
        result = self.result
        if self.redactor.values:
            result.outputs = self.redactor.value(result.outputs)
            self.redactor.error(error)
        result.status = status
        result.error = error
        result.duration_ms = (_perf() - t0) * 1000
        if status is ExecutionStatus.COMPLETED:
            self.progress = 1.0

    def _announce(self) -> None:
        """The execution's final signal."""
        if self.debugger is not None:
            self.debugger.ended()
        status = self.result.status
        if status is ExecutionStatus.COMPLETED:
            emit_execution(self, signals.execution_completed, "execution.completed")
        elif status is ExecutionStatus.CANCELLED:
            emit_execution(self, signals.execution_cancelled, "execution.cancelled")
        else:
            emit_execution(self, signals.execution_failed, "execution.failed")
        if self.receiver_errors:
            self._report_receivers()


def _receiver_key(receiver: Any) -> Any:
    """The same for every call of one receiver (blinker hands out a new bound method each time
    for a receiver it holds weakly)."""
    owner = getattr(receiver, "__self__", None)
    func = getattr(receiver, "__func__", None)
    if owner is not None and func is not None:
        return (id(owner), id(func))
    return id(receiver)


def _receiver_name(receiver: Any) -> str:
    name = getattr(receiver, "__qualname__", None) or type(receiver).__qualname__
    module = getattr(receiver, "__module__", None)
    return f"{module}.{name}" if module else str(name)
