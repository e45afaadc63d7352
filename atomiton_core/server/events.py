"""Execution records and their events: one bounded history per execution, read by cursor.

The :class:`EventHub` listens to one conductor's signals (``sender=conductor``) and keeps, per
execution, its status, its final result and the JSON text of every event it emitted, so a
client that connects late still replays the whole story. A WebSocket client is a cursor into
that one history (:class:`ExecutionSubscriber`): no copy of the events per client, so a client
that reads as fast as it can gets every event however far a burst of the engine runs ahead
of its socket. Memory stays bounded everywhere:

- an execution keeps at most ``max_events`` events; older ones are dropped and a replay starts
  with one ``events.dropped`` marker saying how many;
- all the histories and results the hub holds together stay under ``max_history_bytes``:
  past it, finished executions are forgotten, least recently finished first (their runs stay
  in storage), then the oldest events of a running one are dropped;
- at most ``max_executions`` finished executions are kept;
- a client is dropped (its socket closes with :data:`CLOSE_TOO_SLOW`) when its socket has
  stopped taking data while it is more than ``subscriber_queue`` events behind, or when the
  events it has yet to read leave the history.

Events are encoded once, when they happen, by pydantic-core straight to JSON (about 3 µs an
event). The final event carries the execution's result; when its text would pass
``max_message_bytes`` (1 MiB by default, the message limit of common WebSocket clients) it
carries ``resultUrl`` instead, where ``GET`` answers the whole result. A result of more than
:data:`INLINE_RESULT_NODES` nodes is encoded in a worker thread (10,000 nodes: ~50 ms the loop
would otherwise not answer anyone).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from atomiton_core import signals, wire
from atomiton_core.conductor.conductor import Conductor, Execution
from atomiton_core.errors import ExecutionCancelled
from atomiton_core.results import ExecutionResult

__all__ = [
    "CLOSE_TOO_SLOW",
    "END",
    "INLINE_RESULT_NODES",
    "OVERFLOW",
    "EventHub",
    "ExecutionRecord",
    "ExecutionSubscriber",
    "StreamSubscriber",
    "Subscriber",
]

#: A final result of more nodes than this is encoded in a worker thread.
INLINE_RESULT_NODES = 500

#: WebSocket close code for a subscriber dropped because it read too slowly ("try again later":
#: reconnecting replays the buffered history).
CLOSE_TOO_SLOW = 1013

FINAL_TYPES = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})

_EXECUTION_SIGNALS = signals.EXECUTION_SIGNALS + signals.NODE_SIGNALS
_STORAGE_SIGNALS = (signals.flow_saved, signals.flow_deleted)

_NODE_EVENT = TypeAdapter(signals.NodeEvent)
_EXECUTION_EVENT = TypeAdapter(signals.ExecutionEvent)
_FLOW_EVENT = TypeAdapter(signals.FlowEvent)
_RESULT = TypeAdapter(ExecutionResult)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: The stream is complete: the execution's final event was sent.
END = _Marker("END")
#: The subscriber fell too far behind: close it with CLOSE_TOO_SLOW.
OVERFLOW = _Marker("OVERFLOW")

Item = str | _Marker

_log = logging.getLogger("atomiton.server")


def _encode(event: Any) -> bytes:
    """An event's JSON (``wire.dump(event, exclude_none=True)``, as bytes, in one pass)."""
    adapter: TypeAdapter[Any]
    if isinstance(event, signals.NodeEvent):
        adapter = _NODE_EVENT
    elif isinstance(event, signals.ExecutionEvent):
        adapter = _EXECUTION_EVENT
    elif isinstance(event, signals.FlowEvent):
        adapter = _FLOW_EVENT
    else:  # pragma: no cover - the signals carry only these
        return json.dumps(wire.dump(event, exclude_none=True), default=str).encode()
    return adapter.dump_json(event, by_alias=True, exclude_none=True)


def _encode_final(event: signals.ExecutionEvent) -> tuple[bytes, bytes, dict[str, Any]]:
    """A final event's JSON without ``result``, the result's JSON, and what the record keeps."""
    result = event.result
    assert result is not None
    head = _encode(dataclasses.replace(event, result=None))
    result_json = _RESULT.dump_json(result, by_alias=True, exclude_none=True)
    summary = {
        "status": str(result.status),
        "startedAt": wire.iso(result.started_at),
        "durationMs": result.duration_ms,
    }
    return head, result_json, summary


