"""Nodes as tasks on a Dask ``distributed`` cluster, their data kept there.

:class:`DaskExecutor` runs the nodes placed on the cluster (blocking sync nodes by default,
any node with ``executor: dask``; never a container) as Dask tasks:

- **Data stays on the cluster.** A node's inputs that come from nodes run there are passed as
  Dask futures, so Dask moves them worker to worker; only outputs up to
  :data:`~atomiton_core.conductor.cluster.FETCH_LIMIT` come back with the task's description.
  The conductor fetches a larger one (a :class:`~atomiton_core.conductor.cluster.ClusterValue`)
  only for a node that runs in its own process and for the run's outputs. Large variables are
  scattered once per run.
- **Chains are sent ahead.** With a node's task go the tasks of the nodes after it (8 deep,
  64 per run at most) that run on the cluster on nothing but that node's outputs and that
  only its failure could stop (no cache, pin, disabled switch, resume, replay, debugger or
  parameters rendered at the start; an input's type checked against what it declares), their
  inputs its future: Dask starts each as its predecessor ends, with no trip through the
  conductor between them. The conductor still completes each node in order (its result,
  record, signals) and takes its task over; a failed or cancelled attempt lets go of the
  tasks sent on its outputs (a retry sends them again), and the run's end of those it never
  got to.
- **Nothing blocks the event loop.** The conductor uses Dask's asynchronous API: each call
  (gather, scatter, run, cancel) is a coroutine of the client, run on the client's own event
  loop and awaited on the run's (a client belongs to one loop, and ``conductor.run()`` makes
  a new loop each call: the client's loop outlives them all); submitting only queues a
  message for that loop. Completions reach the run's loop through ``call_soon_threadsafe``.
- **Readable keys**: ``<node type>-<node id>-<token>``, so the dashboard shows the flow.
- **Checked before the first task**: every worker must be able to load each node type the run
  sends (its module, at a compatible version of its distribution); node functions travel by
  reference (module and name), unless their module is registered with cloudpickle to be sent
  by value.
- **Clear failures**: a node that killed its worker (``KilledWorker``) fails as
  ``WORKER_CRASHED``, not retried unless the node's retries say so; a lost connection to the
  scheduler, a scheduler with no worker within ``worker_timeout`` and an unreachable scheduler
  are configuration errors naming the address; a task that Dask ran again after a worker was
  lost counts in the node's ``attempts``.

The conductor keeps scheduling, timeouts, retries, signals and the record; a task timed out or
cancelled is cancelled on the cluster, but a worker that has started it runs it to its end.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import importlib
import inspect
import logging
import os
import pickle
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from atomiton_core.conductor.cluster import FETCH_LIMIT, ClusterValue, held, swap, swap_async
from atomiton_core.conductor.remote import PROGRESS_TOPIC, RemoteContext
from atomiton_core.errors import ConfigurationError, ExecutionError, WorkerCrashed
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import ports_compatible
from atomiton_core.secrets import GivenSecrets, referenced_secrets

if TYPE_CHECKING:
    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.run import Run
    from atomiton_core.conductor.scheduler import GraphRun
    from atomiton_core.nodes.definition import NodeType
    from atomiton_core.results import NodeResult

__all__ = ["DaskExecutor", "on_cluster"]

_log = logging.getLogger("atomiton.conductor.dask")

#: The worker event topic tasks describe their outputs on.
OUTPUTS_TOPIC = "atomiton-outputs"
#: How a described port comes: with the event, fetched, or held on the cluster.
_INLINE, _FETCH, _HELD = 0, 1, 2
#: Bytes of small values an event carries at most (the scheduler keeps recent events).
_EVENT_BUDGET = 2048
#: Seconds after its task finished that a description is asked for if its event never came.
_EVENT_GRACE_S = 5.0

#: A tuple in a task's arguments standing for ``outputs[port]`` of the future beside it.
_REF = "\x00atomiton-cluster-ref"


def on_cluster(pn: PlannedNode) -> bool:
    """Whether a node is placed on the cluster (when the conductor has one): ``executor:
    dask``, or ``auto`` and a blocking sync node; never a container or a ``flow`` node."""
    if pn.runs_children:
        return False
    placement = pn.settings.executor
    if placement == "auto":
        return not pn.node_type.is_async and pn.node_type.blocking
    return placement == "dask"


class DaskExecutor:
    """The nodes placed on the cluster as tasks on a Dask ``distributed`` cluster.

    ``client``: an existing ``distributed.Client`` (not closed with the executor); or
    ``address``: a scheduler to connect to; or neither: a ``LocalCluster`` started here (and
    closed with the executor) with ``n_workers`` worker processes of ``threads_per_worker``
    threads each (default: one per CPU, one thread), ``memory_limit`` per worker (Dask's
    notation, ``"2GiB"``), and ``adaptive=(minimum, maximum)`` workers scaled to the load;
    other ``cluster_options`` go to ``LocalCluster`` as they are. Free ports unless the
    options name them (a busy 8787 must not stop a run).

    ``worker_timeout``: seconds to wait for a first worker before a run fails.
    ``allowed_failures``: how often a task may lose its worker before it fails as having
    killed it (a cluster started here; a scheduler's own setting holds otherwise).
    ``shared_paths``: path prefixes every worker sees as this machine does (a shared folder);
    a node sent to a remote cluster with a local path elsewhere is warned about.
    """

    #: The conductor asks this of its executor: values stay where it ran the node.
    holds_values = True

    def __init__(
        self,
        client: Any = None,
        *,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        memory_limit: str | float | None = None,
        adaptive: tuple[int, int] | None = None,
        worker_timeout: float = 60.0,
        allowed_failures: int = 1,
        shared_paths: Iterable[str] = (),
        **cluster_options: Any,
    ) -> None:
        try:
            import dask
            import distributed
        except ImportError as exc:
            raise ConfigurationError(
                "the Dask executor needs dask.distributed",
                hint='pip install "atomiton-core[dask]"',
            ) from exc
        self.worker_timeout = worker_timeout
        self.shared_paths = tuple(shared_paths)
        self._owned: list[Any] = []
        self.local = False
        if client is None:
            if address is None:
                if n_workers is None:
                    n_workers = adaptive[0] if adaptive is not None else os.cpu_count() or 1
                options: dict[str, Any] = {
                    "scheduler_port": 0,
                    "dashboard_address": ":0",
                    "n_workers": n_workers,
                    "threads_per_worker": threads_per_worker or 1,
                    **cluster_options,
                }
                if memory_limit is not None:
                    options["memory_limit"] = memory_limit
                failures = {"distributed.scheduler.allowed-failures": allowed_failures}
                try:
                    with dask.config.set(failures):
                        cluster = distributed.LocalCluster(**options)  # type: ignore[no-untyped-call]
                except Exception as exc:  # the worker processes could not start
                    raise ConfigurationError(
                        f"could not start a local Dask cluster: {exc}",
                        hint="in a script, create the conductor under "
                        "'if __name__ == \"__main__\":' (each worker process imports the "
                        "main module); check the options",
                    ) from exc
                if adaptive is not None:
                    cluster.adapt(minimum=adaptive[0], maximum=adaptive[1])
                self._owned.append(cluster)
                address = cluster.scheduler_address
                self.local = True
            try:
                client = distributed.Client(address, set_as_default=False, timeout=10)  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                for owned in self._owned:
                    owned.close()
                raise ConfigurationError(
                    f"cannot reach the Dask scheduler at {address}: {exc}",
                    hint="start it (dask scheduler), or check the address and the network",
                ) from None
            self._owned.insert(0, client)
        else:
            self.local = _loopback(client.scheduler.address)
        self.client = client
        self.address: str = client.scheduler.address
        #: progress token -> the node's local context, while its task runs
        self._reporting: dict[str, NodeContext] = {}
        #: task key -> times Dask started it again after its worker was lost
        self._rerun: dict[str, int] = {}
        #: per execution: what its tasks share (scattered variables, the values it holds)
        self._runs: dict[str, _RunState] = {}
        #: node types whose loading the workers proved, by (type id, version)
        self._checked: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        #: task key -> where its description goes, while the node waits for it
        self._waiting: dict[str, _Task] = {}
        client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)
        client.subscribe_topic(OUTPUTS_TOPIC, self._described)
        client.subscribe_topic("all", self._on_cluster_event)

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"

    # -- worker events (in the client's thread) ------------------------------------------------
    def _on_progress(self, event: Any) -> None:
        _, message = event
        ctx = self._reporting.get(message.get("token"))
        if ctx is not None:
            ctx.progress(message["fraction"], message.get("message"))

    def _on_cluster_event(self, event: Any) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        with self._lock:
            for key in message.get("processing-tasks") or ():
                if key in self._rerun:
                    self._rerun[key] += 1

    # -- a run -----------------------------------------------------------------------------
    async def begin_run(self, run: Run) -> None:
        """Before a run's first node, when it places any on the cluster: a worker there,
        each node type it sends loadable on every worker, its variables scattered when they
        are large. A node type the workers cannot load fails the run here, naming it."""
        state = self._runs[run.execution_id] = _RunState()
        types = [pn.node_type for pn in _all_nodes(run) if on_cluster(pn)]
        if not types:
            return
        await self._wait_for_workers()
        await self._check(types)
        variables = run.variables
        if variables and len(pickle.dumps(dict(variables), protocol=5)) > FETCH_LIMIT:
            state.variables = await self._call(self.client.scatter, dict(variables), hash=False)

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call of Dask's asynchronous API: ``method(..., asynchronous=True)`` is a
        coroutine of the client, run on the client's own event loop and awaited on the
        caller's (the conductor's loops come and go, ``conductor.run()`` makes one per
        call, and a client belongs to the loop it runs on). A lost connection is said so."""
        coro = method(*args, asynchronous=True, **kwargs)
        if not inspect.isawaitable(coro):  # answered at once (the client had it)
            return coro
        done = asyncio.run_coroutine_threadsafe(_awaited(coro), self.client.loop.asyncio_loop)
        try:
            return await asyncio.wrap_future(done)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | PermissionError):
                raise
            raise _lost(self.address, exc) from None

    def _call_soon(
        self,
        method: Callable[..., Any],
        *args: Any,
        then: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """The same, from any thread, without waiting: ``then(result)`` when it is done."""
        coro = method(*args, asynchronous=True, **kwargs)
        if not inspect.isawaitable(coro):
            if then is not None:
                then(coro)
            return
        done = asyncio.run_coroutine_threadsafe(_awaited(coro), self.client.loop.asyncio_loop)

        def ended(future: concurrent.futures.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                _log.debug("a Dask call ended without a result: %s", future)
            elif then is not None:
                then(future.result())

        done.add_done_callback(ended)

    async def _check(self, types: list[NodeType]) -> None:
        unchecked = [t for t in types if (t.id, t.version) not in self._checked]
        if unchecked:
            await self._check_types(unchecked)

    async def _wait_for_workers(self) -> None:
        try:
            info = await self._call(self.client.scheduler_info)
            if info.get("workers"):
                return
            # (the client's own wait has no asynchronous form: it waits in a thread)
            await asyncio.to_thread(self.client.wait_for_workers, 1, timeout=self.worker_timeout)
        except TimeoutError:
            raise ConfigurationError(
                f"no Dask worker joined the scheduler at {self.address} within "
                f"{self.worker_timeout:g} s",
                hint="start workers (dask worker " + self.address + "), or raise worker_timeout",
            ) from None
        except OSError as exc:
            raise _lost(self.address, exc) from None

    async def _check_types(self, types: list[NodeType]) -> None:
        """Ask every worker to load each node type; refuse the run naming what is missing."""
        from importlib import metadata

        probes = []
        for nt in {(t.id, t.version): t for t in types}.values():
            dist = nt.distribution
            version = None
            if dist is not None:
                try:
                    version = metadata.version(dist)
                except metadata.PackageNotFoundError:
                    dist = None
            probes.append((nt.id, dist, version, _shipped(nt)))
        answers = await self._call(self.client.run, _probe, probes)
        for worker, problems in sorted(answers.items()):
            for type_id, problem in problems.items():
                nt = next(t for t in types if t.id == type_id)
                what = (
                    f"package {nt.distribution!r}"
                    if nt.distribution
                    else f"module {nt.fn.__module__!r}"
                )
                raise ConfigurationError(
                    f"node type {type_id!r} cannot run on the Dask worker {worker}: {problem}",
                    hint=f"install the {what} on every worker"
                    + (
                        f" ({nt.distribution}=={metadata.version(nt.distribution)})"
                        if nt.distribution and _installed(nt.distribution)
                        else ""
                    )
                    + ", or keep the node here with 'executor: local'",
                    node_type=type_id,
                    worker=worker,
                )
        for nt in types:
            self._checked.add((nt.id, nt.version))

    async def run_node(
        self,
        run: Run,
        pn: PlannedNode,
        ctx: NodeContext,
        res: NodeResult,
        kwargs: dict[str, Any],
    ) -> Any:
        """One attempt of a node on the cluster: its outputs, the large ones left there.

        The nodes after it that can only run on its outputs (see :meth:`_ahead`) are sent
        with it, their inputs its task's future, so the cluster starts each as soon as its
        predecessor ends, as a chain of Dask futures would; the conductor takes each sent
        task over when it gets to that node, and lets go of those it never gets to."""
        state = self._runs.get(run.execution_id)
        if state is None:  # a run that did not begin here (a node placed by its own code)
            await self.begin_run(run)
            state = self._runs[run.execution_id]
        await self._check([pn.node_type])  # a stored sub-flow's nodes are checked as they come
        loop = asyncio.get_running_loop()
        task = state.ahead.pop(res.path, None) if state.ahead else None
        if task is not None and (
            res.attempts != 1 or task.dropped or task.ports != frozenset(kwargs)
        ):
            self._drop(task)  # not what was foreseen (a retry, an input missing): anew
            task = None
        batch: list[_Send] = []
        if task is None:
            remote_ctx = self._remote_context(ctx, pn, state)
            token = remote_ctx.progress_token = uuid.uuid4().hex
            task = _Task(loop, f"{pn.type_id}-{pn.id}-{token[:12]}", token)
            refs = bool(run.cluster_values) and held(kwargs)
            args = swap(kwargs, _as_ref) if refs else kwargs
            batch.append(_Send(task, pn, remote_ctx, args, refs))
        self._warn_local_state(run, pn)
        self._reporting[task.token] = ctx
        graph: Any = getattr(ctx, "_host", None)  # the GraphRun the node is part of
        if getattr(graph, "plan", None) is not None and _may_send_ahead(run):
            batch += self._ahead(run, state, graph, pn, task)
        try:
            if batch:
                self._send(batch, state)  # the client sends them from its own loop
            description = await task.outcome
            assert task.future is not None
            out = await self._outputs(run, state, task.future, task.key, description)
        except asyncio.CancelledError:
            if task.future is not None:
                self._call_soon(self.client.cancel, [task.future])
            self._drop_followers(task, state)
            raise
        except BaseException as exc:
            self._drop_followers(task, state)  # a retry sends its followers again
            raise self._node_error(pn, exc) from exc
        finally:
            self._waiting.pop(task.key, None)
            self._reporting.pop(task.token, None)
            reruns = self._rerun.pop(task.key, 0)
            if reruns:
                res.attempts += reruns
                _log.warning(
                    "node %r lost its Dask worker %d time(s) and was run again", pn.id, reruns
                )
        return out

    def _remote_context(self, ctx: NodeContext, pn: PlannedNode, state: _RunState) -> RemoteContext:
        remote_ctx = RemoteContext.of(ctx)
        remote_ctx.secrets = GivenSecrets.resolve(ctx._secret, referenced_secrets(pn.params))
        if state.variables is not None:
            remote_ctx.variables = {}
        return remote_ctx

    def _ahead(
        self, run: Run, state: _RunState, graph: GraphRun, pn: PlannedNode, task: _Task
    ) -> list[_Send]:
        """The tasks to send ahead of ``pn``'s: the nodes after it, :data:`AHEAD` deep at
        most, that run on the cluster on nothing but their one predecessor's outputs and
        that nothing can stop but its failure (see :func:`_foreseeable`)."""
        sends: list[_Send] = []
        frontier = [(pn, task)]
        nodes = graph.plan.nodes
        prefix = graph.prefix
        for _ in range(AHEAD):
            nxt: list[tuple[PlannedNode, _Task]] = []
            for src, src_task in frontier:
                for s in src.successors:
                    after = nodes[s]
                    path = prefix + after.id if prefix else after.id
                    known = state.ahead.get(path)
                    if known is not None:
                        nxt.append((after, known))
                        continue
                    if len(state.ahead) >= AHEAD_LIMIT or not _foreseeable(graph, src, after):
                        continue
                    ctx = NodeContext(graph, after, path)
                    remote_ctx = self._remote_context(ctx, after, state)
                    token = remote_ctx.progress_token = uuid.uuid4().hex
                    ahead = _Task(
                        run.loop,
                        f"{after.type_id}-{after.id}-{token[:12]}",
                        token,
                        frozenset(t for _s, _p, t, _m in after.inputs),
                    )
                    ahead.path = path
                    src_task.followers.append(ahead)
                    recipe = {t: (src_task, sport) for _s, sport, t, _m in after.inputs}
                    sends.append(_Send(ahead, after, remote_ctx, recipe, True, ahead=True))
                    state.ahead[path] = ahead
                    nxt.append((after, ahead))
            if not nxt:
                break
            frontier = nxt
        return sends

    def _send(self, batch: list[_Send], state: _RunState) -> None:
        """Submit a node's task and those sent ahead of it, in order: each one's end and
        its description reach its ``_Task``. (``client.submit`` only queues the message for
        the client's loop, which pickles and sends it.)"""
        for send in batch:
            task = send.task
            if task.dropped:
                continue
            args: Any = send.kwargs
            if send.ahead:  # the futures of the tasks before it, sent just now or earlier
                args = {}
                for port, (source, sport) in send.kwargs.items():
                    if source.future is None or source.dropped:
                        break
                    args[port] = (_REF, source.future, sport)
                if len(args) != len(send.kwargs):
                    task.dropped = True
                    continue
            self._waiting[task.key] = task
            self._rerun[task.key] = 0
            future = self.client.submit(
                _run_task,
                _shipped(send.pn.node_type),
                send.remote_ctx,
                send.pn.params,
                args,
                send.refs,
                state.variables,
                task.key,
                key=task.key,
                pure=False,
                resources=send.pn.settings.resources,
            )
            task.future = future
            future.add_done_callback(partial(self._ended, task))
            if task.dropped:  # let go of while it was being sent
                self._call_soon(self.client.cancel, [future])

    def _ended(self, task: _Task, done: Any) -> None:
        """A task's end (in Dask's callback thread): its description is an event (see
        ``_described``); an error or a cancel goes to the task's outcome here."""
        if done.status == "finished":
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                task.loop.call_soon_threadsafe(
                    task.loop.call_later, _EVENT_GRACE_S, self._late, task
                )
            return
        self._waiting.pop(task.key, None)
        try:
            error = _lost(self.address, None) if done.status == "cancelled" else done.exception()
        except BaseException as exc:  # the connection went while asking
            error = exc
        task.deliver_threadsafe(False, error)

    def _late(self, task: _Task) -> None:
        """Finished, and its description never came: ask for it."""
        future = task.future
        if self._waiting.pop(task.key, None) is not None and future is not None:
            self._call_soon(
                self.client.gather,
                [future],
                then=lambda outs: task.deliver_threadsafe(True, _describe(outs[0])),
            )

    def _drop_followers(self, task: _Task, state: _RunState) -> None:
        """This attempt failed or was cancelled: the tasks sent ahead on its outputs
        would fail with it, so they are let go of (a retry sends them again)."""
        stack = list(task.followers)
        task.followers.clear()
        while stack:
            follower = stack.pop()
            if state.ahead.get(follower.path) is follower:
                del state.ahead[follower.path]
            self._drop(follower)
            stack.extend(follower.followers)
            follower.followers.clear()

    def _drop(self, task: _Task) -> None:
        """Let go of a task sent ahead that the conductor does not take over."""
        task.dropped = True
        self._waiting.pop(task.key, None)
        self._rerun.pop(task.key, None)
        if not task.outcome.done():
            task.outcome.cancel()
        if task.future is not None:
            self._call_soon(self.client.cancel, [task.future])

    def _described(self, event: Any) -> None:
        """A task's description of its outputs (in the client's thread)."""
        _, message = event
        task = self._waiting.pop(message.get("key"), None)
        if task is not None:
            task.deliver_threadsafe(True, message.get("outputs"))

    async def _outputs(
        self, run: Run, state: _RunState, main: Any, key: str, description: Any
    ) -> Any:
        """A node's outputs from its task's description: small values as they are (those
        not sent with it fetched, once), large ones left on the cluster."""
        if not isinstance(description, dict):  # not a dict of outputs: fetch what it is
            return (await self._call(self.client.gather, [main]))[0]
        out: dict[str, Any] = {}
        fetch = False
        for port, (how, *what) in description.items():
            if how == _INLINE:
                out[port] = pickle.loads(what[0])
            elif how == _FETCH:
                fetch = True
            else:
                kind_name, type_name, nbytes = what
                kind = getattr(builtins, kind_name) if kind_name else None
                cv = ClusterValue(main, port, kind, type_name, nbytes, key)
                state.values.append(cv)
                out[port] = cv
                run.cluster_values += 1
        if fetch:
            whole = (await self._call(self.client.gather, [main]))[0]
            for port, (how, *_what) in description.items():
                if how == _FETCH:
                    out[port] = whole[port]
        if state.values and state.values[-1].future is main:
            state.tasks.append(main)
        return out

    def _node_error(self, pn: PlannedNode, exc: BaseException) -> BaseException:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            return WorkerCrashed(
                f"{pn.type_id} node {pn.id!r} killed its Dask worker each time it ran "
                "(the worker process died while running it)",
                node_id=pn.id,
                hint="look for a crash, os._exit or the memory limit in the node; give the "
                "workers more memory (memory_limit), or keep it here with 'executor: local'",
                retryable=False,
            )
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
            name = type(exc).__name__
            if "Comm" in name or "Connection" in name or isinstance(exc, ConnectionError):
                return _lost(self.address, exc)
        return exc

    def _warn_local_state(self, run: Run, pn: PlannedNode) -> None:
        """Say once per run and node that a node sent to the cluster names driver-local
        state: ``memory://`` (each process has its own), or a local path a remote cluster's
        workers do not share."""
        state = self._runs[run.execution_id]
        if pn.id in state.warned:
            return
        for text in _strings(pn.spec.parameters):
            if "memory://" in text:
                why = f"{text!r} is memory of this process, which a Dask worker does not share"
            elif (
                not self.local
                and (text.startswith(("/", "file://")))
                and not text.removeprefix("file://").startswith(self.shared_paths or ("\0",))
            ):
                why = f"{text!r} is a path on this machine, which a remote Dask worker may not have"
            else:
                continue
            state.warned.add(pn.id)
            _log.warning(
                "node %r runs on the Dask cluster, but %s (use shared storage, or keep the "
                "node here with 'executor: local')",
                pn.id,
                why,
            )
            return

    async def fetch(self, value: Any) -> Any:
        """``value`` with every ClusterValue in it fetched from the cluster (the data is
        received on the client's loop, not this one)."""
        return await swap_async(value, self._gather)

    async def _gather(self, cvs: list[ClusterValue]) -> list[Any]:
        futures = []
        for cv in cvs:
            if cv.future is None:
                raise ExecutionError(
                    f"{cv!r} was released when the run that made it ended",
                    hint="read outputs while the run goes on, or from the run's outputs",
                )
            futures.append(cv.future)
        outputs = await self._call(self.client.gather, futures)
        return [out[cv.port] for out, cv in zip(outputs, cvs, strict=True)]

    def end_run(self, run: Run) -> None:
        """The run is over: what it left on the cluster is let go (its ClusterValues stay
        as descriptions, released)."""
        state = self._runs.pop(run.execution_id, None)
        if state is None:
            return
        for task in state.ahead.values():  # never taken over: the run did not get there
            self._drop(task)
        state.ahead.clear()
        for cv in state.values:
            cv.release()
        scattered = state.variables  # a dict of futures, one a variable
        futures = [*state.tasks, *(scattered.values() if scattered is not None else ())]
        state.values.clear()
        state.tasks.clear()
        state.variables = None
        for future in futures:
            future.release()  # the client's loop takes the message

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """The plain executor call (one function, its outputs fetched): what code written
        for the Executor protocol uses; the conductor itself uses :meth:`run_node`."""
        remote_ctx = RemoteContext.of(ctx)
        remote_ctx.secrets = GivenSecrets.resolve(ctx._secret, referenced_secrets(params))
        future = self.client.submit(
            _run_task, fn, remote_ctx, params, kwargs, False, None, pure=False
        )

        async def result() -> Any:
            return (await self._call(self.client.gather, [future]))[0]

        return asyncio.ensure_future(result(), loop=loop)

    def close(self) -> None:
        """Close the client and the cluster started here (a client given is left open);
        the topics are let go first, or the scheduler would tell a closed client of its
        own leaving."""
        for topic in (PROGRESS_TOPIC, OUTPUTS_TOPIC, "all"):
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(topic)
        for owned in self._owned:
            owned.close()
        self._owned.clear()


class _RunState:
    __slots__ = ("ahead", "ready", "tasks", "values", "variables", "warned")

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] | None = None
        #: tasks sent ahead of their node, by its path, until the conductor takes them over
        self.ahead: dict[str, _Task] = {}
        #: the scattered variables (None: sent with each task, being small)
        self.variables: Any = None
        #: the values the run left on the cluster, and the tasks holding them
        self.values: list[ClusterValue] = []
        self.tasks: list[Any] = []
        self.warned: set[str] = set()


class _Task:
    """A node's task on the cluster: its Dask future, and the outcome its end brings (the
    description of its outputs, or the error) on the loop of the run that sent it."""

    __slots__ = (
        "dropped",
        "followers",
        "future",
        "key",
        "loop",
        "outcome",
        "path",
        "ports",
        "token",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        key: str,
        token: str,
        ports: frozenset[str] = frozenset(),
    ) -> None:
        self.loop = loop
        self.key = key
        self.token = token
        #: a task sent ahead: the input ports it was given
        self.ports = ports
        self.future: Any = None
        self.dropped = False
        #: a task sent ahead: its node's path; the tasks sent ahead on this one's outputs
        self.path = ""
        self.followers: list[_Task] = []
        self.outcome: asyncio.Future[Any] = loop.create_future()
        self.outcome.add_done_callback(_retrieved)

    def deliver(self, ok: bool, value: Any) -> None:
        _settle(self.outcome, ok, value)

    def deliver_threadsafe(self, ok: bool, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            self.loop.call_soon_threadsafe(self.deliver, ok, value)


class _Send:
    """A task to submit: the node, its context, and its inputs (for a task sent ahead,
    by the earlier task and port each comes from)."""

    __slots__ = ("ahead", "kwargs", "pn", "refs", "remote_ctx", "task")

    def __init__(
        self,
        task: _Task,
        pn: PlannedNode,
        remote_ctx: RemoteContext,
        kwargs: dict[str, Any],
        refs: bool,
        *,
        ahead: bool = False,
    ) -> None:
        self.task = task
        self.pn = pn
        self.remote_ctx = remote_ctx
        self.kwargs = kwargs
        self.refs = refs
        self.ahead = ahead


#: How many nodes deep, and how many in all per run, tasks are sent ahead of their node.
AHEAD = 8
AHEAD_LIMIT = 64


def _may_send_ahead(run: Run) -> bool:
    """A run whose nodes run as planned: no resume or replay to answer for one, no
    debugger to pause or fault one."""
    return run.prior is None and run.replay is None and run.debugger is None


def _foreseeable(graph: GraphRun, src: PlannedNode, after: PlannedNode) -> bool:
    """Whether ``after`` can be sent ahead of its node, its inputs ``src``'s task's future:
    it runs on the cluster on nothing but ``src``'s outputs, and only ``src``'s failure
    can keep it from running (no cache, pin, disabled, parameters rendered at the start,
    retries aside; an input type checked only if ``src`` declares a compatible one)."""
    if not on_cluster(after) or after.settings.isolated or after.n_preds != 1:
        return False
    settings = after.settings
    if not settings.enabled or settings.cache or after.pinned is not None:
        return False
    if after.deferred is not None or (graph.unrendered and after.index in graph.unrendered):
        return False
    if not after.inputs or graph.stopping:
        return False
    ports = set()
    for source, _sport, tport, multiple in after.inputs:
        if source != src.index or multiple:
            return False
        ports.add(tport)
    if not after.required <= ports:
        return False
    if after.typed_inputs:
        declared = src.node_type.outputs
        given = {t: sp for _s, sp, t, _m in after.inputs}
        for port, _kinds, _multiple in after.typed_inputs:
            if port not in given:
                continue
            out = declared.get(given[port])
            if out is None or out.type is Any:
                return False
            if not ports_compatible(out.type, after.node_type.inputs[port].type):
                return False
    return True


def _retrieved(outcome: asyncio.Future[Any]) -> None:
    """An outcome nobody awaited (a task sent ahead, let go of) is not an error to log."""
    if not outcome.cancelled():
        outcome.exception()


def _settle(waiter: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if waiter.done():
        return
    if ok:
        waiter.set_result(value)
    else:
        waiter.set_exception(value)


async def _awaited(awaitable: Any) -> Any:
    """A coroutine of any awaitable (the client answers some calls with a future)."""
    return await awaitable


def _lost(address: str, exc: BaseException | None) -> ConfigurationError:
    why = f": {exc}" if exc is not None and str(exc) else ""
    return ConfigurationError(
        f"the connection to the Dask scheduler at {address} was lost{why}",
        hint="check that the scheduler still runs and is reachable from this machine",
        retryable=False,
    )


def _loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _all_nodes(run: Run) -> Iterable[PlannedNode]:
    """Every node of the run's plan, children of containers included."""
    stack = [run.plan.root]
    while stack:
        graph = stack.pop()
        for pn in graph.nodes:
            yield pn
            if pn.children is not None:
                stack.append(pn.children)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


class _NodeRef:
    """A node function by reference: its module and name, imported on the worker."""

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __getstate__(self) -> tuple[str, str]:
        return self.module, self.qualname

    def __setstate__(self, state: tuple[str, str]) -> None:
        self.module, self.qualname = state

    def load(self) -> Callable[..., Any]:
        fn = _LOADED.get((self.module, self.qualname))
        if fn is None:
            obj: Any = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                obj = getattr(obj, part)
            fn = getattr(obj, "fn", obj)  # a NodeType, or the function itself
            _LOADED[(self.module, self.qualname)] = fn
        return fn


#: Node functions a worker loaded, by module and name.
_LOADED: dict[tuple[str, str], Callable[..., Any]] = {}


def _shipped(nt: NodeType) -> _NodeRef | Callable[..., Any]:
    """How a node type's function travels: by reference when its module and name find it
    (and cloudpickle is not told to send that module by value), else the function itself."""
    fn = nt.fn
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        return fn
    try:
        import cloudpickle

        by_value = cloudpickle.list_registry_pickle_by_value()
    except (ImportError, AttributeError):  # pragma: no cover - distributed brings it
        by_value = set()
    if any(module == m or module.startswith(m + ".") for m in by_value):
        return fn
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return fn
    if found is nt or found is fn:
        return _NodeRef(module, qualname)
    return fn


# -- on the workers ------------------------------------------------------------------------
def _probe(
    probes: list[tuple[str, str | None, str | None, _NodeRef | Callable[..., Any]]],
) -> dict[str, str]:
    """On each worker: the node types it cannot load, and why."""
    from importlib import metadata

    problems: dict[str, str] = {}
    for type_id, dist, version, shipped in probes:
        if dist is not None:
            try:
                theirs = metadata.version(dist)
            except metadata.PackageNotFoundError:
                problems[type_id] = f"package {dist!r} is not installed there"
                continue
            if version is not None and theirs.split(".")[:2] != version.split(".")[:2]:
                problems[type_id] = f"package {dist!r} is {theirs} there, {version} here"
                continue
        if isinstance(shipped, _NodeRef):
            try:
                shipped.load()
            except Exception as exc:  # ImportError, AttributeError, an error importing it
                problems[type_id] = (
                    f"its module {shipped.module!r} does not import there "
                    f"({type(exc).__name__}: {exc})"
                )
    return problems


def _run_task(
    shipped: _NodeRef | Callable[..., Any],
    ctx: RemoteContext,
    params: BaseModel,
    kwargs: dict[str, Any],
    refs: bool,
    variables: Mapping[str, Any] | None,
    key: str | None = None,
) -> Any:
    """A node's call on a worker; its outputs stay in the worker's memory, and with ``key``
    their description goes to the conductor as a worker event (no second task, no fetch).
    ``refs``: some inputs are other tasks' outputs, given whole by Dask, the port to take
    beside each."""
    fn = shipped.load() if isinstance(shipped, _NodeRef) else shipped
    if variables is not None:
        ctx.variables = dict(variables)
    if refs:
        kwargs = _unref(kwargs)
    if inspect.iscoroutinefunction(fn):
        out = asyncio.run(fn(ctx, params, **kwargs))
    else:
        out = fn(ctx, params, **kwargs)
    if key is not None:
        from distributed import get_worker

        get_worker().log_event(OUTPUTS_TOPIC, {"key": key, "outputs": _describe(out)})
    return out


def _describe(out: Any) -> Any:
    """Each output port as the conductor gets it: ``[INLINE, pickled]`` when small (and the
    event small enough), ``[FETCH]`` when the conductor should fetch it, ``[HELD, builtin
    class name or None, type name, bytes]`` when it stays on the cluster; None for outputs
    that are not a dict (fetched, for the conductor's check to say what is wrong)."""
    if out is None:
        return {}
    if type(out) is not dict:
        return None
    described: dict[str, list[Any]] = {}
    budget = _EVENT_BUDGET
    for port, value in out.items():
        if not isinstance(port, str):
            return None
        size = _size_of(value, FETCH_LIMIT)
        if size > FETCH_LIMIT:
            tp = type(value)
            kind = tp.__name__ if tp.__module__ == "builtins" else None
            name = tp.__name__ if kind else f"{tp.__module__}.{tp.__qualname__}"
            described[port] = [_HELD, kind, name, size]
            continue
        data = pickle.dumps(value, protocol=5) if size <= budget else b""
        if data and len(data) <= budget:
            described[port] = [_INLINE, data]
            budget -= len(data)
        else:
            described[port] = [_FETCH]
    return described


def _size_of(value: Any, limit: int) -> int:
    """Bytes of a value as Dask would send it: bytes-like by their length, the rest pickled
    (a value that does not pickle stays where it is: Dask could not send it either)."""
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    if isinstance(value, str):
        return len(value) if len(value) <= limit // 4 else len(value.encode())
    if value is None or isinstance(value, bool | int | float):
        return 8
    try:
        return len(pickle.dumps(value, protocol=5))
    except Exception:
        return limit + 1


def _as_ref(cv: ClusterValue) -> tuple[str, Any, str]:
    if cv.future is None:
        raise ExecutionError(f"{cv!r} was released when the run that made it ended")
    return (_REF, cv.future, cv.port)


def _unref(value: Any) -> Any:
    tp = type(value)
    if tp is tuple and len(value) == 3 and value[0] == _REF:
        return value[1][value[2]]
    if tp is dict:
        return {k: _unref(v) for k, v in value.items()}
    if tp is list:
        return [_unref(v) for v in value]
    if tp is tuple:
        return tuple(_unref(v) for v in value)
    return value
