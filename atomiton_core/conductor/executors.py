"""Where blocking node work runs: threads of this process, or a Dask cluster.

The engine itself always runs in the conductor's event loop (scheduling, timeouts, retries,
signals); an executor only decides where the body of a *blocking sync* node runs. Async nodes
and containers stay in the loop; cheap sync nodes (``blocking=False``) run inline.

- :class:`LocalExecutor` (the default): a thread pool.
- :class:`~atomiton_core.conductor.dask_executor.DaskExecutor`: the nodes placed on a Dask
  ``distributed`` cluster as tasks, their data kept there (see that module). A node there
  receives a :class:`RemoteContext` (ids, variables, config, settings, templates, paths,
  progress — relayed to the conductor as worker events).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from atomiton_core.conductor.dask_executor import DaskExecutor
from atomiton_core.conductor.remote import RemoteContext
from atomiton_core.conductor.threads import DaemonThreadPool, ThreadCall
from atomiton_core.errors import ConfigurationError, ExecutionError

if TYPE_CHECKING:
    from atomiton_core.nodes.context import NodeContext

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "RemoteContext", "create_executor"]


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


def create_executor(
    spec: str | Executor | None,
    *,
    max_workers: int = 64,
    options: Mapping[str, Any] | None = None,
) -> Executor:
    """``None``/"local": threads; "dask": a new LocalCluster; "dask://host:port" or
    "tcp://host:port": that scheduler; or an executor object as is.

    A Dask spec may carry options as a query (``dask?workers=4&threads=2&memory=2GiB&
    adaptive=1-8&timeout=30``), and ``options`` gives the same by name (``workers``,
    ``threads``, ``memory``, ``adaptive`` as ``(min, max)`` or ``"min-max"``, ``timeout``:
    seconds to wait for a first worker, ``shared_paths``); ``options`` win."""
    if spec is None or spec == "local":
        if options:
            raise ConfigurationError(
                f"executor options {sorted(options)} are for a Dask executor",
                hint="give executor='dask' (or a scheduler address) with them",
            )
        return LocalExecutor(max_workers)
    if isinstance(spec, str):
        base, _, query = spec.partition("?")
        if base == "dask" or base.startswith(("dask://", "tcp://", "tls://")):
            given = _dask_options(spec, query, options or {})
            if base == "dask":
                return DaskExecutor(**given)
            address = (
                "tcp://" + base.removeprefix("dask://") if base.startswith("dask://") else base
            )
            local_only = {"n_workers", "threads_per_worker", "memory_limit", "adaptive"}
            if local_only & set(given):
                raise ConfigurationError(
                    f"executor {spec!r}: workers, threads, memory and adaptive are for a "
                    "cluster started here (executor 'dask'); a scheduler's workers are its own",
                    hint="start the workers with those options (dask worker --nthreads ...)",
                )
            return DaskExecutor(address=address, **given)
        raise ConfigurationError(
            f"unknown executor {spec!r}",
            hint="use 'local', 'dask', or a scheduler address such as tcp://127.0.0.1:8786",
        )
    return spec


#: Executor option names, as a spec's query or ``options`` give them -> DaskExecutor's.
_DASK_OPTIONS = {
    "workers": "n_workers",
    "threads": "threads_per_worker",
    "memory": "memory_limit",
    "adaptive": "adaptive",
    "timeout": "worker_timeout",
    "shared_paths": "shared_paths",
}


def _dask_options(spec: str, query: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The DaskExecutor keyword arguments a spec's query and ``options`` give, checked."""
    from urllib.parse import parse_qsl

    raw: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    raw.update(options)
    given: dict[str, Any] = {}
    for name, value in raw.items():
        target = _DASK_OPTIONS.get(name)
        if target is None:
            raise ConfigurationError(
                f"executor {spec!r}: unknown option {name!r}",
                hint="options: " + ", ".join(_DASK_OPTIONS),
            )
        try:
            if target in ("n_workers", "threads_per_worker"):
                number = int(value)
                if number < 1:
                    raise ValueError
                given[target] = number
            elif target == "worker_timeout":
                seconds = float(value)
                if seconds <= 0:
                    raise ValueError
                given[target] = seconds
            elif target == "adaptive":
                low, high = (
                    (int(p) for p in str(value).split("-", 1))
                    if isinstance(value, str)
                    else (int(p) for p in value)
                )
                if not 0 <= low <= high or high < 1:
                    raise ValueError
                given[target] = (low, high)
            elif target == "shared_paths":
                given[target] = (
                    tuple(str(value).split(",")) if isinstance(value, str) else tuple(value)
                )
            else:
                given[target] = value
        except (TypeError, ValueError):
            expected = {
                "n_workers": "a whole number of at least 1",
                "threads_per_worker": "a whole number of at least 1",
                "worker_timeout": "seconds, over 0",
                "adaptive": "MIN-MAX workers, such as 1-8",
            }.get(target, "a value")
            raise ConfigurationError(
                f"executor {spec!r}: option {name!r} is {value!r}, not {expected}",
            ) from None
    return given