class Subscriber:
    """What a WebSocket sender reads: :meth:`next` gives an event's text, END, OVERFLOW or
    None (nothing yet: await :meth:`wait`). The sender sets :attr:`sending` while a send is
    suspended, i.e. while the client's socket takes no more data."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.overflowed = False
        #: True while the sender waits for the socket to drain.
        self.sending = False
        #: Set on overflow, so a sender blocked on a slow socket closes it at once (1013)
        #: rather than when its send ends (by then a keepalive timeout may have said 1011).
        self.dropped = asyncio.Event()
        self._waiter: asyncio.Future[None] | None = None

    def next(self) -> Item | None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def wait(self) -> None:
        """Until there is something new to read (an event, the end, an overflow)."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def overflow(self) -> None:
        self.overflowed = True
        self.dropped.set()
        self.wake()


class ExecutionSubscriber(Subscriber):
    """A cursor into one execution's history, from its first buffered event to its end."""

    def __init__(self, record: ExecutionRecord, limit: int) -> None:
        super().__init__(limit)
        self.record = record
        self.cursor = record.first
        self._marker = record.first > 0

    @property
    def lag(self) -> int:
        return self.record.end - self.cursor

    def next(self) -> Item | None:
        if self.overflowed:
            return OVERFLOW
        record = self.record
        if self._marker:
            self._marker = False
            return record.dropped_marker()
        if self.cursor < record.first:  # pragma: no cover - publish overflows it first
            self.overflow()
            return OVERFLOW
        if self.cursor < record.end:
            text = record.event_at(self.cursor)
            self.cursor += 1
            return text
        if record.finished or record.closed:
            return END
        return None


class StreamSubscriber(Subscriber):
    """A listener to every execution's live events (no history): a queue of texts, at most
    ``hard_limit`` long however fast its socket drains."""

    def __init__(self, limit: int, hard_limit: int) -> None:
        super().__init__(limit)
        self.hard_limit = max(limit, hard_limit)
        self._queue: deque[str] = deque()
        self._ended = False

    @property
    def lag(self) -> int:
        return len(self._queue)

    def push(self, text: str) -> bool:
        """Queue an event; False (and the subscriber is finished) if it was too far behind."""
        if self.overflowed:
            return False
        queue = self._queue
        if len(queue) >= self.hard_limit or (self.sending and len(queue) >= self.limit):
            queue.clear()
            self.overflow()
            return False
        queue.append(text)
        if len(queue) == 1:
            self.wake()
        return True

    def end(self) -> None:
        self._ended = True
        self.wake()

    def next(self) -> Item | None:
        if self.overflowed:
            return OVERFLOW
        if self._queue:
            return self._queue.popleft()
        return END if self._ended else None


