"""Execution records and their events: bounded per-execution history, bounded subscribers.

The :class:`EventHub` listens to one conductor's signals (``sender=conductor``) and keeps, per
execution, its status, its final result and the JSON of every event it emitted, so a client
that connects late still replays the whole story. Memory stays bounded everywhere:

- an execution keeps at most ``max_events`` events; older ones are dropped and a replay starts
  with one ``events.dropped`` marker saying how many;
- at most ``max_executions`` finished executions are kept (least recently finished go first);
- each live subscriber has a queue of ``subscriber_queue`` events; a subscriber that falls that
  far behind is dropped (its socket closes with :data:`CLOSE_TOO_SLOW`) instead of growing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atomiton_core import signals, wire
from atomiton_core.conductor.conductor import Conductor, Execution
from atomiton_core.errors import ExecutionCancelled

__all__ = [
    "CLOSE_TOO_SLOW",
    "END",
    "OVERFLOW",
    "EventHub",
    "ExecutionRecord",
    "Subscriber",
]

#: WebSocket close code for a subscriber dropped because it read too slowly ("try again later":
#: reconnecting replays the buffered history).
CLOSE_TOO_SLOW = 1013

FINAL_TYPES = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})

_EXECUTION_SIGNALS = signals.EXECUTION_SIGNALS + signals.NODE_SIGNALS
_STORAGE_SIGNALS = (signals.flow_saved, signals.flow_deleted)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: Queued after an execution's final event: the stream is complete.
END = _Marker("END")
#: Queued instead of events when a subscriber overflowed: close it with CLOSE_TOO_SLOW.
OVERFLOW = _Marker("OVERFLOW")

Item = str | _Marker


class Subscriber:
    """One live listener: a bounded queue of event JSON texts, then END or OVERFLOW."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # One slot more than the limit, so END / OVERFLOW always fit.
        self._queue: asyncio.Queue[Item] = asyncio.Queue(limit + 1)
        self.overflowed = False
        #: Set on overflow, so a sender blocked on a slow socket closes it at once (1013)
        #: rather than when its send ends (by then a keepalive timeout may have said 1011).
        self.dropped = asyncio.Event()

    def push(self, text: str) -> bool:
        """Queue an event; False (and the subscriber is finished) if it was too far behind."""
        if self.overflowed:
            return False
        if self._queue.qsize() >= self.limit:
            self.overflowed = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(OVERFLOW)
            self.dropped.set()
            return False
        self._queue.put_nowait(text)
        return True

    def end(self) -> None:
        if not self.overflowed:
            self._queue.put_nowait(END)

    async def get(self) -> Item:
        return await self._queue.get()


