"""A thread pool whose threads never hold the process at exit.

The standard library's ``ThreadPoolExecutor`` joins its worker threads when the interpreter
exits. A blocking node that ignores its cancellation (``ctx.cancelled``) after a timeout would
then keep a finished CLI run, or a server being stopped, alive until the node returns. No
well-kept library offers a pool of daemon threads behind the ``concurrent.futures.Executor``
interface, so this is one: a queue and up to ``max_workers`` daemon threads, started as work
arrives.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["DaemonThreadPool"]

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "atomiton") -> None:
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: One release per thread that finished its work and waits for more.
        self._idle = threading.Semaphore(0)
        self._closed = False
        #: Threads busy with work nobody waits for any more (an attempt that timed out):
        #: the pool may start as many more, up to ``max_workers`` again, so abandoned work
        #: never starves the nodes that come after it.
        self._abandoned = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit work to a closed thread pool")
            self._work.put((future, fn, args, kwargs))
            limit = self.max_workers + min(self._abandoned, self.max_workers)
            if not self._idle.acquire(timeout=0) and len(self._threads) < limit:
                thread = threading.Thread(
                    target=self._serve,
                    name=f"{self._prefix}-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, fn, args, kwargs
            self._idle.release()

    def abandon(self, future: Future[Any]) -> None:
        """Nobody waits for ``future`` any more, but its thread still runs: let the pool
        start another thread in its place until it ends."""
        if future.done():
            return
        with self._lock:
            self._abandoned += 1
        future.add_done_callback(self._forget)

    def _forget(self, _future: Future[Any]) -> None:
        with self._lock:
            self._abandoned -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