class ExecutionRecord:
    """What the server knows about one execution, running or finished."""

    def __init__(self, execution_id: str, flow_id: str, max_events: int) -> None:
        self.execution_id = execution_id
        self.flow_id = flow_id
        self.max_events = max_events
        self.created_at = time.time()
        self.status = "running"
        self.progress = 0.0
        #: The live handle while running.
        self.execution: Execution | None = None
        #: Started over the API (stopping the server cancels it), not by in-process code.
        self.started_here = False
        #: The result's JSON once finished (``wire.dump(result, exclude_none=True)``).
        self.result_json: bytes | None = None
        self.started_at: str | None = None
        self.duration_ms: float | None = None
        #: The event texts kept; ``_events[_head]`` is event number :attr:`first`.
        self._events: list[str] = []
        self._head = 0
        #: How many of the oldest events were dropped (the number of the first one kept).
        self.first = 0
        #: Bytes of the texts kept, and of the result.
        self.nbytes = 0
        self.subscribers: set[ExecutionSubscriber] = set()
        #: The hub stopped: a stream that reached the last event ends there.
        self.closed = False
        #: Its final event is being encoded (off the loop); the watcher leaves it be.
        self.finishing = False
        self._done: asyncio.Event | None = None

    # -- the history -----------------------------------------------------------------------
    @property
    def end(self) -> int:
        """The number the next event will have."""
        return self.first + len(self._events) - self._head

    @property
    def dropped(self) -> int:
        return self.first

    def __len__(self) -> int:
        return len(self._events) - self._head

    def event_at(self, number: int) -> str:
        return self._events[self._head + number - self.first]

    def append(self, text: str) -> int:
        """Keep an event's text; the bytes this added (less those of events it pushed out)."""
        self._events.append(text)
        self.nbytes += len(text)
        added = len(text)
        while len(self) > self.max_events:
            added -= self.drop_oldest()
        return added

    def drop_oldest(self) -> int:
        """Forget the oldest event kept; the bytes this freed."""
        text = self._events[self._head]
        self._events[self._head] = ""
        self._head += 1
        self.first += 1
        if self._head > 1024 and self._head * 2 > len(self._events):
            del self._events[: self._head]
            self._head = 0
        self.nbytes -= len(text)
        return len(text)

    def history(self) -> list[str]:
        """The buffered events, preceded by a marker when older ones were dropped."""
        out = self._events[self._head :]
        return [self.dropped_marker(), *out] if self.first else out

    def dropped_marker(self) -> str:
        return json.dumps(
            {
                "type": "events.dropped",
                "executionId": self.execution_id,
                "flowId": self.flow_id,
                "dropped": self.first,
                "hint": f"only the last {self.max_events} events of an execution are kept",
            }
        )

    # -- the end -----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.result_json is not None

    async def wait_finished(self, timeout: float) -> bool:
        """Wait until the execution ends, for at most ``timeout`` seconds; True if it did."""
        if self.finished:
            return True
        if self._done is None:
            self._done = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._done.wait()
        except TimeoutError:
            return self.finished
        return True

    def finish(self, status: str, result_json: bytes, started_at: Any, duration_ms: Any) -> None:
        self.status = status
        self.result_json = result_json
        self.nbytes += len(result_json)
        self.started_at = started_at if isinstance(started_at, str) else None
        self.duration_ms = float(duration_ms) if isinstance(duration_ms, int | float) else None
        self.execution = None
        if self._done is not None:
            self._done.set()

    # -- answers -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "executionId": self.execution_id,
            "flowId": self.flow_id,
            "status": self.status,
            "progress": self.progress,
            "createdAt": wire.iso(self.created_at),
        }
        if self.finished:
            data["startedAt"] = self.started_at
            data["durationMs"] = self.duration_ms
        return data

    def result_body(self) -> bytes:
        """The final result's JSON with ``progress``: what GET answers for a finished one."""
        assert self.result_json is not None
        return b'{"progress":%s,%s' % (json.dumps(self.progress).encode(), self.result_json[1:])

    def to_dict(self) -> dict[str, Any]:
        """The result's wire form (a snapshot while running) plus ``progress``."""
        if self.result_json is not None:
            data: dict[str, Any] = json.loads(self.result_body())
            return data
        if self.execution is not None:
            snapshot = wire.dump(self.execution.snapshot)
            snapshot["status"] = "running"
            return {**snapshot, "progress": self.execution.progress}
        return {
            "executionId": self.execution_id,
            "flowId": self.flow_id,
            "status": self.status,
            "outputs": {},
            "nodes": {},
            "durationMs": None,
            "startedAt": None,
            "progress": self.progress,
        }


