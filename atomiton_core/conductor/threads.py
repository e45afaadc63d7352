"""A thread pool whose threads never hold the process at exit.

The standard library's ``ThreadPoolExecutor`` joins its worker threads when the interpreter
exits. A blocking node that ignores its cancellation (``ctx.cancelled``) after a timeout would
then keep a finished CLI run, or a server being stopped, alive until the node returns. No
well-kept library offers a pool of daemon threads behind the ``concurrent.futures.Executor``
interface, so this is one: a queue and up to ``max_workers`` daemon threads, started as work
arrives.

Besides ``submit`` (a ``concurrent.futures.Future``), :meth:`DaemonThreadPool.call` runs a
call for an asyncio event loop (:class:`ThreadCall`): its outcome goes straight to a future of
that loop, with no ``concurrent.futures.Future`` and no ``asyncio.wrap_future`` between them
(about 5 µs less a call, most of it on the loop's thread).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Protocol

__all__ = ["DaemonThreadPool", "ThreadCall"]


class _Work(Protocol):
    def run(self) -> None: ...

    def drop(self) -> None: ...


class _FutureWork:
    """What ``submit`` queues: a call and the ``concurrent.futures.Future`` of its outcome."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        future = self.future
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def drop(self) -> None:
        self.future.cancel()


class ThreadCall:
    """One call run in a pool thread for an event loop.

    ``future`` (a future of ``loop``) settles with what the call returned or raised.
    :meth:`done` is true once the thread is through with the call (or the call was cancelled
    before a thread took it): the caller knows when work it stopped waiting for has really
    ended. Everything but :meth:`run` happens on the loop's thread; the thread hands the
    outcome over with one ``call_soon_threadsafe``.
    """

    __slots__ = (
        "_abandoned",
        "_claim",
        "_ended",
        "_fn",
        "_loop",
        "_pool",
        "_through",
        "_waiters",
        "future",
    )

    def __init__(
        self,
        pool: DaemonThreadPool,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[[], Any],
    ) -> None:
        self._pool = pool
        self._loop = loop
        self._fn = fn
        self.future: asyncio.Future[Any] = loop.create_future()
        #: Whoever pops it first, the thread (to run the call) or a cancel, has the call.
        self._claim = [True]
        self._ended = False
        #: No thread runs the call any more (set by the thread, under the pool's lock).
        self._through = False
        self._abandoned = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def done(self) -> bool:
        """The thread is through with the call, or none will ever run it."""
        return self._ended

    def cancel(self) -> bool:
        """Keep a call no thread has started from running; False if one has."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        self._end(None, None, cancelled=True)
        return True

    def ended(self) -> asyncio.Future[None]:
        """A future of the loop, done when :meth:`done` becomes true."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self._ended:
            waiter.set_result(None)
        else:
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
        return waiter

    def abandon(self) -> None:
        """Nobody waits for the outcome any more, but a thread still runs the call: the pool
        may start another thread in its place until it ends."""
        pool = self._pool
        with pool._lock:  # against the thread ending it meanwhile
            if self._ended or self._through or self._abandoned:
                return
            self._abandoned = True
            pool._abandoned += 1

    def _no_thread(self) -> None:
        """No thread runs the call any more (it ran, or never will): it counts as abandoned
        work no longer, even when no loop is left to hear of it."""
        pool = self._pool
        with pool._lock:
            self._through = True
            if self._abandoned:
                pool._abandoned -= 1

    # -- in the pool thread ----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._claim.pop()
        except IndexError:  # cancelled while queued
            return
        result: Any = None
        error: BaseException | None = None
        try:
            result = self._fn()
        except BaseException as exc:
            error = exc
        self._no_thread()
        try:
            self._loop.call_soon_threadsafe(self._end, result, error)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            return

    def drop(self) -> None:
        """The pool shuts down before a thread took the call (any thread may ask)."""
        try:
            self._claim.pop()
        except IndexError:
            return
        self._no_thread()
        try:
            self._loop.call_soon_threadsafe(self._end, None, None, True)
        except RuntimeError:  # the loop is closed
            return

    # -- on the loop's thread ----------------------------------------------------------------
    def _end(self, result: Any, error: BaseException | None, cancelled: bool = False) -> None:
        self._ended = True
        future = self.future
        if not future.done():
            if cancelled:
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)


class DaemonThreadPool(Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "atomiton") -> None:
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: One entry per thread that finished its work and waits for more (a deque's
        #: append and pop are atomic: no lock, no condition).
        self._idle: deque[None] = deque()
        self._closed = False
        #: Threads busy with work nobody waits for any more (an attempt that timed out):
        #: the pool may start as many more, up to ``max_workers`` again, so abandoned work
        #: never starves the nodes that come after it.
        self._abandoned = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._put(_FutureWork(future, fn, args, kwargs))
        return future

    def call(self, loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> ThreadCall:
        """Run ``fn()`` in a pool thread; its outcome settles the call's future on ``loop``.
        Called on ``loop``'s thread."""
        work = ThreadCall(self, loop, fn)
        self._put(work)
        return work

    def _put(self, work: _Work) -> None:
        with self._lock:  # queued before shutdown's sentinels, or refused
            if self._closed:
                raise RuntimeError("cannot submit work to a closed thread pool")
            self._work.put(work)
        try:
            self._idle.pop()  # a waiting thread takes it
        except IndexError:
            self._grow()

    def _grow(self) -> None:
        with self._lock:
            limit = self.max_workers + min(self._abandoned, self.max_workers)
            if self._closed or len(self._threads) >= limit:
                return
            thread = threading.Thread(
                target=self._serve,
                name=f"{self._prefix}-{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self) -> None:
        get = self._work.get
        idle = self._idle.append
        while True:
            item = get()
            if item is None:
                return
            item.run()
            del item
            idle(None)

    def abandon(self, future: Future[Any] | ThreadCall) -> None:
        """Nobody waits for ``future`` any more, but its thread still runs: let the pool
        start another thread in its place until it ends."""
        if isinstance(future, ThreadCall):
            future.abandon()
            return
        if future.done():
            return
        self._abandoned_more(1)
        future.add_done_callback(self._forget)

    def _abandoned_more(self, delta: int) -> None:
        with self._lock:
            self._abandoned += delta

    def _forget(self, _future: Future[Any]) -> None:
        self._abandoned_more(-1)

    def _drain(self) -> None:
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.drop()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            self._drain()
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