@dataclass(eq=False)
class ExecutionRecord:
    """What the server knows about one execution, running or finished."""

    execution_id: str
    flow_id: str
    max_events: int
    created_at: float = field(default_factory=time.time)
    status: str = "running"
    progress: float = 0.0
    #: The live handle while running.
    execution: Execution | None = None
    #: Started over the API (stopping the server cancels it), not by in-process code.
    started_here: bool = False
    #: The result's wire form (wire.dump) once finished.
    result: dict[str, Any] | None = None
    events: deque[str] = field(init=False)
    dropped: int = 0
    subscribers: set[Subscriber] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.events = deque(maxlen=self.max_events)

    @property
    def finished(self) -> bool:
        return self.result is not None

    def history(self) -> list[str]:
        """The buffered events, preceded by a marker when older ones were dropped."""
        out = list(self.events)
        if self.dropped:
            marker = {
                "type": "events.dropped",
                "executionId": self.execution_id,
                "flowId": self.flow_id,
                "dropped": self.dropped,
                "hint": f"only the last {self.max_events} events of an execution are kept",
            }
            out.insert(0, json.dumps(marker))
        return out

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "executionId": self.execution_id,
            "flowId": self.flow_id,
            "status": self.status,
            "progress": self.progress,
            "createdAt": wire.iso(self.created_at),
        }
        if self.result is not None:
            data["startedAt"] = self.result.get("startedAt")
            data["durationMs"] = self.result.get("durationMs")
        return data

    def to_dict(self) -> dict[str, Any]:
        """The result's wire form (a snapshot while running) plus ``progress``."""
        if self.result is not None:
            return {**self.result, "progress": self.progress}
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
        max_events: int = 10_000,
        max_executions: int = 1000,
        subscriber_queue: int = 1000,
    ) -> None:
        self.conductor = conductor
        self.max_events = max_events
        self.max_executions = max_executions
        self.subscriber_queue = subscriber_queue
        self.records: OrderedDict[str, ExecutionRecord] = OrderedDict()
        self.global_subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self._connected: list[tuple[Any, Callable[..., None], Any]] = []

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
            for sub in record.subscribers:
                sub.end()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The server's event loop, for starting executions on it from other threads."""
        return self._loop

    # -- executions --------------------------------------------------------------------------
    @property
    def running_count(self) -> int:
        return sum(1 for r in self.records.values() if not r.finished)

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
        if record.finished:
            return
        # Cancelled before its first step: no signal was ever sent; say so ourselves.
        data = wire.dump(result if result is not None else execution.snapshot)
        if result is None:
            data["status"] = "cancelled"
            data["error"] = wire.dump(ExecutionCancelled("cancelled before it started"))
        event = {
            "type": f"execution.{data['status']}",
            "executionId": record.execution_id,
            "flowId": record.flow_id,
            "timestamp": wire.iso(time.time()),
            "progress": execution.progress,
            "status": data["status"],
            "result": data,
        }
        if "error" in data:
            event["error"] = data["error"]
        self._publish(record, event)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self.records.get(execution_id)

    def _record(self, execution_id: str, flow_id: str) -> ExecutionRecord:
        record = self.records.get(execution_id)
        if record is None:
            record = ExecutionRecord(execution_id, flow_id, self.max_events)
            self.records[execution_id] = record
        return record

    def _evict(self) -> None:
        finished = [eid for eid, r in self.records.items() if r.finished]
        for eid in finished[: max(0, len(finished) - self.max_executions)]:
            del self.records[eid]

    # -- subscribing -----------------------------------------------------------------------
    def subscribe(self, record: ExecutionRecord) -> tuple[list[str], Subscriber | None]:
        """The history so far and, unless the execution is over, a live subscriber.

        Both are taken in the loop thread with no await between them, so nothing is missed
        or repeated between the replay and the live events.
        """
        history = record.history()
        if record.finished:
            return history, None
        sub = Subscriber(self.subscriber_queue)
        record.subscribers.add(sub)
        return history, sub

    def unsubscribe(self, record: ExecutionRecord, sub: Subscriber) -> None:
        record.subscribers.discard(sub)

    def subscribe_all(self) -> Subscriber:
        sub = Subscriber(self.subscriber_queue)
        self.global_subscribers.add(sub)
        return sub

    def unsubscribe_all(self, sub: Subscriber) -> None:
        self.global_subscribers.discard(sub)

    # -- receiving -------------------------------------------------------------------------
    def _on_signal(self, sender: Any, event: Any) -> None:
        data = wire.dump(event, exclude_none=True)
        if threading.get_ident() != self._loop_thread and self._loop is not None:
            # Storage saves run in worker threads; the hub only changes in the loop thread.
            self._loop.call_soon_threadsafe(self._dispatch, data)
        else:
            self._dispatch(data)

    def _dispatch(self, data: dict[str, Any]) -> None:
        execution_id = data.get("executionId")
        if execution_id is None:  # flow.saved / flow.deleted
            self._fan_out(self.global_subscribers, json.dumps(data, default=str))
            return
        record = self._record(execution_id, data["flowId"])
        if record.finished:
            return
        if record.execution is None and data["type"] == "execution.started":
            # Started in-process by someone else: observe it (and allow cancelling it).
            record.execution = self.conductor.get_execution(execution_id)
        self._publish(record, data)

    def _publish(self, record: ExecutionRecord, data: dict[str, Any]) -> None:
        text = json.dumps(data, default=str)
        if len(record.events) == record.events.maxlen:
            record.dropped += 1
        record.events.append(text)
        record.progress = max(record.progress, float(data.get("progress") or 0.0))
        final = data["type"] in FINAL_TYPES
        self._fan_out(record.subscribers, text)
        self._fan_out(self.global_subscribers, text)
        if final:
            record.status = str(data["status"])
            record.result = data.get("result") or record.to_dict()
            record.execution = None
            for sub in record.subscribers:
                sub.end()
            record.subscribers.clear()
            self.records.move_to_end(record.execution_id)
            self._evict()

    @staticmethod
    def _fan_out(subscribers: set[Subscriber], text: str) -> None:
        for sub in list(subscribers):
            if not sub.push(text):
                subscribers.discard(sub)
