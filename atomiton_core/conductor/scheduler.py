"""The scheduler: runs one graph level of a run, event-driven, with its concurrency limit.

A :class:`GraphRun` keeps, per node, the count of predecessors not yet finished. A finished
node decrements its successors; those reaching zero become ready and start while the
concurrency limit allows (:meth:`GraphRun.drain`). Cheap sync nodes run inline; async nodes
get a task each — except that a task whose node completes runs the next ready async node
(no timeout, no retries) itself, so a chain costs no new task per node (that node then shares
the task's context variables), and a container's child graph that is a chain (a loop's body,
most often one node) runs in the task that runs it, with no task of its own per item
(:meth:`GraphRun._here`); everything else goes through
:func:`~atomiton_core.conductor.attempts.run_attempts` (timeouts, retries, executors).
Failure is fail-fast (siblings cancelled) unless the node says ``continueOnFail``; then its
dependants are skipped and independent branches finish.

A GraphRun is also the :class:`~atomiton_core.nodes.context.NodeHost` of the nodes it runs:
their contexts ask it for progress, child runs and sub-flows.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import to_json

from atomiton_core import signals
from atomiton_core.conductor.attempts import (
    as_error,
    check_outputs,
    cpu_timed,
    run_attempts,
    run_inline,
)
from atomiton_core.conductor.cluster import held
from atomiton_core.conductor.events import emit_node
from atomiton_core.conductor.plan import (
    FROM_CONTAINER,
    GraphPlan,
    PlannedNode,
    paused_gc,
    wrong_input,
)
from atomiton_core.conductor.progress import GraphProgress
from atomiton_core.conductor.runlog import store_outputs, value_digest
from atomiton_core.errors import (
    AtomitonError,
    CircularDependency,
    ExecutionCancelled,
    ExecutionError,
    ExpressionError,
    VariableError,
)
from atomiton_core.flow.models import pydantic_message
from atomiton_core.flow.settings import own_parameters
from atomiton_core.flow.variables import check_inputs
from atomiton_core.nodes import expressions
from atomiton_core.nodes.context import NodeContext
from atomiton_core.results import NodeResult, NodeStatus
from atomiton_core.secrets import Secrets
from atomiton_core.storage.runs import digest

if TYPE_CHECKING:
    from atomiton_core.conductor.replay import Recording
    from atomiton_core.conductor.run import Run
    from atomiton_core.flow.protocols import FlowSource
    from atomiton_core.security import Security
    from atomiton_core.storage.runs import StoredNode

__all__ = ["GraphRun"]

_COMPLETED = NodeStatus.COMPLETED
_CACHED = NodeStatus.CACHED
#: A node that produced outputs: it ran, or its outputs came from the cache.
DONE = frozenset({NodeStatus.COMPLETED, NodeStatus.CACHED, NodeStatus.PINNED})
_RUNNING = NodeStatus.RUNNING
_EMPTY: dict[str, Any] = {}
_now = time.time
_perf = time.perf_counter
_log = logging.getLogger("atomiton.conductor")
_NO_INPUTS = digest("")
#: The longest the scheduler runs inline nodes before it lets the loop run (a server's
#: requests, a cancel, a timeout wait at most about this long for their turn).
DRAIN_SLICE_S = 0.003
#: Python 3.12+ can start a task eagerly: a node that never suspends finishes inside
#: ``launch`` with no trip through the event loop, still with its own task as current task.
_EAGER = sys.version_info >= (3, 12)


class GraphRun(GraphProgress):
    """One run of one graph level: the flow's top level, or a container's children."""

    __slots__ = (
        "cache_keys",
        "chain",
        "consumers",
        "draining",
        "eager_step",
        "error",
        "held",
        "inclusive",
        "input_digests",
        "inputs",
        "keyed",
        "keys",
        "limit",
        "observed",
        "outputs",
        "over",
        "plan",
        "port_digests",
        "prefix",
        "prune",
        "ready",
        "remaining",
        "results",
        "run_",
        "running",
        "scope_digest",
        "secret_values",
        "stopping",
        "tasks",
        "trace",
        "unrendered",
        "variables",
        "waiter",
    )

    def __init__(
        self,
        run: Run,
        plan: GraphPlan,
        prefix: str,
        inputs: Mapping[str, Any],
        variables: Mapping[str, Any],
        concurrency: int | None,
        parent: GraphRun | None = None,
        parent_index: int = -1,
        span: tuple[float, float] | None = (0.0, 1.0),
        chain: tuple[str, ...] | None = None,
        scope_digest: str | None = None,
    ) -> None:
        self.run_ = run
        trace = self.trace = run.trace
        #: Nodes are keyed (and outputs digested): for the log, or for a cached node here.
        keyed = self.keyed = trace is not None or (run.cache is not None and plan.uses_cache)
        #: A digest of the variables this graph's nodes see.
        self.scope_digest = scope_digest
        #: Digests of the container's inputs, by port (computed when first needed).
        self.input_digests: dict[str, str | None] = {}
        #: The run's secret values (the redactor's own set: it fills as secrets are used).
        self.secret_values = run.redactor.values
        self.span = span
        self.parent = parent
        self.parent_index = parent_index
        #: Flow ids from the top-level flow down to this graph (sub-flow references).
        self.chain: tuple[str, ...] = (
            chain if chain is not None else parent.chain if parent is not None else ()
        )
        self.plan = plan
        self.prefix = prefix
        self.inputs = inputs
        self.variables = variables
        self.limit = concurrency
        nodes = plan.nodes
        n = self.n = len(nodes)
        self.outputs: list[dict[str, Any] | None] = [None] * n
        self.remaining = [0] if n == 1 else [pn.n_preds for pn in nodes]
        self.ready: deque[int] = deque(plan.roots)
        self.running = 0
        self.finished = 0
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.error: AtomitonError | None = None
        self.stopping = False
        self.draining = False
        #: A task's eager first step is running inside ``launch``.
        self.eager_step = False
        #: The graph has ended (every node finished, or stopped with none running).
        self.over = False
        #: What ``run`` waits on when the graph has not ended by the time it is started.
        self.waiter: asyncio.Future[None] | None = None
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
        #: Nodes that ran children: their CPU time is their children's (see cpu_timed).
        self.inclusive: set[int] = set()
        #: Keys (and inputs' digests) of the nodes started, until they complete.
        self.keys: dict[int, tuple[str, str] | None] = {}
        #: Cache keys of the cached nodes started, until they complete.
        self.cache_keys: dict[int, str] = {}
        #: Per node: its output ports' digests (None: not completed, or not storable).
        self.port_digests: list[dict[str, str | None] | None] = []
        if keyed:
            self.port_digests = [None] * n
            if scope_digest is None:
                self.scope_digest = (
                    run.variables_digest
                    if variables is run.variables
                    else value_digest(dict(variables), "variables")
                )
        table = run.result.nodes
        if n == 1:  # a loop's or a parallel's body, most often
            pn = nodes[0]
            path = prefix + pn.id if prefix else pn.id
            res = NodeResult(pn.id, pn.type_id, path)
            self.results: list[NodeResult] = [res]
            table[path] = res
        elif n > 1000:
            # a result per node, made at once: no collection walks the heap meanwhile
            with paused_gc():
                self.results = self._make_results(table)
        else:
            self.results = self._make_results(table)
        #: A debugged run: the nodes whose task pauses (see conductor.debug) before it
        #: starts them; None in a run that is not debugged.
        self.held: set[int] | None = set() if run.debugger is not None else None
        #: Nodes whose parameters did not render for this run: they fail when they start.
        self.unrendered: dict[int, AtomitonError] = {}
        if plan.deferred:
            self._render_parameters()

    def _make_results(self, table: dict[str, NodeResult]) -> list[NodeResult]:
        """A result per node, each in the run's table too."""
        results: list[NodeResult] = []
        append = results.append
        prefix = self.prefix
        for pn in self.plan.nodes:
            path = prefix + pn.id if prefix else pn.id
            res = NodeResult(pn.id, pn.type_id, path)
            append(res)
            table[path] = res
        return results

    def _render_parameters(self) -> None:
        """This run's own copies of the nodes whose parameters that are not text are given
        as templates (``count: "{{ n }}"``): rendered over the variables, then checked by
        the node type's parameter model; a node whose parameters do not render or check
        fails when it starts, with an error naming the parameter."""
        plan = self.plan
        nodes = list(plan.nodes)
        names = {**self.variables, "vars": self.variables, "secrets": self.run_.secrets}
        for i in plan.deferred:
            pn = nodes[i]
            deferred = pn.deferred or {}
            given = own_parameters(pn.spec.parameters, pn.node_type.params)
            try:
                for key, template in deferred.items():
                    given[key] = expressions.render(template, names)
                params = pn.node_type.params.model_validate(given)
            except AtomitonError as exc:
                self.unrendered[i] = exc
                continue
            except ValidationError as exc:
                err = exc.errors()[0]
                key = str(err["loc"][0]) if err["loc"] else "?"
                shown = ""
                if key in deferred:
                    shown = f"the template {deferred[key]!r}, which rendered "
                self.unrendered[i] = ExpressionError(
                    f"parameter {key!r} is {shown}{err.get('input')!r}: {pydantic_message(err)}",
                    hint="give the variables it uses values of the type the parameter takes",
                )
                continue
            mine = copy.copy(pn)
            mine.params = params
            nodes[i] = mine
        self.plan = dataclasses.replace(plan, nodes=nodes)

    # -- the node host (what contexts ask for) -------------------------------------------
    @property
    def execution_id(self) -> str:
        return self.run_.execution_id

    @property
    def flow_id(self) -> str:
        return self.run_.flow_id

    @property
    def config(self) -> Mapping[str, Any]:
        return self.run_.conductor.config

    @property
    def security(self) -> Security:
        return self.run_.conductor.security

    @property
    def storage(self) -> FlowSource | None:
        return self.run_.conductor.storage

    @property
    def stop_event(self) -> threading.Event:
        return self.run_.stop_event

    @property
    def secrets(self) -> Secrets:
        return self.run_.secrets

    def node_progress(self, index: int, fraction: float, message: str | None) -> None:
        run = self.run_
        if threading.get_ident() != run.loop_thread:
            run.loop.call_soon_threadsafe(self.node_progress, index, fraction, message)
            return
        self.set_fraction(index, min(max(fraction, 0.0), 1.0))
        if message is not None and run.redactor.values:
            message = run.redactor.text(message)
        if self.trace is not None:
            self.trace.node_progress(self.results[index], fraction, message)
        emit_node(
            run,
            signals.node_progress,
            "node.progress",
            self.plan.nodes[index],
            self.results[index],
            fraction=fraction,
            message=message,
        )

    async def run_children(
        self,
        index: int,
        path: str,
        inputs: Mapping[str, Any],
        label: str | None,
        variables: Mapping[str, Any] | None,
        concurrency: int | None,
        span: tuple[float, float] | None,
    ) -> dict[str, Any]:
        pn = self.plan.nodes[index]
        children = pn.children
        if children is None:
            raise AtomitonError(
                f"{pn.type_id} asked to run children but has none",
                node_id=pn.id,
                hint="only container node types (container=True) run child nodes",
            )
        prefix = f"{path}/{label}/" if label else f"{path}/"
        scope = self.variables
        scope_digest = self.scope_digest
        if variables:
            scope = {**scope, **variables}
            if scope_digest is not None:
                extra = value_digest(dict(variables), "variables")
                scope_digest = digest(f"{scope_digest}+{extra}") if extra is not None else None
        graph = GraphRun(
            self.run_,
            children,
            prefix,
            inputs,
            scope,
            concurrency if concurrency is not None else children.concurrency,
            parent=self,
            parent_index=index,
            span=span,
            scope_digest=scope_digest,
        )
        try:
            await graph.run()
        finally:
            self._add_children_cpu(index, graph)
        return graph.container_outputs()

    def _add_children_cpu(self, index: int, graph: GraphRun) -> None:
        """Add a child graph's CPU figures to the node that ran it."""
        self.inclusive.add(index)
        used = None
        for r in graph.results:
            if r.cpu_ms is not None:
                used = r.cpu_ms if used is None else used + r.cpu_ms
        if used is not None:
            res = self.results[index]
            res.cpu_ms = (res.cpu_ms or 0.0) + used

    async def run_flow(
        self, index: int, path: str, flow_id: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        chain = self.chain
        if flow_id in chain:
            raise CircularDependency(
                "flow reference cycle: " + " -> ".join([*chain, flow_id]),
                node_id=self.plan.nodes[index].id,
            )
        run = self.run_
        plan = run.subflows.get(flow_id)
        if plan is None:
            plan = await asyncio.to_thread(run.conductor.prepare_stored, flow_id)
            run.subflows[flow_id] = plan
        try:
            checked = check_inputs(plan.flow, inputs)
        except VariableError as exc:
            raise VariableError(
                f"node {self.plan.nodes[index].id!r} runs flow {flow_id!r}: {exc.message}",
                hint=exc.hint,
                node_id=self.plan.nodes[index].id,
                retryable=False,
                variable=exc.context.get("variable"),
            ) from None
        variables = dict(plan.variables)
        variables.update(checked)
        # computed by the sub-flow's graph if it keys its nodes: each child's key holds its
        # own part of the sub-flow
        scope_digest = None
        graph = GraphRun(
            run,
            plan.root,
            f"{path}/",
            _EMPTY,
            variables,
            plan.root.concurrency,
            parent=self,
            parent_index=index,
            span=(0.0, 1.0),
            chain=(*chain, flow_id),
            scope_digest=scope_digest,
        )
        try:
            await graph.run()
        finally:
            self._add_children_cpu(index, graph)
        results = graph.results
        return {
            results[i].node_id: graph.outputs[i] or {}
            for i in plan.root.sinks
            if results[i].status in DONE
        }

    # -- driving -------------------------------------------------------------------------
    async def run(self) -> None:
        if self.n == 0:
            return
        try:
            here = None
            if self.parent is not None and self.plan.one_at_a_time:
                here = self._here()
            else:
                self.drain()
            if here is not None:
                i, kwargs = here
                await self._node_task(i, self.plan.nodes[i], self.results[i], kwargs)
            if not self.over:
                self.waiter = self.run_.loop.create_future()
                await self.waiter
        except asyncio.CancelledError:
            self._stop(cancel=True)
            while self.tasks:
                await asyncio.wait(list(self.tasks.values()))
            raise
        if self.error is not None:
            raise self.error

    def _here(self) -> tuple[int, dict[str, Any]] | None:
        """Start the graph; a child graph that runs one node at a time (a chain: a loop's or
        a parallel's body, most often one node) takes its first node, unless it is an inline
        one, to run in the task that runs the graph (``run`` awaits it), and the nodes after
        it as that node's task would: an item of a container then costs no task and no trip
        through the event loop. No other node of the graph runs meanwhile, so nothing here is
        cancelled but with that task."""
        ready = self.ready
        task = asyncio.current_task()
        # not in a task (a test driving the graph by hand): as usual
        if task is None or self.plan.nodes[ready[0]].inline:
            self.drain()
            return None
        i = ready.popleft()
        kwargs = self._prepare(i)
        if kwargs is None:  # finished already (skipped, failed, reused): the rest as usual
            self.drain()
            return None
        self.running += 1
        self.tasks[i] = task
        return i, kwargs

    def drain(self) -> None:
        """Start ready nodes while the concurrency limit allows. Inline nodes finish here,
        so a long run of them hands the loop back every :data:`DRAIN_SLICE_S` (a cancel, a
        timeout, the server's other requests get their turn) and goes on in a later call."""
        if self.draining:
            return
        self.draining = True
        try:
            ready = self.ready
            limit = self.limit
            started = _perf()
            launched = 0
            while ready and not self.stopping and (limit is None or self.running < limit):
                self._launch(ready.popleft())
                launched += 1
                if not launched & 63 and _perf() - started > DRAIN_SLICE_S:
                    # a timer due now, not call_soon: the loop takes in what arrived on its
                    # sockets before it runs the rest (call_soon would run it first)
                    loop = self.run_.loop
                    loop.call_at(loop.time(), self.drain)
                    break
        finally:
            self.draining = False
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.over:
            return
        if self.finished == self.n or (self.stopping and self.running == 0):
            self.over = True
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

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
            if pn.typed_inputs:
                wrong = wrong_input(pn, kwargs)
                if wrong is not None:
                    res.status = _RUNNING
                    self._failed(i, wrong)
                    return None
        elif self.inputs and self.plan.feeds_children:  # no edge into it: its container's
            kwargs = self._from_container(pn)
            if kwargs and pn.typed_inputs:
                wrong = wrong_input(pn, kwargs)
                if wrong is not None:
                    res.status = _RUNNING
                    self._failed(i, wrong)
                    return None
        if not pn.settings.enabled:
            self._skip(i, "disabled")
            return None
        if self.unrendered and i in self.unrendered:
            res.status = _RUNNING
            self._failed(i, self.unrendered[i])
            return None
        if pn.pinned is not None:
            res.started_at = _now()
            res.duration_ms = 0.0
            self._completed(i, dict(pn.pinned), None, NodeStatus.PINNED)
            return None
        replay = self.run_.replay
        if replay is not None and not pn.node_type.pure and not pn.runs_children:
            self._answer(i, pn, replay)
            return None
        if self.keyed:
            self.keys[i] = key = self._key(pn)
            run = self.run_
            prior = run.prior
            # a container or sub-flow runs again (what it runs may have changed: a stored
            # flow is not part of its key); its children are each reused or not
            if prior is not None and key is not None and not pn.runs_children:
                reused = prior.reusable(res.path, key[0])
                if reused is not None and self._reuse(i, reused):
                    return None
            settings = pn.settings
            if settings.cache and run.cache is not None and not pn.runs_children:
                cache_key = self._cache_key(pn, key, kwargs)
                if cache_key is None:
                    self._not_cached(pn)
                else:
                    self.cache_keys[i] = cache_key
                    if run.cache_mode == "use":
                        hit = run.cache.get(cache_key, settings.cache_ttl)
                        if hit is not None and self._reuse(i, hit, cached=True):
                            return None
        if self.held is not None:  # a debugged run: its task starts it (``_debugged``)
            self.held.add(i)
            return kwargs
        res.status = _RUNNING
        res.started_at = _now()
        res.attempts = 1
        if pn.inline and not (self.run_.cluster_values and held(kwargs)):
            try:
                out = run_inline(self, pn, res, kwargs)
            except BaseException as exc:  # SystemExit, KeyboardInterrupt...: this node's failure
                self._failed(i, as_error(exc, pn, res.path))
                return None
            self._completed(i, out)
            return None
        return kwargs

    def _from_container(self, pn: PlannedNode) -> dict[str, Any]:
        """What a child that no edge feeds receives: its container's inputs, each under the
        port of the same name, when the child takes that port (all of them with
        ``**inputs``), as the original's conductor gave such a child its parent's whole
        input (``inputBuilder.ts``); a port that takes several edges gets a list of one."""
        ports = pn.ports
        if ports is None:
            return dict(self.inputs)
        given = {port: value for port, value in self.inputs.items() if port in ports}
        if given:
            declared = pn.node_type.inputs
            for port in given:
                if declared[port].multiple:
                    given[port] = [given[port]]
        return given

    def _key(self, pn: PlannedNode) -> tuple[str, str] | None:
        """The node's key in the run log and its inputs' digest, from what it is given
        (type, version, parameters, variables, the digests of its inputs); None when a part
        cannot be stored, and then the node is not resumable."""
        digests = self.port_digests
        parts: list[str] = []
        for src, sport, tport, _multiple in pn.inputs:
            if src == FROM_CONTAINER:
                if sport not in self.inputs:
                    continue
                d = self._container_input_digest(sport)
            else:
                ports = digests[src]
                if ports is None or sport not in ports:
                    continue  # not given (skipped, failed on, no such output): as the inputs
                d = ports[sport]
            if d is None:
                return None
            parts.append(f"{tport}<{d}")
        if not pn.inputs and self.inputs and self.plan.feeds_children:  # _from_container
            accepted = pn.ports
            for port in self.inputs:
                if accepted is None or port in accepted:
                    d = self._container_input_digest(port)
                    if d is None:
                        return None
                    parts.append(f"{port}<{d}")
        if self.scope_digest is None:
            return None
        if pn.params_digest is None:
            pn.params_digest = digest(to_json(pn.spec.parameters, fallback=str))
        inputs_digest = digest("|".join(parts)) if parts else _NO_INPUTS
        nt = pn.node_type
        key = digest(
            f"{nt.id}\0{nt.version}\0{pn.params_digest}\0{self.scope_digest}\0{inputs_digest}"
        )
        return key, inputs_digest

    def _container_input_digest(self, port: str) -> str | None:
        known = self.input_digests
        if port not in known:
            known[port] = value_digest(self.inputs[port], f"inputs.{port}")
        return known[port]

    def _answer(self, i: int, pn: PlannedNode, replay: Recording) -> None:
        """A replay: the node is not pure, so the recording answers for it, never the world."""
        res = self.results[i]
        self.run_.answered.add(res.path)
        recorded = replay.outputs.get(res.path)
        if recorded is not None and self._reuse(i, recorded):
            return
        res.status = _RUNNING
        failure = replay.failures.get(res.path)
        if failure is not None:
            message = f"as recorded: {failure.get('message', 'it failed')}"
        elif res.path in replay.statuses:
            message = f"it was {replay.statuses[res.path]} in the recording"
        else:
            message = (
                "it is not in the recording, and a replay does not run a node that is not "
                "pure (it could write files, send requests or start programs)"
            )
        self._failed(i, ExecutionError(message, node_id=pn.id, node_type=pn.type_id))

    def _cache_key(
        self, pn: PlannedNode, key: tuple[str, str] | None, kwargs: dict[str, Any]
    ) -> str | None:
        """The node's key in the cache: its run-log key and, when its parameters hold
        templates, the parameters as they render now (a template may read the time, a secret
        or its inputs); None when it has no key."""
        if key is None:
            return None
        if not pn.templated:
            return key[0]
        names = expressions.node_scope(self.variables, self.run_.secrets, kwargs)
        try:
            rendered = expressions.render(pn.spec.parameters, names)
            text = to_json(rendered, fallback=str)
        except Exception:
            return None
        return digest(f"{key[0]}+{digest(text)}")

    def _not_cached(self, pn: PlannedNode) -> None:
        """Say once per run and node why a cached node runs: what it is given has no digest."""
        run = self.run_
        if pn.id in run.uncached:
            return
        run.uncached.add(pn.id)
        given = [tport for _s, _p, tport, _m in pn.inputs]
        _log.warning(
            "node %r is not cached: it has no key, as what it is given (its inputs %s, or the "
            "variables) holds a value no codec can store, or its parameters' templates do not "
            "render before it runs; it runs",
            pn.id,
            given or "none",
        )

    def _reuse(self, i: int, reused: StoredNode, *, cached: bool = False) -> bool:
        """Complete a node with the outputs the resumed run (or the cache) stored for the
        same key; False if they cannot be read back (the node then runs)."""
        res = self.results[i]
        try:
            out = reused.load()
        except Exception as exc:  # a blob gone since, a value that no longer decodes
            _log.warning(
                "node %r: the outputs stored by run %s cannot be read (%s); it runs again",
                res.path,
                reused.execution_id,
                exc,
            )
            return False
        if not cached:
            res.resumed_from = reused.execution_id
        res.started_at = _now()
        res.duration_ms = 0.0
        res.attempts = 0
        self._completed(i, out, reused.stored, _CACHED if cached else _COMPLETED)
        return True

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
                waiting = self.held
                if waiting is not None and i in waiting:
                    waiting.discard(i)
                    out = await self._debugged(pn, res, kwargs)
                elif pn.direct:  # the direct path (see conductor.attempts), in this task
                    run = self.run_
                    if run.cluster_values and held(kwargs):  # values held on a cluster
                        assert run.cluster is not None
                        kwargs = await run.cluster.fetch(kwargs)
                    t0 = _perf()
                    if self.trace is not None:
                        self.trace.node_started(pn, res)
                    if signals.node_started.receivers:
                        emit_node(self.run_, signals.node_started, "node.started", pn, res)
                    try:
                        ctx = NodeContext(self, pn, res.path)
                        clock = self.run_.cpu_clock
                        if clock is None or pn.node_type.container:
                            out = await pn.fn(ctx, pn.params, **kwargs)
                        else:
                            coro = pn.fn(ctx, pn.params, **kwargs)
                            # its first step here: most nodes end in it, and then cost two
                            # clock reads, not a generator driving them step by step
                            c0 = clock()
                            one_step = True
                            try:
                                first = coro.send(None)
                            except StopIteration as stop:
                                out = stop.value
                            else:
                                one_step = False  # cpu_timed goes on measuring
                                out = await cpu_timed(coro, self, i, clock, first, clock() - c0)
                            finally:
                                if one_step and i not in self.inclusive:
                                    res.cpu_ms = (clock() - c0) * 1000
                        out = check_outputs(pn, out)
                    finally:
                        res.duration_ms = (_perf() - t0) * 1000
                else:
                    out = await run_attempts(self, pn, res, kwargs)
            except asyncio.CancelledError:
                if self.stopping:
                    raise
                if task is not None and task.cancelling():
                    # the task that runs this graph is cancelled (the run's cancel, a race
                    # lost, a container's timeout), and the node it runs with it (``_here``)
                    self.running -= 1
                    self.tasks.pop(i, None)
                    self._cancelled(i)
                    raise
                # the node cancelled itself: a failure like any other
                self._settle(i, None, ExecutionCancelled("cancelled itself", node_id=pn.id))
                return
            except BaseException as exc:  # SystemExit, KeyboardInterrupt...: this node's failure
                self._settle(i, None, as_error(exc, pn, res.path))
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

    async def _debugged(
        self, pn: PlannedNode, res: NodeResult, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """A node of a debugged run: slow motion and a pause first (see conductor.debug),
        then its attempts (an injected fault among them)."""
        debugger = self.run_.debugger
        assert debugger is not None
        await debugger.before(self, pn, res, kwargs)
        res.status = _RUNNING
        res.started_at = _now()
        res.attempts = 1
        injection = debugger.injection(pn, res.path)
        if injection is not None:
            res.injected = str(injection)
        elif pn.inline and not (self.run_.cluster_values and held(kwargs)):
            return run_inline(self, pn, res, kwargs)
        return await run_attempts(self, pn, res, kwargs)

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
        if err is None:
            self._completed(i, out or {})
        else:
            self._failed(i, err)
        following = None
        if (
            task is not None
            and self.ready
            and err is None
            and not self.stopping
            and not self.eager_step
        ):
            following = self._continue_with(task)
        if self.ready:
            self.drain()
        else:
            self._maybe_done()
        return following

    def _continue_with(self, task: asyncio.Task[None]) -> tuple[int, dict[str, Any]] | None:
        """Take the first ready node for ``task`` if it is a direct async node."""
        ready = self.ready
        nodes = self.plan.nodes
        limit = self.limit
        while (
            ready
            and nodes[ready[0]].direct
            and not self.stopping
            and (limit is None or self.running < limit)
        ):
            j = ready.popleft()
            kwargs = self._prepare(j)
            if kwargs is not None:
                self.running += 1
                self.tasks[j] = task
                return j, kwargs
        return None

    def _task_done(self, i: int, task: asyncio.Task[None]) -> None:
        if self.tasks.get(i) is not task:  # it settled itself
            return
        self.running -= 1
        del self.tasks[i]
        pn = self.plan.nodes[i]
        if task.cancelled():
            if self.stopping:
                self._cancelled(i)
            else:  # the node cancelled itself: a failure like any other
                self._failed(i, ExecutionCancelled("cancelled itself", node_id=pn.id))
        else:
            exc = task.exception()
            err = exc or ExecutionCancelled("cancelled", node_id=pn.id)
            self._failed(i, as_error(err, pn, self.results[i].path))
        self.drain()

    # -- node outcomes -------------------------------------------------------------------
    def _advance(self, i: int) -> None:
        self.node_finished(i)
        remaining = self.remaining
        ready = self.ready
        for s in self.plan.nodes[i].successors:
            remaining[s] -= 1
            if remaining[s] == 0:
                ready.append(s)
        if self.observed and self.span is not None and self.parent is not None:
            self.propagate()

    def _completed(
        self,
        i: int,
        out: dict[str, Any],
        reused: Mapping[str, Any] | None = None,
        status: NodeStatus = NodeStatus.COMPLETED,
    ) -> None:
        res = self.results[i]
        res.status = status
        # downstream gets the real values; results and events the masked ones
        shown = self.run_.redactor.value(out) if self.secret_values else out
        if self.run_.retain_outputs:
            res.outputs = shown
        self.outputs[i] = out
        if self.keyed:
            pn = self.plan.nodes[i]
            key = self.keys.pop(i, None)
            stored = store_outputs(pn.id, out, shown, reused)
            self.port_digests[i] = stored.digests
            if self.trace is not None:
                self.trace.node_completed(
                    pn,
                    res,
                    key[0] if key is not None else None,
                    key[1] if key is not None else None,
                    stored,
                )
            cache_key = self.cache_keys.pop(i, None)
            if (
                cache_key is not None
                and status is _COMPLETED
                and stored.why is None
                and self.run_.cache is not None
            ):
                self.run_.cache_put(cache_key, pn, stored)
        self._advance(i)
        if signals.node_completed.receivers:
            emit_node(
                self.run_,
                signals.node_completed,
                "node.completed",
                self.plan.nodes[i],
                res,
                outputs=shown,
            )
        if self.prune:
            self.run_.result.nodes.pop(res.path, None)

    def _skip(self, i: int, reason: str) -> None:
        res = self.results[i]
        res.status = NodeStatus.SKIPPED
        res.reason = reason
        if self.trace is not None:
            self.trace.node_ended("node.skipped", res)
        self._advance(i)
        if signals.node_skipped.receivers:
            emit_node(
                self.run_,
                signals.node_skipped,
                "node.skipped",
                self.plan.nodes[i],
                res,
                message=reason,
            )

    def _failed(self, i: int, err: AtomitonError) -> None:
        pn = self.plan.nodes[i]
        res = self.results[i]
        res.status = NodeStatus.FAILED
        res.error = err.at(pn.id, res.path)
        if self.run_.redactor.values:
            self.run_.redactor.error(res.error)
        conductor = self.run_.conductor
        if "atomiton_on_node_error" in conductor.hooks:
            conductor.call_hook(
                "atomiton_on_node_error",
                execution_id=self.run_.execution_id,
                node_id=pn.id,
                path=res.path,
                error=res.error,
            )
        if self.trace is not None:
            self.trace.node_ended("node.failed", res)
        if pn.settings.continue_on_fail:
            self._advance(i)
            emit_node(self.run_, signals.node_failed, "node.failed", pn, res)
            return
        emit_node(self.run_, signals.node_failed, "node.failed", pn, res)
        self.fail_run(err)

    def fail_run(self, err: AtomitonError) -> None:
        """Fail this graph (fail-fast): remember the first error, stop the rest."""
        if self.error is None:
            self.error = err
        self._stop(cancel=False)

    def _cancelled(self, i: int) -> None:
        res = self.results[i]
        res.status = NodeStatus.CANCELLED
        if res.error is None:
            res.error = ExecutionCancelled("cancelled", node_id=res.node_id, path=res.path)
        if res.started_at is not None and res.duration_ms is None:
            res.duration_ms = (_now() - res.started_at) * 1000
        if self.trace is not None:
            self.trace.node_ended("node.cancelled", res)
        emit_node(self.run_, signals.node_cancelled, "node.cancelled", self.plan.nodes[i], res)

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

    # -- results -------------------------------------------------------------------------
    def container_outputs(self) -> dict[str, Any]:
        """What the container whose children this graph ran outputs."""
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
