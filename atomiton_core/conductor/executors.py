"""Where blocking node work runs: threads of this process, or a Dask cluster.

The engine itself always runs in the conductor's event loop (scheduling, timeouts, retries,
signals); an executor only decides where the body of a *blocking sync* node runs. Async nodes
and containers stay in the loop; cheap sync nodes (``blocking=False``) run inline.

- :class:`LocalExecutor` (the default): a thread pool.
- :class:`DaskExecutor`: each blocking node call is a task on a ``distributed`` cluster — a
  ``LocalCluster`` it starts itself, or the scheduler at ``address``. The node receives a
  :class:`RemoteContext` (ids, variables, config, settings, templates, paths, progress —
  relayed to the conductor as worker events); a timed-out or cancelled task is cancelled on
  the cluster but cannot be interrupted once a worker has started it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from atomiton_core.conductor.threads import DaemonThreadPool, ThreadCall
from atomiton_core.errors import ConfigurationError, ExecutionError
from atomiton_core.files import Location, resolve_path
from atomiton_core.nodes import expressions
from atomiton_core.secrets import GivenSecrets, referenced_secrets
from atomiton_core.security import Security

if TYPE_CHECKING:
    from atomiton_core.flow.settings import ExecutionSettings
    from atomiton_core.nodes.context import NodeContext

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "RemoteContext", "create_executor"]

#: The worker event topic node progress travels on.
PROGRESS_TOPIC = "atomiton-progress"


class Executor(Protocol):
    """Runs a blocking node's call. ``submit`` returns an asyncio future, or, for work in a
    thread of this process, its ``concurrent.futures.Future``: the conductor then knows when
    a timed-out attempt's thread has really ended, and starts no retry before it has."""

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any] | concurrent.futures.Future[Any]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Blocking sync nodes in a pool of daemon threads, created on first use: a node that
    ignores its cancellation never keeps the process from exiting."""

    def __init__(self, max_workers: int = 64) -> None:
        self.max_workers = max_workers
        self._pool: DaemonThreadPool | None = None

    def __repr__(self) -> str:
        return f"LocalExecutor(max_workers={self.max_workers})"

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> concurrent.futures.Future[Any]:
        return self._threads().submit(_timed_call, fn, ctx, params, kwargs)

    def call(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> ThreadCall:
        """What the conductor uses instead of ``submit``: the same call in a pool thread,
        its outcome handed straight to a future of ``loop`` (see :class:`ThreadCall`)."""
        return self._threads().call(loop, partial(_timed_call, fn, ctx, params, kwargs))

    def _threads(self) -> DaemonThreadPool:
        """The pool, made when a node first needs a thread."""
        pool = self._pool
        if pool is None:
            pool = self._pool = DaemonThreadPool(self.max_workers, thread_name_prefix="atomiton")
        return pool

    def abandon(self, work: concurrent.futures.Future[Any] | ThreadCall) -> None:
        """An attempt ended while its thread runs on: another thread may take its place."""
        if self._pool is not None:
            self._pool.abandon(work)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _timed_call(
    fn: Callable[..., Any], ctx: NodeContext, params: BaseModel, kwargs: dict[str, Any]
) -> Any:
    """The node's call in a pool thread, adding the thread's CPU time to the context."""
    t0 = time.thread_time()
    try:
        return fn(ctx, params, **kwargs)
    except StopIteration as exc:  # an asyncio future cannot hold it
        raise ExecutionError.from_exception(
            exc, node_id=ctx.node_id, node_type=ctx.node_type
        ) from exc
    except Exception:
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: this node's failure
        raise ExecutionError.from_exception(
            exc, node_id=ctx.node_id, node_type=ctx.node_type
        ) from exc
    finally:
        ctx.cpu_ms = (ctx.cpu_ms or 0.0) + (time.thread_time() - t0) * 1000


class RemoteContext:
    """What a node running on a Dask worker gets instead of the full NodeContext."""

    def __init__(
        self,
        *,
        node_id: str,
        node_type: str,
        path: str,
        execution_id: str,
        flow_id: str,
        attempt: int,
        variables: Mapping[str, Any],
        config: Mapping[str, Any],
        security: Security,
        settings: ExecutionSettings,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.path = path
        self.execution_id = execution_id
        self.flow_id = flow_id
        self.attempt = attempt
        self.variables = dict(variables)
        self.config = dict(config)
        self.security = security
        self.settings = settings
        self.cancelled = False
        #: Set by the executor: where ``progress`` reports go (a worker event topic).
        self.progress_token: str | None = None
        #: True in an isolated node's worker process.
        self.isolated = False
        #: ``secrets`` for templates: in an isolated node's worker each is asked of the
        #: conductor (which masks it in what the run shows); on a Dask worker, those the
        #: node's parameters name, sent with it (``GivenSecrets``).
        self.secrets: Any = None
        #: Set in an isolated node's worker process: sends ``progress`` reports home.
        self._reporter: Callable[[float, str | None], None] | None = None

    @classmethod
    def of(cls, ctx: NodeContext) -> RemoteContext:
        return cls(
            node_id=ctx.node_id,
            node_type=ctx.node_type,
            path=ctx.path,
            execution_id=ctx.execution_id,
            flow_id=ctx.flow_id,
            attempt=ctx.attempt,
            variables=ctx.variables,
            config={k: v for k, v in ctx.config.items() if _picklable(v)},
            security=ctx.security,
            settings=ctx.settings,
        )

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(
            logging.getLogger(f"atomiton.nodes.{self.node_type}"),
            {"node_id": self.node_id, "execution_id": self.execution_id},
        )

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Relayed to the conductor's ``node_progress`` signal (through the worker's pipe or
        a Dask worker event)."""
        if self._reporter is not None:
            self._reporter(float(fraction), message)
            return
        if self.progress_token is None:
            return
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):  # not on a worker (e.g. called in a test directly)
            return
        worker.log_event(
            PROGRESS_TOPIC,
            {"token": self.progress_token, "fraction": float(fraction), "message": message},
        )

    def _scope(self, names: Mapping[str, Any]) -> dict[str, Any]:
        return expressions.node_scope(self.variables, self.secrets, names)

    def render(self, value: Any, /, **names: Any) -> Any:
        return expressions.render(value, self._scope(names))

    def evaluate(self, expression: str, /, **names: Any) -> Any:
        return expressions.evaluate(expression, self._scope(names))

    def resolve_path(self, url: str, what: str = "path") -> Location:
        roots = self.security.allowed_roots
        return resolve_path(url, roots=roots, what=what, node_id=self.node_id)


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _call_remote(
    fn: Callable[..., Any], ctx: RemoteContext, params: BaseModel, kwargs: dict[str, Any]
) -> Any:
    """Runs on the worker."""
    return fn(ctx, params, **kwargs)