class EventHub:
    """Records every execution of one conductor and fans its events out to subscribers."""

    def __init__(
        self,
        conductor: Conductor,
        *,
        max_events: int = 50_000,
        max_executions: int = 1000,
        subscriber_queue: int = 1000,
        max_history_bytes: int = 256 * 1024 * 1024,
        max_message_bytes: int = 1024 * 1024,
    ) -> None:
        self.conductor = conductor
        self.max_events = max_events
        self.max_executions = max_executions
        self.subscriber_queue = subscriber_queue
        self.max_history_bytes = max_history_bytes
        self.max_message_bytes = max_message_bytes
        self.records: OrderedDict[str, ExecutionRecord] = OrderedDict()
        #: The finished ones, least recently finished first (the order they are forgotten in).
        self._finished: OrderedDict[str, ExecutionRecord] = OrderedDict()
        self.running_count = 0
        #: Bytes of every record's history and result.
        self.nbytes = 0
        self.global_subscribers: set[StreamSubscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self._connected: list[tuple[Any, Callable[..., None], Any]] = []
        #: Called with a flow id when a stored flow is saved or deleted (plan caches).
        self.on_flow_change: list[Callable[[str], None]] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Connect the receivers; call from the event loop the server runs on."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for sig in _EXECUTION_SIGNALS:
            sig.connect(self._on_signal, sender=self.conductor, weak=False)
            self._connected.append((sig, self._on_signal, self.conductor))
        if self.conductor.storage is not None:
            for sig in _STORAGE_SIGNALS:
                sig.connect(self._on_signal, sender=self.conductor.storage, weak=False)
                self._connected.append((sig, self._on_signal, self.conductor.storage))

    async def stop(self) -> None:
        """Disconnect, cancel what the server started and end every subscriber."""
        for sig, fn, _sender in self._connected:
            # From every sender: blinker keeps a receiver in ``signal.receivers`` (and the
            # engine keeps building payloads) until it is disconnected from all of them.
            sig.disconnect(fn)
        self._connected.clear()
        for record in self.records.values():
            if record.started_here and record.execution is not None and not record.finished:
                record.execution.cancel()
        if self._watchers:
            await asyncio.gather(*self._watchers, return_exceptions=True)
        for sub in self.global_subscribers:
            sub.end()
        for record in self.records.values():
            record.closed = True
            for esub in record.subscribers:
                esub.wake()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The server's event loop, for starting executions on it from other threads."""
        return self._loop

    # -- executions --------------------------------------------------------------------------
    def track(self, execution: Execution) -> ExecutionRecord:
        """Record an execution the server just started (before it emits anything)."""
        record = self._record(execution.execution_id, execution.flow_id)
        record.execution = execution
        record.started_here = True
        task = asyncio.get_running_loop().create_task(self._watch(record, execution))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return record

    async def _watch(self, record: ExecutionRecord, execution: Execution) -> None:
        """Finish the record even if the execution never emitted its final event."""
        try:
            result = await execution.result()
        except asyncio.CancelledError:
            if not execution.done():  # the watcher itself was cancelled
                raise
            result = None
        if record.finished or record.finishing:
            return
        # Cancelled before its first step: no signal was ever sent; say so ourselves.
        self._finish_from(
            record,
            result if result is not None else execution.snapshot,
            execution.progress,
            cancelled=result is None,
        )

    def _finish_from(
        self,
        record: ExecutionRecord,
        result: ExecutionResult,
        progress: float,
        *,
        cancelled: bool = False,
    ) -> None:
        """End the record with a final event made from ``result`` (no signal said it)."""
        data = wire.dump(result, exclude_none=True)
        if cancelled:
            data["status"] = "cancelled"
            data["error"] = wire.dump(ExecutionCancelled("cancelled before it started"))
        event = {
            "type": f"execution.{data['status']}",
            "executionId": record.execution_id,
            "flowId": record.flow_id,
            "timestamp": wire.iso(time.time()),
            "progress": progress,
            "status": data["status"],
        }
        if "error" in data:
            event["error"] = data["error"]
        head = json.dumps(event, default=str).encode()
        self._publish_final(record, head, json.dumps(data, default=str).encode(), data)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self.records.get(execution_id)

    def _record(self, execution_id: str, flow_id: str) -> ExecutionRecord:
        record = self.records.get(execution_id)
        if record is None:
            record = ExecutionRecord(execution_id, flow_id, self.max_events)
            self.records[execution_id] = record
            self.running_count += 1
        return record

    def _forget(self, record: ExecutionRecord) -> None:
        self.records.pop(record.execution_id, None)
        self._finished.pop(record.execution_id, None)
        self.nbytes -= record.nbytes

    def _evict(self) -> None:
        """Forget finished executions past ``max_executions`` or the byte budget."""
        finished = self._finished
        while finished and (
            len(finished) > self.max_executions or self.nbytes > self.max_history_bytes
        ):
            self._forget(next(iter(finished.values())))

    # -- subscribing -----------------------------------------------------------------------
    def subscribe(self, record: ExecutionRecord) -> ExecutionSubscriber:
        """A cursor from the start of the record's history (replayed, then live, to its end).

        Taken in the loop thread, so nothing is missed or repeated between the replay and the
        live events.
        """
        sub = ExecutionSubscriber(record, self.subscriber_queue)
        if not record.finished:
            record.subscribers.add(sub)
        return sub

    def unsubscribe(self, record: ExecutionRecord, sub: ExecutionSubscriber) -> None:
        record.subscribers.discard(sub)

    def subscribe_all(self) -> StreamSubscriber:
        sub = StreamSubscriber(self.subscriber_queue, self.max_events)
        self.global_subscribers.add(sub)
        return sub

    def unsubscribe_all(self, sub: StreamSubscriber) -> None:
        self.global_subscribers.discard(sub)

    # -- receiving -------------------------------------------------------------------------
    def _on_signal(self, sender: Any, event: Any) -> None:
        if isinstance(event, signals.ExecutionEvent) and event.result is not None:
            # The final event: the result is encoded once, for the event and for GET; a
            # large one in a worker thread (10,000 nodes take ~50 ms), the loop serving on.
            if len(event.result.nodes) > INLINE_RESULT_NODES and self._loop is not None:
                self._deliver(self._final_later, event)
            else:
                self._deliver(self._final, event, *_encode_final(event))
            return
        self._deliver(self._dispatch, event, _encode(event).decode())

    def _deliver(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() != self._loop_thread and self._loop is not None:
            # Storage saves run in worker threads; the hub only changes in the loop thread.
            self._loop.call_soon_threadsafe(fn, *args)
        else:
            fn(*args)

    def _dispatch(self, event: Any, text: str) -> None:
        if isinstance(event, signals.FlowEvent):
            for fn in self.on_flow_change:
                fn(event.flow_id)
            self._fan_out(text)
            return
        record = self._record(event.execution_id, event.flow_id)
        if record.finished:
            return
        if record.execution is None and event.type == "execution.started":
            # Started in-process by someone else: observe it (and allow cancelling it).
            record.execution = self.conductor.get_execution(event.execution_id)
        record.progress = max(record.progress, float(event.progress or 0.0))
        self._publish(record, text)
        self._fan_out(text)

    def _final(self, event: Any, head: bytes, result_json: bytes, summary: dict[str, Any]) -> None:
        record = self._record(event.execution_id, event.flow_id)
        if record.finished:
            return
        record.progress = max(record.progress, float(event.progress or 0.0))
        self._publish_final(record, head, result_json, summary)

    def _final_later(self, event: signals.ExecutionEvent) -> None:
        record = self._record(event.execution_id, event.flow_id)
        if record.finished or record.finishing:
            return
        record.finishing = True  # the watcher leaves the record to this
        task = asyncio.get_running_loop().create_task(self._final_encoded(record, event))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _final_encoded(self, record: ExecutionRecord, event: signals.ExecutionEvent) -> None:
        try:
            encoded = await asyncio.to_thread(_encode_final, event)
        except Exception:
            _log.exception("execution %s: its result could not be encoded", record.execution_id)
            if not record.finished:
                assert event.result is not None
                self._finish_from(record, event.result, event.progress)
            return
        self._final(event, *encoded)

    def _publish_final(
        self, record: ExecutionRecord, head: bytes, result_json: bytes, summary: dict[str, Any]
    ) -> None:
        """The final event (``head`` is its JSON without ``result``), then the record ends."""
        if len(head) + len(result_json) + 12 <= self.max_message_bytes:
            text = (head[:-1] + b',"result":' + result_json + b"}").decode()
        else:  # too large for one message: where to get it instead
            url = f"/api/executions/{record.execution_id}"
            size = len(result_json)
            tail = b',"resultUrl":%s,"resultBytes":%d}' % (json.dumps(url).encode(), size)
            text = (head[:-1] + tail).decode()
        self._publish(record, text)
        self._fan_out(text)
        before = record.nbytes
        status = str(summary.get("status"))
        record.finish(status, result_json, summary.get("startedAt"), summary.get("durationMs"))
        self.nbytes += record.nbytes - before
        for sub in record.subscribers:
            sub.wake()
        record.subscribers.clear()
        self.running_count -= 1
        self.records.move_to_end(record.execution_id)
        self._finished[record.execution_id] = record
        self._evict()

    def _publish(self, record: ExecutionRecord, text: str) -> None:
        first = record.first
        self.nbytes += record.append(text)
        if self.nbytes > self.max_history_bytes:
            self._evict()
            while self.nbytes > self.max_history_bytes and len(record) > 1:
                self.nbytes -= record.drop_oldest()
        evicted = record.first != first
        if not record.subscribers:
            return
        limit = self.subscriber_queue
        for sub in list(record.subscribers):
            if (evicted and sub.cursor < record.first) or (sub.sending and sub.lag > limit):
                sub.overflow()
                record.subscribers.discard(sub)
            else:
                sub.wake()

    def _fan_out(self, text: str) -> None:
        subscribers = self.global_subscribers
        if not subscribers:
            return
        for sub in list(subscribers):
            if not sub.push(text):
                subscribers.discard(sub)
