"""The conductor: owns a catalogue (its own plugin manager), storage and worker threads."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from atomiton_core import codec, signals
from atomiton_core.catalogue import Catalogue
from atomiton_core.conductor.debug import Debugger, DebugOptions
from atomiton_core.conductor.executors import Executor, LocalExecutor, create_executor
from atomiton_core.conductor.plan import FlowPlan, PlanCache, plan_flow
from atomiton_core.conductor.replay import Recording, ReplayReport
from atomiton_core.conductor.run import Run
from atomiton_core.conductor.runlog import RECORD_MODES, LogWriter
from atomiton_core.errors import (
    ConfigurationError,
    ExecutionConflict,
    PluginError,
    ValidationReport,
)
from atomiton_core.flow.models import Flow
from atomiton_core.flow.validation import validate
from atomiton_core.flow.variables import check_inputs
from atomiton_core.flow.yaml_io import load_flow, loads_flow
from atomiton_core.nodes import expressions
from atomiton_core.results import ExecutionResult, ExecutionStatus
from atomiton_core.secrets import SecretProvider, create_providers
from atomiton_core.security import Security
from atomiton_core.storage.cache import CACHE_MODES, CacheStore
from atomiton_core.storage.flows import FlowStorage, create_storage
from atomiton_core.storage.runs import PriorRun, new_run_id

if TYPE_CHECKING:
    from atomiton_core.conductor.isolation import ProcessPool

__all__ = ["Conductor", "Execution", "create_conductor"]

#: What the conductor takes for a flow: a Flow, a plan, a path or URL of a flow file, an id
#: in its storage, YAML or JSON text (anything with a line break, or starting with ``{``),
#: or the flow's data as a mapping (from JSON, from an editor).
FlowLike = Flow | FlowPlan | Mapping[str, Any] | str | os.PathLike[str]
_log = logging.getLogger("atomiton.plugins")
_FINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})


class Execution:
    """A started execution: await ``result()``, follow ``events()``, or ``cancel()`` it."""

    def __init__(self, run: Run, task: asyncio.Task[ExecutionResult]) -> None:
        self._run = run
        self._task = task

    @property
    def execution_id(self) -> str:
        return self._run.execution_id

    @property
    def flow_id(self) -> str:
        return self._run.flow_id

    @property
    def progress(self) -> float:
        return self._run.progress

    @property
    def debugger(self) -> Debugger | None:
        """Its breakpoints and paused nodes (``step()``, ``cont()``, ``abort()``), when it
        was started with any debugging option; None otherwise."""
        return self._run.debugger

    @property
    def snapshot(self) -> ExecutionResult:
        """The result as it stands now (status ``running`` until it finishes)."""
        return self._run.result

    def done(self) -> bool:
        """Whether the execution has ended (completed, failed or cancelled)."""
        return self._task.done()

    def cancel(self) -> bool:
        """Cancel the execution (its running nodes are cancelled, their programs killed);
        False if it had already ended."""
        if self._task.done():
            return False
        self._run.cancel_requested = True
        self._run.stop_event.set()
        return self._task.cancel()

    async def events(self) -> AsyncGenerator[signals.NodeEvent | signals.ExecutionEvent]:
        """This execution's signal payloads as they happen, ending after the final one.

        Called right after ``start()`` (before the loop has run the execution), it yields
        every event from ``execution.started`` on; called later, those from then on.
        """
        if self._task.done():
            return
        queue: asyncio.Queue[signals.NodeEvent | signals.ExecutionEvent] = asyncio.Queue()
        eid = self._run.execution_id

        def receive(sender: Any, event: signals.NodeEvent | signals.ExecutionEvent) -> None:
            if event.execution_id == eid:
                queue.put_nowait(event)

        observed = (*signals.EXECUTION_SIGNALS, *signals.NODE_SIGNALS)
        for signal in observed:
            signal.connect(receive, sender=self._run.conductor, weak=False)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.type in _FINAL_EVENTS:
                    return
        finally:
            for signal in observed:
                signal.disconnect(receive)  # from every sender: see signals' module notes

    async def result(self) -> ExecutionResult:
        """The final result; a cancelled execution returns its result with status
        ``cancelled`` (only cancelling the awaiting task itself raises CancelledError)."""
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if self._task.cancelled():
                return self._run.result
            raise


class Conductor:
    """Runs flows. Create with :func:`create_conductor`; two conductors share nothing."""

    def __init__(
        self,
        catalogue: Catalogue,
        storage: FlowStorage | None,
        *,
        config: Mapping[str, Any] | None = None,
        security: Security | Mapping[str, Any] | None = None,
        record_runs: bool = False,
        keep_runs: int | None = None,
        retain_outputs: bool = True,
        retain_results: Literal["all", "errors"] = "all",
        executor: Executor | None = None,
        process_workers: int | None = None,
        memory_ceiling: float | None = None,
        secrets: Iterable[str | SecretProvider] | None = None,
        cpu_time: bool = True,
        record: str | None = None,
        cache: str = "off",
    ) -> None:
        self.catalogue = catalogue
        #: Where ``{{ secrets.NAME }}`` is looked up, in order (see atomiton_core.secrets).
        self.secret_providers = create_providers(secrets)
        self.storage = storage
        #: What nodes may reach (typed); security keys given in ``config`` land here.
        self.security: Security
        #: Conductor-wide settings for nodes (``ctx.config``), less the security ones.
        self.config: Mapping[str, Any]
        self.security, self.config = Security.split(config or {}, security)
        if record is None:
            record = "full" if record_runs else "off"
        if record not in RECORD_MODES:
            raise ConfigurationError(
                f"record={record!r} is not an option",
                hint='use "full" (log, outputs, record: resumable), "summary" (the record '
                'only) or "off"',
            )
        #: What each execution leaves in storage (see atomiton_core.conductor.runlog).
        self.record = record if storage is not None else "off"
        self.record_runs = self.record != "off"
        #: The thread that writes run logs and records (started on first use).
        self.log_writer = LogWriter()
        #: Digests of the flows whose runs' flow is kept in storage (see RunLog).
        self.run_flows_kept: set[str] = set()
        if cache not in CACHE_MODES:
            raise ConfigurationError(
                f"cache={cache!r} is not an option",
                hint='use "use" (hits and new entries), "refresh" (new entries only) or "off"',
            )
        #: How executions use the output cache by default (``start(..., cache=)`` per run).
        self.cache_mode = cache if storage is not None else "off"
        #: The output cache, in storage (see atomiton_core.storage.cache).
        self.cache_store: CacheStore | None = CacheStore(storage) if storage is not None else None
        #: At most this many run records are kept in storage (the newest); None: all.
        self.keep_runs = keep_runs
        self.retain_outputs = retain_outputs
        if retain_results not in ("all", "errors"):
            raise ConfigurationError(
                f"retain_results={retain_results!r} is not an option",
                hint='use "all" (every node\'s result) or "errors" (nodes that did not complete)',
            )
        self.retain_results = retain_results
        #: Where blocking sync nodes run (threads by default; see conductor.executors).
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        self._threads: LocalExecutor | None = None
        #: Worker processes for isolated nodes at most (default: one per CPU).
        self.process_workers = process_workers
        self._process_pool: ProcessPool | None = None
        if memory_ceiling is not None and memory_ceiling <= 0:
            raise ConfigurationError(
                f"memory_ceiling={memory_ceiling!r}: give megabytes above zero, or None"
            )
        #: Megabytes the conductor's process and its workers may hold while a run goes on;
        #: beyond it the run fails (RESOURCE_LIMIT, limit memoryCeiling). None: no ceiling.
        self.memory_ceiling = memory_ceiling
        #: Measure the CPU time of inline and async nodes too (``NodeResult.cpu_ms``); nodes
        #: in threads and worker processes are always measured.
        self.cpu_time = cpu_time
        self._executions: dict[str, Execution] = {}
        #: Plans of flows run lately, by content (see ``prepare``).
        self.plans = PlanCache()
        #: The lifecycle hooks some plugin implements; the others are never called.
        self.hooks = catalogue.lifecycle_hooks()
        if "atomiton_before_node" in self.hooks:
            signals.node_started.connect(self._before_node, sender=self)
        if "atomiton_after_node" in self.hooks:
            signals.node_completed.connect(self._after_node, sender=self)
            signals.node_failed.connect(self._after_node, sender=self)

    def __repr__(self) -> str:
        return f"<Conductor {len(self.catalogue)} node types, storage={self.storage!r}>"

    @property
    def process_pool(self) -> ProcessPool:
        """The warm worker processes isolated nodes run in (started on first use)."""
        pool = self._process_pool
        if pool is None:
            from atomiton_core.conductor.isolation import ProcessPool

            pool = self._process_pool = ProcessPool(self.process_workers)
        return pool

    @property
    def threads(self) -> LocalExecutor:
        """The threads of this process that blocking nodes kept here run in: the executor
        itself, or, beside a cluster, a pool started on first use."""
        if isinstance(self.executor, LocalExecutor):
            return self.executor
        if self._threads is None:
            self._threads = LocalExecutor()
        return self._threads

    def close(self) -> None:
        """Release worker threads and processes (and the Dask client and cluster this
        conductor started); then plugins release what they keep for it
        (``atomiton_conductor_closed``)."""
        self.log_writer.close()
        self.executor.close()
        if self._threads is not None:
            self._threads.close()
            self._threads = None
        if self._process_pool is not None:
            self._process_pool.close()
            self._process_pool = None
        self.call_hook("atomiton_conductor_closed", config=self.config)

    def __enter__(self) -> Conductor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- flows ---------------------------------------------------------------------------
    def load(self, flow: FlowLike) -> Flow:
        """A flow from a Flow, its data (a mapping), YAML or JSON text, a file path / URL,
        or an id in this conductor's storage."""
        if isinstance(flow, Flow):
            return flow
        if isinstance(flow, FlowPlan):
            return flow.flow
        if isinstance(flow, Mapping):
            return Flow.from_data(dict(flow))
        if not isinstance(flow, str | os.PathLike):
            raise ConfigurationError(
                f"a flow cannot be given as a value of type {type(flow).__name__}",
                hint="give a Flow, its data as a dict, YAML text, a file path or URL, or an id "
                "in the conductor's storage",
            )
        text = os.fspath(flow)
        if isinstance(flow, str) and ("\n" in text or text.lstrip().startswith("{")):
            return loads_flow(text)
        looks_like_path = text.endswith((".yaml", ".yml", ".json")) or "/" in text
        if self.storage is not None and not looks_like_path and self.storage.exists(text):
            return self.storage.load(text)
        return load_flow(text)

    def validate(self, flow: FlowLike) -> ValidationReport:
        """Every problem of a flow against this conductor's catalogue and storage, each
        with its code, location and line; nothing runs."""
        return validate(
            self.load(flow), self.catalogue, storage=self.storage, templates=expressions.ENGINE
        )

    def prepare(self, flow: FlowLike) -> FlowPlan:
        """Validate and plan once; pass the plan to ``execute`` to run it many times.

        A flow planned lately, unchanged since (same content), is not planned again: its
        plan is kept by the conductor (``conductor.plans``), so ``execute(flow)`` on the same
        flow pays only a digest of its content (about 1.5 µs a node)."""
        if isinstance(flow, FlowPlan):
            return flow
        loaded = self.load(flow)
        key, plan = self.plans.get(loaded)
        if plan is None:
            plan = plan_flow(loaded, self.catalogue, storage=self.storage)
            if key is not None:
                plan._content_hash = key
                self.plans.put(key, plan)
        return plan

    def prepare_stored(self, flow_id: str) -> FlowPlan:
        """Plan a flow from this conductor's storage (what ``flow`` nodes run)."""
        if self.storage is None:
            raise ConfigurationError(
                f"flow {flow_id!r} is referenced but this conductor has no storage",
                hint="create the conductor with storage=... holding the referenced flows",
            )
        return plan_flow(self.storage.load(flow_id), self.catalogue, storage=self.storage)

    # -- executing -----------------------------------------------------------------------
    def start(
        self,
        flow: FlowLike,
        inputs: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        resume: str | PriorRun | None = None,
        cache: str | None = None,
        breakpoints: Iterable[str] | None = None,
        step: bool = False,
        inject: Mapping[str, str] | Iterable[str] | None = None,
        slow_mo: float | None = None,
        _replay: Recording | None = None,
    ) -> Execution:
        """Start an execution on the running loop and return its handle at once.

        ``resume``: the id of a stored run (completed, failed, cancelled or interrupted) to
        resume: every node whose type, type version, parameters, variables and inputs are
        unchanged since that run, and which completed there, is not run again: its stored
        outputs are reused (``NodeResult.resumed_from``); the rest runs as usual.
        ``cache``: "use", "refresh" or "off" for this run (default: the conductor's).

        Debugging (see :mod:`atomiton_core.conductor.debug`; ``execution.debugger`` steers
        it): ``breakpoints``, node ids or paths (wildcards allowed) to pause before;
        ``step``: pause before the first node; ``inject``: ``{node: "error" | "timeout" |
        "delay:MS"}``; ``slow_mo``: milliseconds each node waits before it starts.
        """
        if cache is not None and cache not in CACHE_MODES:
            raise ConfigurationError(
                f"cache={cache!r} is not an option", hint='use "use", "refresh" or "off"'
            )
        debug = DebugOptions.of(breakpoints, inject, slow_mo, step)
        plan = self.prepare(flow)
        if debug is not None:
            debug.check(plan.flow)
        eid = execution_id or new_run_id()
        if eid in self._executions:
            raise ExecutionConflict(f"execution id {eid!r} is already running")
        checked = check_inputs(plan.flow, inputs)
        variables = dict(plan.variables)
        variables.update(checked)
        inputs = checked if inputs is not None else None
        prior = self.load_prior(resume) if isinstance(resume, str) else resume
        run = Run(self, plan, eid, variables, inputs, prior, cache, _replay, debug)
        task = asyncio.get_running_loop().create_task(self._main(run), name=f"atomiton:{eid}")
        run.task = task
        execution = Execution(run, task)
        self._executions[eid] = execution
        task.add_done_callback(lambda _: self._ended(run))
        return execution

    def _ended(self, run: Run) -> None:
        self._executions.pop(run.execution_id, None)
        if run.result.status is ExecutionStatus.RUNNING:  # cancelled before its first step
            run.finish_unstarted()

    def load_prior(self, execution_id: str) -> PriorRun:
        """What a resume of a stored run reuses (``start(..., resume=)`` takes it too, so a
        server can read it off its loop)."""
        if self.storage is None:
            raise ConfigurationError(
                f"cannot resume run {execution_id!r}: this conductor has no storage",
                hint="create the conductor with the storage the run was recorded in",
            )
        return PriorRun.load(self.storage, execution_id)

    async def _main(self, run: Run) -> ExecutionResult:
        result = await run.main()
        if "atomiton_after_run" in self.hooks:
            self.call_hook("atomiton_after_run", result=result)
        storage = self.storage
        if run.log is not None and self.keep_runs is not None and storage is not None:
            pruned = await asyncio.to_thread(storage.prune_runs, self.keep_runs)
            if pruned:
                self.run_flows_kept.clear()  # a pruned run's flow may have gone with it
        return result

    def _before_node(self, sender: Any, event: signals.NodeEvent) -> None:
        self.call_hook(
            "atomiton_before_node",
            execution_id=event.execution_id,
            node_id=event.node_id,
            path=event.path,
            node_type=event.node_type,
            attempt=event.attempt,
        )

    def _after_node(self, sender: Any, event: signals.NodeEvent) -> None:
        self.call_hook(
            "atomiton_after_node",
            execution_id=event.execution_id,
            node_id=event.node_id,
            path=event.path,
            node_type=event.node_type,
            status=event.status,
            duration_ms=event.duration_ms,
            outputs=event.outputs,
        )

    def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a raising implementation is a PluginError naming it."""
        pm = self.catalogue.plugin_manager
        if pm is None:
            return
        for impl in getattr(pm.hook, name).get_hookimpls():
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
            except Exception as exc:
                plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
                err = PluginError(
                    f"plugin {plugin!r} raised in {name}: {type(exc).__name__}: {exc}",
                    hint="a lifecycle hook should handle its own errors",
                )
                err.__cause__ = exc
                if name.startswith("atomiton_before_"):
                    raise err from exc
                _log.error("%s", err, exc_info=exc)

    async def execute(
        self,
        flow: FlowLike,
        inputs: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        resume: str | None = None,
        cache: str | None = None,
        inject: Mapping[str, str] | Iterable[str] | None = None,
        slow_mo: float | None = None,
    ) -> ExecutionResult:
        """Run a flow to the end; ``inputs`` override its variables.

        Returns the result whatever happened (check ``result.status``); raises
        FlowValidationError before anything runs if the flow is invalid. ``resume``: a stored
        run whose unchanged, completed nodes are reused; ``inject``, ``slow_mo``: faults and
        slow motion (see ``start``; breakpoints need ``start``, whose handle steers them).
        """
        execution = self.start(
            flow,
            inputs,
            execution_id=execution_id,
            resume=resume,
            cache=cache,
            inject=inject,
            slow_mo=slow_mo,
        )
        try:
            return await execution.result()
        except asyncio.CancelledError:
            execution._task.cancel()
            raise

    def run(
        self,
        flow: FlowLike,
        inputs: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        resume: str | None = None,
        cache: str | None = None,
        inject: Mapping[str, str] | Iterable[str] | None = None,
        slow_mo: float | None = None,
    ) -> ExecutionResult:
        """Synchronous ``execute`` for scripts; not for use inside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop running: the normal case
        else:
            raise ConfigurationError(
                "Conductor.run() was called inside a running event loop",
                hint="use `await conductor.execute(...)` there",
            )
        return asyncio.run(
            self.execute(
                flow,
                inputs,
                execution_id=execution_id,
                resume=resume,
                cache=cache,
                inject=inject,
                slow_mo=slow_mo,
            )
        )

    async def areplay(self, run_id: str, flow: FlowLike | None = None) -> ReplayReport:
        """Replay a recorded run (see atomiton_core.conductor.replay): the nodes that are not
        pure answered from the recording, the rest run; every difference named. ``flow``:
        the flow as it is now (default: the stored flow the run was of)."""
        if self.storage is None:
            raise ConfigurationError("a replay needs the storage the run was recorded in")
        if not self.retain_outputs:
            raise ConfigurationError(
                "a replay compares every node's outputs: this conductor does not keep them "
                "(retain_outputs=False)",
                hint="replay with a conductor created with retain_outputs=True (the default)",
            )
        record = await asyncio.to_thread(self.storage.record, run_id)
        if record.mode != "full":
            raise ConfigurationError(
                f"run {run_id!r} was recorded without its log (record={record.mode!r}): "
                "it cannot be replayed",
                hint='record runs with record="full" (the default)',
            )
        target = flow if flow is not None else record.flow_id
        plan = await asyncio.to_thread(self.prepare, target)
        recording = await asyncio.to_thread(Recording, self.storage, run_id)
        tree = record.data.get("inputs")
        inputs = codec.decode(codec.Encoded(tree, [])) if isinstance(tree, dict) else {}
        execution = self.start(plan, inputs, cache="off", _replay=recording)
        result = await execution.result()
        report = ReplayReport(run_id, result, answered=sorted(execution._run.answered))
        report.differences = recording.compare(result, execution._run.answered)
        return report

    def replay(self, run_id: str, flow: FlowLike | None = None) -> ReplayReport:
        """Synchronous :meth:`areplay`."""
        return asyncio.run(self.areplay(run_id, flow))

    def cancel(self, execution_id: str) -> bool:
        """Cancel a running execution; False if no such execution is running."""
        execution = self._executions.get(execution_id)
        return execution.cancel() if execution is not None else False

    def get_execution(self, execution_id: str) -> Execution | None:
        """The handle of a running execution; None once it ended (or if it never ran)."""
        return self._executions.get(execution_id)

    @property
    def running(self) -> list[str]:
        return list(self._executions)