class DaskExecutor:
    """Blocking sync nodes as tasks on a Dask ``distributed`` cluster.

    A timed-out or cancelled task is cancelled on the cluster; the conductor cannot watch a
    worker's thread end before it retries.

    ``client``: an existing ``distributed.Client``; or ``address``: a scheduler to connect
    to; or neither: start a ``LocalCluster(**cluster_options)`` (closed with the executor),
    on free ports unless the options name them: a busy 8787 must not stop a run.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        address: str | None = None,
        **cluster_options: Any,
    ) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise ConfigurationError(
                "the Dask executor needs dask.distributed",
                hint='pip install "atomiton-core[dask]"',
            ) from exc
        self._owned: list[Any] = []
        if client is None:
            if address is None:
                cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
                    **{"scheduler_port": 0, "dashboard_address": ":0", **cluster_options}
                )
                self._owned.append(cluster)
                address = cluster.scheduler_address
            client = distributed.Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
            self._owned.insert(0, client)
        self.client = client
        #: progress token -> the node's local context, while its task runs
        self._reporting: dict[str, NodeContext] = {}
        client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)

    def _on_progress(self, event: Any) -> None:
        """Runs in the client's thread; ``ctx.progress`` hands the report to the loop."""
        _, message = event
        ctx = self._reporting.get(message.get("token"))
        if ctx is not None:
            ctx.progress(message["fraction"], message.get("message"))

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client.scheduler.address!r})"

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> asyncio.Future[Any]:
        remote_ctx = RemoteContext.of(ctx)
        remote_ctx.secrets = GivenSecrets.resolve(ctx._secret, referenced_secrets(params))
        token = remote_ctx.progress_token = uuid.uuid4().hex
        self._reporting[token] = ctx
        remote = self.client.submit(_call_remote, fn, remote_ctx, params, kwargs, pure=False)
        waiter: asyncio.Future[Any] = loop.create_future()

        def settle(done: Any) -> None:
            if waiter.done():
                return
            if done.status == "finished":
                waiter.set_result(done.result())
            elif done.status == "cancelled":
                waiter.cancel()
            else:
                waiter.set_exception(done.exception())

        def relay(done: Any) -> None:  # called in the client's thread
            loop.call_soon_threadsafe(settle, done)

        def cancel_remote(w: asyncio.Future[Any]) -> None:
            self._reporting.pop(token, None)
            if w.cancelled():
                remote.cancel()

        waiter.add_done_callback(cancel_remote)
        remote.add_done_callback(relay)
        return waiter

    def close(self) -> None:
        for owned in self._owned:
            owned.close()
        self._owned.clear()


def create_executor(spec: str | Executor | None, *, max_workers: int = 64) -> Executor:
    """``None``/"local": threads; "dask": a new LocalCluster; "dask://host:port" or
    "tcp://host:port": that scheduler; or an executor object as is."""
    if spec is None or spec == "local":
        return LocalExecutor(max_workers)
    if isinstance(spec, str):
        if spec == "dask":
            return DaskExecutor(n_workers=os.cpu_count() or 1, threads_per_worker=1)
        if spec.startswith("dask://"):
            return DaskExecutor(address="tcp://" + spec.removeprefix("dask://"))
        if spec.startswith(("tcp://", "tls://")):
            return DaskExecutor(address=spec)
        raise ConfigurationError(
            f"unknown executor {spec!r}",
            hint="use 'local', 'dask', or a scheduler address such as tcp://127.0.0.1:8786",
        )
    return spec
