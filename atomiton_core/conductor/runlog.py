"""The durable record of an execution, written while it runs.

With ``record="full"`` (the default when a conductor has storage) every execution gets a
folder ``runs/<execution id>/`` in storage:

- ``run.json``: the *run record*, written atomically when the execution starts (status
  ``running``, the flow's id, content hash and version, the inputs, the process writing it,
  the trigger that started it if one did)
  and again when it ends (status, timings, the error, the flow's outputs, and every node's
  path in order, ``nodeLog``; a node's entry, its status, attempts, timings, error, the
  digests of its inputs and outputs and its outputs, is its last line of the log, where the
  reader takes it from, so each node is encoded and written once; nodes that never started
  have their entry in ``nodes``);
- ``events.jsonl``: the *run log*, one JSON object per line, appended as the execution goes:
  ``execution.started``, ``node.started`` / ``retrying`` / ``progress`` (at most
  :data:`PROGRESS_EVERY_S` apart per node) / ``completed`` / ``failed`` / ``skipped`` /
  ``cancelled``, and the execution's end (a node that starts and ends between two writes
  of the log has its ``node.completed`` line only, which gives its start time too); on
  storage that cannot append (object stores) each batch is a numbered file
  ``events/<n>.jsonl`` instead;
- ``summary.json``: for a record over :data:`SUMMARY_FROM` bytes, written after it ends, the
  record less its nodes and outputs, so that listing runs does not read every node;
- ``blobs/<digest>``: node output values too large or too binary to sit in a line
  (over :data:`INLINE_LIMIT` bytes of JSON, or holding bytes), referenced as
  ``{"$ref": "<digest>"}``.

Values are stored through :mod:`atomiton_core.codec`. A value the codec cannot store is
reported once (naming the node and port) and makes that node not resumable; the run goes on.
A node whose outputs hold a secret the run looked up is stored masked, and not resumable.

Lines are written by one thread per conductor, in batches (the loop thread only queues
them), so the log costs little; a process killed at any moment leaves a record that loads
(``running`` with a dead writer reads as ``interrupted``) and a log whose last, torn line
is ignored. ``record="summary"`` writes only ``run.json`` (no log, no outputs);
``record="off"`` nothing. See :mod:`atomiton_core.storage.runs` for reading them back.

Why our own writer rather than a logging or event-store library: the log must go to any
fsspec storage, in the codec's form, with per-node digests for resuming; Python's logging
handlers write text to local files, and an event store would be a server to run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import pydantic_core

from atomiton_core import codec, wire
from atomiton_core.errors import ValueNotEncodable
from atomiton_core.files import atomic_write_bytes
from atomiton_core.storage.runs import (
    FORMAT,
    INLINE_LIMIT,
    SUMMARY_FILE,
    SUMMARY_FROM,
    StoredOutputs,
    store_outputs,
    value_digest,
)

if TYPE_CHECKING:
    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.run import Run
    from atomiton_core.results import ExecutionResult, NodeResult
    from atomiton_core.storage.flows import FlowStorage

__all__ = [
    "INLINE_LIMIT",
    "RECORD_MODES",
    "LogWriter",
    "RunLog",
    "current_trigger",
    "triggered_by",
]
__all__ += ["StoredOutputs", "store_outputs", "value_digest"]  # the stored form, re-exported

RecordMode = Literal["full", "summary", "off"]
RECORD_MODES: tuple[str, ...] = ("full", "summary", "off")
#: A node's progress is logged at most this often (its first and last always).
PROGRESS_EVERY_S = 0.25
#: How long the writer waits for more lines before writing a batch.
BATCH_S = 0.02
#: The most lines a batch holds: more are written at once, so that a loop busy with a wide
#: fan-out (its timers wait while 100,000 tasks run) does not hold all their lines.
BATCH_LINES = 2048
#: How often a running record is rewritten with a fresh ``heartbeatAt``.
HEARTBEAT_S = 30.0
#: How long the writer's thread waits for work before it ends (the next line starts one).
IDLE_S = 2.0

_log = logging.getLogger("atomiton.runs")
#: JSON of plain data, as UTF-8 bytes: pydantic-core's serializer (a dependency already),
#: four times as fast as the standard library's on the small objects a log is made of.
_dumps = pydantic_core.to_json
_now = time.time


#: What started the runs begun in this context: a trigger's description, written in their
#: records' header as ``trigger`` (see :func:`triggered_by`). A context variable, so that a
#: run started by a trigger of the server says so without every caller of ``start`` passing
#: it; the task that runs an execution is created in ``start``, within the context.
_TRIGGER: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "atomiton_run_trigger", default=None
)


def current_trigger() -> dict[str, Any] | None:
    """What is starting runs in this context (see :func:`triggered_by`), or None."""
    trigger = _TRIGGER.get()
    return dict(trigger) if trigger is not None else None


@contextlib.contextmanager
def triggered_by(trigger: Mapping[str, Any]) -> Iterator[None]:
    """Runs started in the block (``conductor.start``) record ``trigger`` (plain JSON data:
    the trigger's flow, id, type, when and why it fired) in their header."""
    token = _TRIGGER.set(dict(trigger))
    try:
        yield
    finally:
        _TRIGGER.reset(token)


def _process_start() -> float | None:
    import psutil

    try:
        return float(psutil.Process().create_time())
    except psutil.Error:  # pragma: no cover - our own process is always there
        return None


_HOST = socket.gethostname()
_PID = os.getpid()
_START: list[float | None] = []


def writer_identity() -> dict[str, Any]:
    """Who writes a record: a reader on this host tells a live writer from a dead one."""
    pid = os.getpid()
    if not _START or pid != _PID:
        _START[:] = [_process_start()]
    return {"host": _HOST, "pid": pid, "processStart": _START[0]}


class _Target:
    """Where one run's files go: its folder, its open log (local) or its next segment."""

    __slots__ = ("blobs_made", "fh", "folder", "fs", "local", "segment")

    def __init__(self, storage: FlowStorage, execution_id: str) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.fs = storage.fs
        self.folder = storage.run_folder(execution_id)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.fh: Any = None
        self.segment = 0
        self.blobs_made = False

    def append(self, data: bytes) -> None:
        if self.local:
            if self.fh is None:
                os.makedirs(self.folder, exist_ok=True)
                self.fh = open(os.path.join(self.folder, "events.jsonl"), "ab")  # noqa: SIM115
            self.fh.write(data)
            self.fh.flush()
        else:
            self.segment += 1
            self.fs.pipe_file(f"{self.folder}/events/{self.segment:06d}.jsonl", data)

    def blob(self, name: str, data: bytes | list[bytes]) -> None:
        folder = f"{self.folder}/blobs"
        if not self.blobs_made:
            self.fs.makedirs(folder, exist_ok=True)
            self.blobs_made = True
        if self.local and isinstance(data, list):
            with open(f"{folder}/{name}", "wb") as fh:
                fh.writelines(data)
            return
        self.fs.pipe_file(f"{folder}/{name}", data if isinstance(data, bytes) else b"".join(data))

    def record(
        self, record: dict[str, Any] | bytes | list[bytes | memoryview], name: str = "run.json"
    ) -> None:
        data = _dumps(record) if isinstance(record, dict) else record
        atomic_write_bytes(f"{self.folder}/{name}", data, fs=self.fs, fsync=False)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class LogWriter:
    """The conductor's writer thread: it takes batches of lines, blobs and records from the
    loop thread and writes them in order; a failure to write is logged once per run, and the
    run goes on (a record is a report of the run, not a condition of it)."""

    def __init__(self) -> None:
        self._items: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        #: Set when a run waits on the writer (its end): no batching delay then.
        self._urgent = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def put(self, item: tuple[Any, ...]) -> None:
        self._items.append(item)
        if not self._wake.is_set():
            self._wake.set()
        if item[0] in ("end", "barrier"):
            self._urgent.set()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._start_locked()

    def _start_locked(self) -> None:
        self._thread = threading.Thread(target=self._main, name="atomiton-run-log", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        items = self._items
        while True:
            if not self._wake.wait(IDLE_S):  # nothing to write for a while: the thread ends
                with self._lock:
                    if items:
                        continue
                    self._thread = None
                    if items:  # put() came between: it saw a thread, so carry on in a new one
                        self._start_locked()
                    return
            self._urgent.wait(BATCH_S)  # let a batch gather, unless a run waits
            self._urgent.clear()
            self._wake.clear()
            batch: dict[RunLog, list[bytes]] = {}
            item: tuple[Any, ...] | None = None
            while items:
                item = items.popleft()
                if item[0] == "line":
                    batch.setdefault(item[1], []).append(item[2])
                else:  # lines queued before it are written first
                    self._write_lines(batch)
                    batch = {}
                    self._do(item)
            self._write_lines(batch)
            del batch, item  # hold no run (and its conductor) while idle
            if self._closed and not items:
                with self._lock:
                    self._thread = None
                return

    def _write_lines(self, batch: dict[RunLog, list[bytes]]) -> None:
        for log, lines in batch.items():
            log.guard(lambda t, lines=lines: t.append(b"\n".join(lines) + b"\n"))

    def _do(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "call":  # another writer's work (the cache's): its errors are its own
            try:
                item[2]()
            except Exception:
                _log.exception("a background write failed")
            return
        if kind == "barrier":  # everything queued before it is written
            item[2].set_result(None)
            return
        _write_item(item)

    def call(self, fn: Any) -> None:
        """Run ``fn()`` on the writer's thread, in order with the rest."""
        self.put(("call", None, fn))

    async def drained(self) -> None:
        """Wait until everything queued so far is written."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.put(("barrier", None, done))
        await asyncio.wrap_future(done)

    def close(self) -> None:
        self._closed = True
        self._wake.set()


def _write_item(item: tuple[Any, ...]) -> None:
    """Write a blob or a record of a run, or end its log (the future says it is written)."""
    kind, log = item[0], item[1]
    if kind == "blob":
        log.guard(lambda t: t.blob(item[2], item[3]))
    elif kind == "record":
        log.guard(lambda t: t.record(item[2]))
    elif kind == "summary":
        log.guard(lambda t: t.record(item[2], SUMMARY_FILE))
    elif kind == "end":
        log.target.close()
        done: concurrent.futures.Future[None] = item[2]
        if not done.done():
            done.set_result(None)


class _LoopWriter:
    """The writer of a run on local disk: lines are kept and written in one go every
    :data:`BATCH_S` (or every :data:`BATCH_LINES` lines) from the loop itself (a write to
    the page cache takes microseconds, and a second thread would cost more in handing the
    GIL back and forth than the writes do);
    blobs and records are written at once, after the lines queued before them.

    A ``node.started`` line is made only when the batch is written, and only for a node
    still running then: most nodes start and end between two writes, and their
    ``node.completed`` line (which has their start time too) says all there is."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lines: list[bytes] = []
        self.log: RunLog | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: Nodes started since the last write, by path: (node, result, attempt, time).
        self.started: dict[str, tuple[PlannedNode, NodeResult, int, float]] = {}

    def put(self, item: tuple[Any, ...]) -> None:
        kind, log = item[0], item[1]
        if kind == "line":
            lines = self.lines
            lines.append(item[2])
            self.log = log
            if len(lines) >= BATCH_LINES:
                self.flush()
            elif self.timer is None:
                self.timer = self.loop.call_later(BATCH_S, self.flush)
            return
        self.flush()
        _write_item(item)

    def start(self, log: RunLog, pn: PlannedNode, res: NodeResult) -> None:
        self.started[res.path] = (pn, res, res.attempts, _now())
        self.log = log
        if self.timer is None:
            self.timer = self.loop.call_later(BATCH_S, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        lines, self.lines = self.lines, []
        if self.started:
            lines = [_started_line(*entry) for entry in self.started.values()] + lines
            self.started.clear()
        if lines and self.log is not None:
            self.log.guard(lambda t: t.append(b"\n".join(lines) + b"\n"))


def _started_line(pn: PlannedNode, res: NodeResult, attempt: int, t: float) -> bytes:
    return _dumps(
        {
            "type": "node.started",
            "t": t,
            "path": res.path,
            "nodeId": pn.id,
            "nodeType": pn.type_id,
            "attempt": attempt,
        }
    )


def _line(event: dict[str, Any], outputs: bytes | None = None) -> bytes:
    text = _dumps(event)
    if outputs is not None:
        text = text[:-1] + b',"outputs":' + outputs + b"}"
    return text


class RunLog:
    """One execution's log and record (see the module's docstring)."""

    def __init__(self, run: Run, storage: FlowStorage, writer: LogWriter, mode: RecordMode):
        self.run = run
        self.mode = mode
        self.full = mode == "full"
        self.storage = storage
        self.target = _Target(storage, run.execution_id)
        self.writer: LogWriter | _LoopWriter = (
            _LoopWriter(run.loop) if self.target.local else writer
        )
        self.failed_write = False
        #: Per completed node path: its ``node.completed`` line (the final record's entry),
        #: kept only when the record is not full (a full record's nodes are in its log).
        self.lines: dict[str, bytes] = {}
        #: Completed nodes leave the result (``retain_results="errors"``): keep nothing of them.
        self.keep_nodes = run.retain_results == "all"
        #: The final record names its nodes and reads them from the log (see :meth:`close`).
        self.nodes_in_log = self.full and self.keep_nodes
        #: Paths whose end (completed, failed, skipped, cancelled) has its line in the log.
        self.logged: set[str] = set()
        self._progress_at: dict[str, float] = {}
        self._warned: set[tuple[str, str]] = set()
        #: Top-level nodes' outputs as stored (blobs by reference): the record's ``outputs``.
        self.top_outputs: dict[str, bytes] = {}
        #: Digests of the blobs this run has stored.
        self.blobs: set[str] = set()
        self.started_at = _now()
        self._header: dict[str, Any] | None = None
        #: What started the run (a trigger), if anything did: see :func:`triggered_by`.
        self.trigger = _TRIGGER.get()
        #: Per child node (of a loop, a sub-flow): its id, type and type version as JSON,
        #: alike in the lines of all its iterations.
        self._static: dict[PlannedNode, bytes] = {}
        self._beat: asyncio.TimerHandle | None = None

    # -- the writer's side -------------------------------------------------------------
    def guard(self, write: Any) -> None:
        if self.failed_write:
            return
        try:
            write(self.target)
        except Exception as exc:  # a full disk, a lost bucket: the run goes on
            self.failed_write = True
            _log.error(
                "run %s: its record could not be written to %s: %s",
                self.run.execution_id,
                self.target.folder,
                exc,
            )

    # -- the loop's side -----------------------------------------------------------------
    def _emit(self, event: dict[str, Any], outputs: bytes | None = None) -> None:
        if self.full:
            self.writer.put(("line", self, _line(event, outputs)))

    def header(self) -> dict[str, Any]:
        if self._header is not None:
            return dict(self._header)
        run = self.run
        flow = run.plan.flow
        self._header = {
            "format": FORMAT,
            "record": self.mode,
            "executionId": run.execution_id,
            "flowId": run.flow_id,
            "flowName": flow.name,
            "flowVersion": flow.version,
            "flowHash": run.plan.content_hash,
            "inputs": self._inputs(),
            "status": "running",
            "startedAt": self.started_at,
            "resumedFrom": run.resumed_from,
            "writer": writer_identity(),
        }
        if self.trigger is not None:
            self._header["trigger"] = dict(self.trigger)
        debugger = run.debugger
        if debugger is not None and (debugger.injections or debugger.slow_mo_ms):
            # what the run was started with to test the flow (conductor.debug)
            self._header["injected"] = {k: str(v) for k, v in debugger.injections.items()}
            self._header["slowMoMs"] = debugger.slow_mo_ms
        return dict(self._header)

    def _inputs(self) -> Any:
        value = self.run.redactor.value(self.run.inputs) if self.run.redactor else self.run.inputs
        try:
            return codec.encode(value, where="inputs").tree
        except ValueNotEncodable as exc:
            return {"$": "unencodable", "message": exc.message}

    def open(self) -> None:
        head = self.header()
        head["heartbeatAt"] = self.started_at
        self.writer.put(("record", self, head))
        self._keep_flow()
        if self.full:
            self._emit({"type": "execution.started", "t": self.started_at, **_slim(head)})
        self._beat = self.run.loop.call_later(HEARTBEAT_S, self._heartbeat)

    def _keep_flow(self) -> None:
        """The flow this run ran, kept once per digest in the conductor's writer thread
        (``FlowStorage.save_run_flow``): the run can be shown as it ran later."""
        run = self.run
        conductor = run.conductor
        digest = run.plan.content_hash
        kept = conductor.run_flows_kept
        if digest in kept:
            return
        kept.add(digest)
        storage, flow = self.storage, run.plan.flow
        conductor.log_writer.call(lambda: storage.save_run_flow(digest, flow))
        run.keeps_flow = True

    def _heartbeat(self) -> None:
        """Rewrite the running record now and then: a reader on another host, which cannot
        look for the writer's process, tells a dead writer by a stale ``heartbeatAt``."""
        head = self.header()
        head["heartbeatAt"] = _now()
        self.writer.put(("record", self, head))
        self._beat = self.run.loop.call_later(HEARTBEAT_S, self._heartbeat)

    def node_started(self, pn: PlannedNode, res: NodeResult) -> None:
        if self.full:
            writer = self.writer
            if isinstance(writer, _LoopWriter):
                writer.start(self, pn, res)
            else:
                writer.put(("line", self, _started_line(pn, res, res.attempts, _now())))

    def node_retrying(self, pn: PlannedNode, res: NodeResult, delay_ms: float) -> None:
        if self.full:
            self._emit(
                {
                    "type": "node.retrying",
                    "t": _now(),
                    "path": res.path,
                    "attempt": res.attempts,
                    "delayMs": delay_ms,
                    "error": _error(res.error),
                }
            )

    def node_progress(self, res: NodeResult, fraction: float, message: str | None) -> None:
        if not self.full:
            return
        now = _now()
        last = self._progress_at.get(res.path)
        if last is not None and now - last < PROGRESS_EVERY_S and fraction < 1.0:
            return
        self._progress_at[res.path] = now
        event: dict[str, Any] = {"type": "node.progress", "t": now, "path": res.path}
        event["fraction"] = fraction
        if message is not None:
            event["message"] = message
        self._emit(event)

    def node_completed(
        self,
        pn: PlannedNode,
        res: NodeResult,
        key: str | None,
        inputs_digest: str | None,
        stored: StoredOutputs,
    ) -> None:
        """Log a completed node with its outputs (as :func:`store_outputs` gave them)."""
        for d, parts in stored.blobs:
            if d not in self.blobs:  # the same value on two ports, or nodes, is stored once
                self.blobs.add(d)
                self.writer.put(("blob", self, d, parts))
        if stored.unstored is not None:
            self._warn_once(res.path, *stored.unstored)
        path = res.path
        writer = self.writer
        if isinstance(writer, _LoopWriter) and writer.started:
            writer.started.pop(path, None)  # its completed line says it all
        if path == pn.id:  # a top-level node: it completes once
            own = b',"path":' + _dumps(path) + _who(pn)
        else:  # a child: what its lines say alike, encoded once for all its iterations
            who = self._static.get(pn)
            if who is None:
                who = self._static[pn] = _who(pn)
            own = b',"path":' + _dumps(path) + who
        # the numbers in one call: pydantic-core's floats, shortest and exact (4x repr()'s
        # speed), none of them with a comma in it
        t, started, attempts, duration = _dumps(
            (_now(), res.started_at, res.attempts, res.duration_ms)
        )[1:-1].split(b",")
        usable = stored.why is None
        parts = [
            b'{"type":"node.completed","t":',
            t,
            b',"startedAt":',
            started,
            own,
            b',"attempts":',
            attempts,
            b',"durationMs":',
            duration,
            b',"key":',
            _dumps(key if usable else None),
            b',"inputsDigest":',
            _dumps(inputs_digest),
            b',"outputsDigests":',
            _dumps(stored.digests),
        ]
        if res.status != "completed":
            parts += (b',"status":', _dumps(str(res.status)))
        if res.cpu_ms is not None:
            parts += (b',"cpuMs":', _dumps(res.cpu_ms))
        if res.peak_memory is not None:
            parts += (b',"peakMemory":', _dumps(res.peak_memory))
        if not usable:
            parts += (b',"notResumable":', _dumps(stored.why))
        if res.resumed_from is not None:
            parts += (b',"resumedFrom":', _dumps(res.resumed_from))
        if res.injected is not None:
            parts += (b',"injected":', _dumps(res.injected))
        parts += (b',"outputs":', stored.json, b"}")
        line = b"".join(parts)
        self.writer.put(("line", self, line))
        if self.nodes_in_log:
            self.logged.add(path)
        elif self.keep_nodes:  # the final record's entry for it is this line
            self.lines[path] = line
        if "/" not in path:  # a top-level node: its outputs may be the flow's
            self.top_outputs[path] = stored.json

    def _warn_once(self, path: str, port: str, message: str) -> None:
        """Say once per node and port that an output could not be stored."""
        if (path, port) in self._warned:
            return
        self._warned.add((path, port))
        _log.warning(
            "run %s: node %r output %r is not stored, so the node cannot be resumed: %s",
            self.run.execution_id,
            path,
            port,
            message,
        )

    def node_ended(self, kind: str, res: NodeResult) -> None:
        """A node failed, was skipped or cancelled."""
        if not self.full:
            return
        writer = self.writer
        if isinstance(writer, _LoopWriter) and writer.started:
            writer.started.pop(res.path, None)  # its line says it all
        event: dict[str, Any] = {"type": kind, "t": _now(), "path": res.path}
        if res.started_at is not None:
            event["startedAt"] = res.started_at
        self._emit(_outcome(event, res))
        if self.nodes_in_log:
            self.logged.add(res.path)

    async def finish(self, result: ExecutionResult) -> None:
        """Log the end, write the final record, and wait until both are written."""
        await asyncio.wrap_future(self.close(result))

    def close(self, result: ExecutionResult) -> concurrent.futures.Future[None]:
        """Log the end and queue the final record; the future is done once both are written."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        ended = _now()
        if self.full:
            self._emit(
                {
                    "type": f"execution.{result.status}",
                    "t": ended,
                    "status": str(result.status),
                    "durationMs": result.duration_ms,
                    "error": _error(result.error),
                }
            )
        record = self.header()
        record.update(
            status=str(result.status),
            endedAt=ended,
            durationMs=result.duration_ms,
            error=_error(result.error),
        )
        # in parts, written one after another: a record of 100,000 nodes is never joined
        parts: list[bytes | memoryview] = [
            _dumps(record)[:-1],
            b',"outputs":',
            self._sink_outputs(result),
        ]
        if self.nodes_in_log and not self.failed_write:
            # every node in order; the entries of those whose end is a line of the log are
            # that line, which the reader takes from there (not copied: a node's record costs
            # its line alone); the others (never started) are written here
            logged = self.logged
            order = list(result.nodes)
            rest = {p: r for p, r in result.nodes.items() if p not in logged}
            parts += (b',"nodeLog":', _dumps(order), b',"nodes":{')
            sep = b""
            for path, res in rest.items():
                parts += (sep, _dumps(path), b":", *self._node(res))
                sep = b","
        else:
            parts.append(b',"nodes":{')
            node = self._node
            sep = b""
            for path, res in result.nodes.items():
                parts += (sep, _dumps(path), b":", *node(res))
                sep = b","
        parts.append(b"}}")
        self.writer.put(("record", self, parts))
        if sum(len(p) for p in parts) > SUMMARY_FROM:  # listing it should not read it all
            record["nodeCount"] = len(result.nodes)
            self.writer.put(("summary", self, _dumps(record)))
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.writer.put(("end", self, done))
        return done

    def _sink_outputs(self, result: ExecutionResult) -> bytes:
        """The flow's outputs as their nodes' lines stored them (large ones by reference)."""
        sinks = result.outputs if isinstance(result.outputs, dict) else {}
        if all(node_id in self.top_outputs for node_id in sinks):
            return b"{" + b",".join(_dumps(n) + b":" + self.top_outputs[n] for n in sinks) + b"}"
        try:  # a summary record: the values themselves
            return _dumps(codec.encode(result.outputs, where="outputs").tree)
        except ValueNotEncodable as exc:
            return _dumps({"$": "unencodable", "message": exc.message})

    def _node(self, res: NodeResult) -> tuple[bytes | memoryview, ...]:
        """The record's entry for a node, in parts (its log line is not copied)."""
        line = self.lines.get(res.path)
        if line is not None:  # completed, cached or pinned: its node.completed line
            if res.status == "completed":  # the line says any other status itself
                return (b'{"status":"completed",', memoryview(line)[1:])
            return (line,)
        entry: dict[str, Any] = {"status": str(res.status), "startedAt": res.started_at}
        return (_dumps(_outcome(entry, res)),)


def _who(pn: PlannedNode) -> bytes:
    return (
        b',"nodeId":'
        + _dumps(pn.id)
        + b',"nodeType":'
        + _dumps(pn.type_id)
        + b',"typeVersion":'
        + _dumps(pn.node_type.version)
    )


def _outcome(entry: dict[str, Any], res: NodeResult) -> dict[str, Any]:
    """``entry`` with what a node that did not complete has to say: who it is, its attempts,
    timings, the reason it was skipped, its error."""
    entry["nodeId"] = res.node_id
    entry["nodeType"] = res.node_type
    entry["attempts"] = res.attempts
    for name, value in (
        ("durationMs", res.duration_ms),
        ("cpuMs", res.cpu_ms),
        ("peakMemory", res.peak_memory),
        ("reason", res.reason),
        ("resumedFrom", res.resumed_from),
        ("injected", res.injected),
    ):
        if value is not None:
            entry[name] = value
    if res.error is not None:
        entry["error"] = _error(res.error)
    return entry


def _slim(head: dict[str, Any]) -> dict[str, Any]:
    return {k: head[k] for k in ("executionId", "flowId", "flowHash", "resumedFrom")}


def _error(err: Any) -> Any:
    if err is None:
        return None
    return wire.dump_error(err)