def create_conductor(
    storage: FlowStorage | str | os.PathLike[str] | None = None,
    plugins: Iterable[Any] = (),
    *,
    autoload: bool | None = None,
    config: Mapping[str, Any] | None = None,
    security: Security | Mapping[str, Any] | None = None,
    disabled_types: Iterable[str] = (),
    record_runs: bool | None = None,
    keep_runs: int | None = None,
    retain_outputs: bool = True,
    retain_results: Literal["all", "errors"] = "all",
    max_workers: int = 64,
    executor: str | Executor | None = None,
    executor_options: Mapping[str, Any] | None = None,
    process_workers: int | None = None,
    memory_ceiling: float | None = None,
    secrets: Iterable[str | SecretProvider] | None = None,
    cpu_time: bool = True,
    record: str | None = None,
    cache: str = "use",
) -> Conductor:
    """A conductor with its own plugin manager.

    ``storage``: a FlowStorage, an fsspec URL / path, or None for the default local folder
    (see ``create_storage``). ``plugins``: plugin objects or modules to register besides the
    installed ones; ``autoload=False`` loads no installed plugin but the core's own.
    ``config``: conductor-wide settings nodes read through ``ctx.config``; ``security``: what
    nodes may reach, a :class:`Security` (``allowed_roots``, ``allowed_programs``; the same
    keys, camelCase, are also taken from ``config``, and a misspelt one is refused).
    ``disabled_types``: node types this conductor refuses. ``record``: what each execution
    leaves under ``runs/<id>/`` in storage: "full" (the default: a log of its events as they
    happen, every node's outputs, and the run record; runs can be listed, followed and
    resumed), "summary" (the run record only) or "off"; ``record_runs=False`` is "off";
    ``keep_runs``: keep only the newest N records (default: all).
    ``retain_outputs=False`` keeps only the flow's outputs (its sinks'), for huge runs: no
    ``NodeResult.outputs``, and each node's outputs are released as soon as every node
    consuming them has started (a container's output sources are kept until it ends).
    ``retain_results="errors"`` drops a node's NodeResult from ``result.nodes`` once it has
    completed, so the table ends with only the nodes that failed, were skipped or cancelled
    (signals still report every node): for loops over very many items. ``executor``: where
    blocking sync nodes run — "local" threads (``max_workers`` of them, the default), "dask"
    (a new LocalCluster), a scheduler address ("tcp://host:8786"), or an Executor object
    (a ``DaskExecutor(client)`` around an existing ``distributed.Client``); on a cluster,
    blocking sync nodes and nodes with ``executor: dask`` run there, their large outputs
    kept there. ``executor_options``: the Dask executor's ``workers``, ``threads``,
    ``memory`` (per worker, ``"2GiB"``), ``adaptive`` (``(min, max)`` workers), ``timeout``
    (seconds to wait for a first worker) and ``shared_paths`` (see ``create_executor``).
    ``process_workers``: the size of the warm pool of worker processes isolated nodes
    (``isolation: process``) run in (default: one per CPU). ``memory_ceiling``: megabytes
    the conductor's process and its workers may use; a run going beyond fails.
    ``secrets``: where ``{{ secrets.NAME }}`` is looked up (default: the environment variables
    ``ATOMITON_SECRET_<NAME>``; also "file:<path>", "keyring"); their values are masked in
    results, records, events and logs.
    ``cache``: how nodes with the setting ``cache`` use the output cache in storage: "use"
    (the default: a hit is reused, with the status ``cached``), "refresh" (run them and store
    fresh entries) or "off".
    ``cpu_time=False`` measures no CPU time for inline and async nodes (it costs about
    2 µs per node; nodes in threads and worker processes are measured anyway).
    """
    security_settings, free_config = Security.split(config or {}, security)
    catalogue = Catalogue.load(
        plugins, autoload=autoload, config=free_config, security=security_settings
    )
    disabled = set(disabled_types)
    if disabled:
        catalogue = catalogue.without(disabled)
    store = storage if isinstance(storage, FlowStorage) else create_storage(storage)
    return Conductor(
        catalogue,
        store,
        config=config,
        security=security,
        record_runs=True if record_runs is None else record_runs,
        keep_runs=keep_runs,
        retain_outputs=retain_outputs,
        retain_results=retain_results,
        executor=create_executor(executor, max_workers=max_workers, options=executor_options),
        process_workers=process_workers,
        memory_ceiling=memory_ceiling,
        secrets=secrets,
        cpu_time=cpu_time,
        record=record,
        cache=cache,
    )
