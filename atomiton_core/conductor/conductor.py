"""The conductor: owns a catalogue (its own plugin manager), storage and worker threads."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from atomiton_core.catalogue import Catalogue
from atomiton_core.conductor.engine import Run
from atomiton_core.conductor.executors import Executor, LocalExecutor, create_executor
from atomiton_core.conductor.plan import FlowPlan, plan_flow
from atomiton_core.conductor.results import ExecutionResult, ExecutionStatus
from atomiton_core.errors import ExecutionError
from atomiton_core.flow.models import Flow
from atomiton_core.flow.validation import ValidationReport, validate
from atomiton_core.flow.yaml_io import load_flow
from atomiton_core.storage.flows import FlowStorage, create_storage

__all__ = ["Conductor", "Execution", "create_conductor"]

FlowLike = Flow | FlowPlan | str | os.PathLike[str]


class Execution:
    """A started execution: await ``result()``, or ``cancel()`` it."""

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
    def snapshot(self) -> ExecutionResult:
        """The result as it stands now (status ``running`` until it finishes)."""
        return self._run.result

    def done(self) -> bool:
        return self._task.done()

    def cancel(self) -> bool:
        if self._task.done():
            return False
        self._run.cancel_requested = True
        self._run.stop_event.set()
        return self._task.cancel()

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
        record_runs: bool = False,
        keep_runs: int | None = None,
        retain_outputs: bool = True,
        retain_results: Literal["all", "errors"] = "all",
        executor: Executor | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.storage = storage
        self.config: Mapping[str, Any] = dict(config or {})
        self.record_runs = record_runs and storage is not None
        #: At most this many run records are kept in storage (the newest); None: all.
        self.keep_runs = keep_runs
        self.retain_outputs = retain_outputs
        if retain_results not in ("all", "errors"):
            raise ExecutionError(
                f"retain_results={retain_results!r} is not an option",
                hint='use "all" (every node\'s result) or "errors" (nodes that did not complete)',
            )
        self.retain_results = retain_results
        #: Where blocking sync nodes run (threads by default; see conductor.executors).
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        self._executions: dict[str, Execution] = {}

    def __repr__(self) -> str:
        return f"<Conductor {len(self.catalogue)} node types, storage={self.storage!r}>"

    def close(self) -> None:
        """Release worker threads (or the Dask client and cluster this conductor started)."""
        self.executor.close()

    def __enter__(self) -> Conductor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- flows ---------------------------------------------------------------------------
    def load(self, flow: FlowLike) -> Flow:
        """A flow from a Flow, a file path / URL, or an id in this conductor's storage."""
        if isinstance(flow, Flow):
            return flow
        if isinstance(flow, FlowPlan):
            return flow.flow
        text = os.fspath(flow)
        looks_like_path = text.endswith((".yaml", ".yml", ".json")) or "/" in text
        if self.storage is not None and not looks_like_path and self.storage.exists(text):
            return self.storage.load(text)
        return load_flow(text)

    def validate(self, flow: FlowLike) -> ValidationReport:
        return validate(self.load(flow), self.catalogue, storage=self.storage)

    def prepare(self, flow: FlowLike) -> FlowPlan:
        """Validate and plan once; pass the plan to ``execute`` to run it many times."""
        if isinstance(flow, FlowPlan):
            return flow
        return plan_flow(self.load(flow), self.catalogue, storage=self.storage)

    def prepare_stored(self, flow_id: str) -> FlowPlan:
        """Plan a flow from this conductor's storage (what ``flow`` nodes run)."""
        if self.storage is None:
            raise ExecutionError(
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
    ) -> Execution:
        """Start an execution on the running loop and return its handle at once."""
        plan = self.prepare(flow)
        eid = execution_id or uuid.uuid4().hex
        if eid in self._executions:
            raise ExecutionError(f"execution id {eid!r} is already running")
        variables = dict(plan.variables)
        if inputs:
            variables.update(inputs)
        run = Run(self, plan, eid, variables)
        task = asyncio.get_running_loop().create_task(self._main(run), name=f"atomiton:{eid}")
        execution = Execution(run, task)
        self._executions[eid] = execution
        task.add_done_callback(lambda _: self._ended(run))
        return execution

    def _ended(self, run: Run) -> None:
        self._executions.pop(run.execution_id, None)
        if run.result.status is ExecutionStatus.RUNNING:  # cancelled before its first step
            run.finish_unstarted()

    async def _main(self, run: Run) -> ExecutionResult:
        result = await run.main()
        if self.record_runs and self.storage is not None:
            await asyncio.to_thread(self._record, self.storage, result)
        return result

    def _record(self, storage: FlowStorage, result: ExecutionResult) -> None:
        storage.save_run(result)
        if self.keep_runs is not None:
            storage.prune_runs(self.keep_runs)

    async def execute(
        self,
        flow: FlowLike,
        inputs: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> ExecutionResult:
        """Run a flow to the end; ``inputs`` override its variables.

        Returns the result whatever happened (check ``result.status``); raises
        FlowValidationError before anything runs if the flow is invalid.
        """
        execution = self.start(flow, inputs, execution_id=execution_id)
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
    ) -> ExecutionResult:
        """Synchronous ``execute`` for scripts; not for use inside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop running: the normal case
        else:
            raise ExecutionError(
                "Conductor.run() was called inside a running event loop",
                hint="use `await conductor.execute(...)` there",
            )
        return asyncio.run(self.execute(flow, inputs, execution_id=execution_id))

    def cancel(self, execution_id: str) -> bool:
        """Cancel a running execution; False if no such execution is running."""
        execution = self._executions.get(execution_id)
        return execution.cancel() if execution is not None else False

    def get_execution(self, execution_id: str) -> Execution | None:
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
    disabled_types: Iterable[str] = (),
    record_runs: bool | None = None,
    keep_runs: int | None = None,
    retain_outputs: bool = True,
    retain_results: Literal["all", "errors"] = "all",
    max_workers: int = 64,
    executor: str | Executor | None = None,
) -> Conductor:
    """A conductor with its own plugin manager.

    ``storage``: a FlowStorage, an fsspec URL / path, or None for the default local folder
    (see ``create_storage``). ``plugins``: plugin objects or modules to register besides the
    installed ones; ``autoload=False`` loads no installed plugin but the core's own.
    ``config``: conductor-wide settings nodes read through ``ctx.config`` (e.g.
    ``{"allowedRoots": [...], "allowedPrograms": [...]}``). ``disabled_types``: node types
    this conductor refuses. ``record_runs``: store each result under ``runs/`` (default: on);
    ``keep_runs``: keep only the newest N records (default: all).
    ``retain_outputs=False`` keeps only the flow's outputs (its sinks'), for huge runs: no
    ``NodeResult.outputs``, and each node's outputs are released as soon as every node
    consuming them has started (a container's output sources are kept until it ends).
    ``retain_results="errors"`` drops a node's NodeResult from ``result.nodes`` once it has
    completed, so the table ends with only the nodes that failed, were skipped or cancelled
    (signals still report every node): for loops over very many items. ``executor``: where
    blocking sync nodes run — "local" threads (``max_workers`` of them, the default), "dask"
    (a new LocalCluster), a scheduler address ("tcp://host:8786"), or an Executor object.
    """
    catalogue = Catalogue.load(plugins, autoload=autoload)
    disabled = set(disabled_types)
    if disabled:
        catalogue = catalogue.without(disabled)
    store = storage if isinstance(storage, FlowStorage) else create_storage(storage)
    return Conductor(
        catalogue,
        store,
        config=config,
        record_runs=True if record_runs is None else record_runs,
        keep_runs=keep_runs,
        retain_outputs=retain_outputs,
        retain_results=retain_results,
        executor=create_executor(executor, max_workers=max_workers),
    )
