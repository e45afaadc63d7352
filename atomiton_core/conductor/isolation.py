"""Isolated nodes: a warm pool of worker processes, each killed with its process group when
its attempt times out or is cancelled, and held to the attempt's CPU, memory and process
limits.

A node with ``isolation: process`` (its flow's setting, or its type's default) runs its body
in a worker of the conductor's :class:`ProcessPool` instead of a thread. Its function,
context and parameters are pickled (cloudpickle, so a node type defined in a script or a test
travels too); its inputs and outputs cross through :mod:`atomiton_core.codec`, the form a run
log keeps them in, so a value that could not be recorded cannot cross either and is refused
naming the node and port. The pool has ``size`` workers at most (the conductor's
``process_workers``), started on first use and kept warm; isolated nodes queue for a worker
when all are busy, and obey the run's concurrency like any other node.

What ends an attempt, and how it is reported:

- its ``timeout``, a cancel or fail-fast: the conductor ends the attempt as for any node and
  the worker's whole process group is killed (``SIGKILL``) and replaced: a retry never starts
  while the earlier attempt runs;
- ``cpuLimit`` (seconds): the pool watches the worker's CPU time and kills it beyond the
  limit: ``RESOURCE_LIMIT`` (``limit: cpuLimit``);
- ``memoryLimit`` (MB): an allocation beyond it fails in the worker: ``RESOURCE_LIMIT``
  (``limit: memoryLimit``); ``processLimit``: see :mod:`.worker`;
- the worker dying (a segfault, ``os._exit``, the OOM killer): ``WORKER_CRASHED`` naming the
  signal or exit status. Only that node fails; the conductor and the other nodes go on.

Why our own pool: ``multiprocessing.Pool`` and ``ProcessPoolExecutor`` cannot end one task
(a timed-out task keeps its worker busy, and a worker that dies breaks the whole executor);
loky and pebble replace a crashed or timed-out worker, but neither kills a worker's process
group, applies limits per task, nor reports per-task CPU time and peak memory. This pool
builds on what ``multiprocessing`` does well: starting a clean process (through its fork
server where there is one: a fork of a small, single-threaded server, never of the
conductor's threaded process) and framed pipes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import uuid
import weakref
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from atomiton_core import codec, wire
from atomiton_core.conductor import worker as worker_module
from atomiton_core.conductor.remote import RemoteContext
from atomiton_core.conductor.threads import DaemonThreadPool
from atomiton_core.errors import (
    AtomitonError,
    ConfigurationError,
    ResourceLimitExceeded,
    WorkerCrashed,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext

    from atomiton_core.nodes.context import NodeContext

__all__ = ["IsolatedCall", "ProcessPool"]

#: How often a busy worker's CPU time and memory are looked at when it has limits.
POLL_S = 0.05
#: How long a new worker may take to say it is ready.
START_TIMEOUT_S = 60.0


def _mp_context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # what every worker needs, imported once in the fork server rather than per worker
        ctx.set_forkserver_preload(
            ["atomiton_core.conductor.worker", "atomiton_core.codec", "atomiton_core.wire"]
        )
        return ctx
    return multiprocessing.get_context("spawn")


class _Worker:
    """One worker process and the conductor's end of its pipe."""

    def __init__(self, mp: BaseContext) -> None:
        parent, child = mp.Pipe(duplex=True)
        self.process = mp.Process(  # type: ignore[attr-defined]
            target=worker_module.main,
            args=(child, os.getpid()),
            daemon=True,
            name="atomiton-worker",
        )
        self.process.start()
        child.close()
        self.conn: Connection = parent
        self.pid: int = self.process.pid
        self.dead = False
        #: The pipe is closed once, by whichever of the pool's threads and ``close`` reaps
        #: first (two closes of one descriptor: EBADF, or another file's descriptor closed).
        self._reap_lock = threading.Lock()
        self._reaped = False
        #: Keys of the node functions this worker holds (sent once per worker).
        self.known: set[str] = set()
        if not parent.poll(START_TIMEOUT_S):
            self.kill()
            raise WorkerCrashed(
                f"a worker process did not start within {START_TIMEOUT_S:g} s",
                hint="the machine may be overloaded",
            )
        try:
            header = _recv(parent)[0]
        except (EOFError, OSError) as exc:
            self.kill()
            raise WorkerCrashed(
                f"a worker process died while starting (exit status {self.process.exitcode})",
                hint="a script that runs flows needs `if __name__ == '__main__':` around "
                "its top-level code, since workers import it",
            ) from exc
        if header.get("op") != "ready":  # pragma: no cover - a protocol bug
            self.kill()
            raise WorkerCrashed(f"a worker process said {header!r} instead of ready")
        # a fork server's children have its environment from when it started: give this
        # worker the conductor's as it is now
        parent.send_bytes(
            json.dumps({"op": "env", "environ": dict(os.environ), "frames": 0}).encode()
        )

    def kill(self) -> None:
        """Kill the worker and everything in its process group; safe from any thread."""
        if self.dead:
            return
        self.dead = True
        for _ in range(2):  # again, for a process forked while the first signal went out
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            except OSError:  # pragma: no cover - no process groups on this platform
                break
        with contextlib.suppress(OSError, AttributeError):  # already reaped
            self.process.kill()

    def reap(self) -> None:
        self.process.join(timeout=5)
        with self._reap_lock:
            if self._reaped:
                return
            self._reaped = True
        self.conn.close()

    def usage(self) -> tuple[float, int] | None:
        """(CPU seconds, resident bytes) of the worker process now; None once it is gone."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            with proc.oneshot():
                t = proc.cpu_times()
                return t.user + t.system, proc.memory_info().rss
        except psutil.Error:
            return None


def _recv(conn: Connection) -> tuple[dict[str, Any], list[bytes]]:
    header = json.loads(conn.recv_bytes())
    frames = [conn.recv_bytes() for _ in range(header.get("frames", 0))]
    return header, frames


class IsolatedCall(concurrent.futures.Future[Any]):
    """The future of one isolated attempt; :meth:`kill` ends it at once, from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self.killed = False
        #: CPU milliseconds and peak resident bytes of the attempt, once it has ended.
        self.cpu_ms: float | None = None
        self.peak_memory: int | None = None

    def kill(self) -> None:
        with self._lock:
            self.killed = True
            worker = self._worker
        if worker is not None:
            worker.kill()

    def _attach(self, worker: _Worker | None) -> bool:
        """Bind the worker running this call; False if the call was killed already."""
        with self._lock:
            self._worker = worker
            return not self.killed


class _Killed(Exception):
    """The attempt was ended by the conductor (its timeout, a cancel): nobody waits for it."""


class ProcessPool:
    """Up to ``size`` warm worker processes for isolated nodes (see the module notes)."""

    def __init__(self, size: int | None = None) -> None:
        if size is not None and size < 1:
            raise ConfigurationError(
                f"process_workers={size!r}: a process pool needs at least one worker"
            )
        if not hasattr(os, "killpg"):  # pragma: no cover - Windows
            raise ConfigurationError(
                "isolated nodes need process groups, which this system does not have",
                hint="run isolated nodes on Linux or macOS, or set isolation: none",
            )
        self.size = size or os.cpu_count() or 1
        self._mp: BaseContext | None = None
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._threads: DaemonThreadPool | None = None
        self._closed = False
        self._fns: weakref.WeakKeyDictionary[Callable[..., Any], tuple[str, bytes]] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"ProcessPool(size={self.size})"

    @property
    def pids(self) -> list[int]:
        """The worker processes alive now."""
        with self._lock:
            return [w.pid for w in self._live if not w.dead]

    def warm(self, n: int | None = None) -> None:
        """Start workers now (``n``, default all) rather than on first use."""
        want = min(self.size, n or self.size)
        with self._lock:
            missing = want - len(self._live)
        for _ in range(max(0, missing)):
            worker = self._start()
            with self._lock:
                self._idle.append(worker)

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> IsolatedCall:
        """Run ``fn(ctx, params, **kwargs)`` in a worker; the call's future settles with the
        outputs, or the node's error (``RESOURCE_LIMIT``, ``WORKER_CRASHED``...)."""
        if self._closed:
            raise ConfigurationError("the conductor's process pool is closed")
        call = IsolatedCall()
        threads = self._threads
        if threads is None:
            threads = self._threads = DaemonThreadPool(self.size, "atomiton-isolated")
        threads.submit(self._serve, call, fn, RemoteContext.of(ctx), ctx, params, kwargs)
        return call

    def close(self) -> None:
        """Kill every worker (and what it started); the pool takes no more work."""
        self._closed = True
        with self._lock:
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
        for w in workers:
            w.kill()
        for w in workers:
            w.reap()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    # -- in a pool thread ------------------------------------------------------------------
    def _start(self) -> _Worker:
        if self._mp is None:
            self._mp = _mp_context()
        worker = _Worker(self._mp)
        with self._lock:
            self._live.add(worker)
        if self._closed:
            self._discard(worker)
            raise ConfigurationError("the conductor's process pool is closed")
        return worker

    def _checkout(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if not worker.dead and worker.process.is_alive():
                    return worker
                self._live.discard(worker)
        return self._start()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:  # first: a close() from now on does not reap it too
            self._live.discard(worker)
        worker.kill()
        worker.reap()

    def _serve(
        self,
        call: IsolatedCall,
        fn: Callable[..., Any],
        remote: Any,
        ctx: NodeContext,
        params: BaseModel,
        kwargs: dict[str, Any],
    ) -> None:
        if not call.set_running_or_notify_cancel():
            return
        if call.killed:
            call.set_exception(_Killed())
            return
        try:
            frames = self._task_frames(fn, remote, params, kwargs, ctx.node_id)
            worker = self._checkout()
        except AtomitonError as exc:
            call.set_exception(exc)
            return
        except Exception as exc:
            call.set_exception(
                ConfigurationError(
                    f"node {ctx.node_id!r} ({ctx.node_type}) cannot be sent to a worker "
                    f"process: {type(exc).__name__}: {exc}",
                    hint="an isolated node's function, parameters and context must pickle; "
                    "define it at module level",
                )
            )
            return
        keep = False
        try:
            if not call._attach(worker):
                raise _Killed()
            keep = self._exchange(call, worker, frames, ctx)
        except (_Killed, AtomitonError) as exc:
            if not call.done():
                call.set_exception(exc)
        except BaseException as exc:  # a garbled answer: the worker goes, the node fails
            if not call.done():
                call.set_exception(
                    WorkerCrashed(
                        f"{ctx.node_type}'s worker process answered what cannot be read: "
                        f"{type(exc).__name__}: {exc}",
                        node_id=ctx.node_id,
                        hint="only this node failed and its worker was replaced",
                    )
                )
        finally:
            call._attach(None)
            if keep and not self._closed:
                with self._lock:
                    self._idle.append(worker)
            else:
                self._discard(worker)
        if not keep and not self._closed:
            self._replace()

    def _replace(self) -> None:
        """Start a worker in place of a discarded one, so the next node finds it warm."""
        try:
            worker = self._start()
        except AtomitonError:
            return
        with self._lock:
            if len(self._live) > self.size:
                self._live.discard(worker)
                surplus = True
            else:
                self._idle.append(worker)
                surplus = False
        if surplus:
            self._discard(worker)

    def _fn_code(self, fn: Callable[..., Any]) -> tuple[str, bytes]:
        """The node function pickled once (a key, the bytes); workers keep it by key."""
        import cloudpickle

        with self._lock:
            known = self._fns.get(fn)
        if known is not None:
            return known
        _by_value_unless_importable(cloudpickle, getattr(fn, "__module__", None))
        code = (uuid.uuid4().hex, cloudpickle.dumps(fn))
        with self._lock:
            self._fns[fn] = code
        return code

    def _task_frames(
        self,
        fn: Callable[..., Any],
        remote: Any,
        params: BaseModel,
        kwargs: dict[str, Any],
        node_id: str,
    ) -> tuple[dict[str, Any], bytes, list[bytes]]:
        import cloudpickle

        key, code = self._fn_code(fn)
        _by_value_unless_importable(cloudpickle, type(params).__module__)
        settings = remote.settings
        header = {
            "op": "run",
            "fn": key,
            "nodeId": node_id,
            "nodeType": remote.node_type,
            "limits": {"memory": settings.memory_limit, "processes": settings.process_limit},
        }
        data = codec.to_frames(codec.encode(kwargs, where="inputs", node_id=node_id))
        return header, code, [cloudpickle.dumps((remote, params)), *data]

    def _exchange(
        self,
        call: IsolatedCall,
        worker: _Worker,
        task: tuple[dict[str, Any], bytes, list[bytes]],
        ctx: NodeContext,
    ) -> bool:
        """Send the task, relay progress, settle the call; True if the worker may serve on."""
        header, code, rest = task
        if header["fn"] in worker.known:
            code = b""  # the worker has the function from an earlier task
        frames = [code, *rest]
        settings = ctx.settings
        cpu_limit = settings.cpu_limit
        memory_limit = settings.memory_limit
        watch = cpu_limit is not None or memory_limit is not None
        conn = worker.conn
        start = worker.usage() if watch else None
        peak = 0
        try:
            conn.send_bytes(json.dumps({**header, "frames": len(frames)}).encode())
            for frame in frames:
                conn.send_bytes(frame)
            worker.known.add(header["fn"])
            while True:
                if not wait([conn], POLL_S if watch else None):
                    now = worker.usage()
                    if now is None or start is None:
                        continue
                    used = now[0] - start[0]
                    peak = max(peak, now[1])
                    if cpu_limit is not None and used > cpu_limit:
                        worker.kill()
                        call.cpu_ms, call.peak_memory = used * 1000, peak or None
                        ctx_stats(ctx, call)
                        raise ResourceLimitExceeded(
                            f"{ctx.node_type} used more than its cpuLimit of {cpu_limit:g} s "
                            "of CPU",
                            node_id=ctx.node_id,
                            hint="raise 'cpuLimit' (seconds), or make the node do less",
                            limit="cpuLimit",
                        )
                    continue
                reply, out = _recv(conn)
                op = reply.get("op")
                if op == "progress":
                    ctx.progress(reply.get("fraction", 0.0), reply.get("message"))
                    continue
                if op == "secret":  # looked up here, so the run knows to mask it
                    answer: dict[str, Any] = {"op": "secretValue"}
                    try:
                        answer["value"] = ctx._secret(str(reply.get("name")))
                    except AtomitonError as exc:
                        answer.update(error=exc.message, hint=exc.hint)
                    conn.send_bytes(json.dumps({**answer, "frames": 0}).encode())
                    continue
                call.cpu_ms = reply.get("cpuMs")
                call.peak_memory = reply.get("peakMemory") or (peak or None)
                ctx_stats(ctx, call)
                if op == "done":
                    call.set_result(codec.decode(codec.from_frames(out)))
                else:
                    err = wire.load_error(reply.get("error")) or WorkerCrashed(
                        f"worker answered {reply!r}"
                    )
                    err.context.update(reply.get("context") or {})
                    call.set_exception(err)
                return not reply.get("spawned", False)
        except (EOFError, OSError) as exc:
            if call.killed or worker.dead:
                raise _Killed() from exc
            worker.process.join(timeout=5)
            raise _crashed(ctx, worker.process.exitcode, memory_limit) from None


_IMPORTABLE: dict[str, bool] = {}


def _by_value_unless_importable(cloudpickle: Any, name: str | None) -> None:
    """Pickle a module's functions and classes by value when a worker could not import it
    by name (a test module imported by path, a module loaded from a file)."""
    if name is None or name in _IMPORTABLE or name == "__main__":
        return
    from importlib.machinery import PathFinder

    module = sys.modules.get(name)
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        found = True
    else:  # what a fresh process, with the same sys.path, would find
        try:
            found = PathFinder.find_spec(top, sys.path) is not None
        except (ImportError, ValueError):
            found = False
    _IMPORTABLE[name] = found
    if not found and module is not None:
        cloudpickle.register_pickle_by_value(module)


def ctx_stats(ctx: NodeContext, call: IsolatedCall) -> None:
    """Add the attempt's CPU time and peak memory to the node's context (for its result)."""
    if call.cpu_ms is not None:
        ctx.cpu_ms = (ctx.cpu_ms or 0.0) + call.cpu_ms
    if call.peak_memory is not None:
        ctx.peak_memory = max(ctx.peak_memory or 0, call.peak_memory)


def _crashed(ctx: NodeContext, exitcode: int | None, memory_limit: float | None) -> WorkerCrashed:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"died of {name} (signal {-exitcode})"
    else:
        how = f"exited with status {exitcode}"
    hint = "only this node failed and its worker was replaced"
    if exitcode == -signal.SIGKILL and memory_limit is None:
        hint += "; SIGKILL often means the system ran out of memory: set memoryLimit"
    elif exitcode == -signal.SIGSEGV:
        hint += "; a segfault is a bug in native code the node calls"
    elif exitcode is not None and exitcode > 0:
        hint += "; the node ended its process (os._exit?) instead of returning or raising"
    return WorkerCrashed(
        f"{ctx.node_type}'s worker process {how}",
        node_id=ctx.node_id,
        hint=hint,
        exit_code=exitcode,
    )
