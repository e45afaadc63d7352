"""Reading runs back from storage: history, one run's record and log, and what a resume reuses.

A run lives in ``runs/<execution id>/`` (see :mod:`atomiton_core.conductor.runlog` for what
is written and when). :class:`RunRecord` reads ``run.json``; a record still saying
``running`` whose writer is gone (its process on this host no longer exists) reads as
``interrupted``, with its nodes rebuilt from the log; a finished record of format 3 names
its nodes (``nodeLog``) and their entries are read from the log the same way.
:func:`read_events` reads the log,
ignoring a torn last line. :class:`PriorRun` is what ``execute(flow, resume=ID)`` reuses:
per node path, the key and the stored outputs of its last completion.

Records of earlier versions (one ``runs/<id>.json`` holding the result) are read too.

A new run's id is a UUID of version 7 (:func:`new_run_id`, from the ``uuid6`` package): its first
48 bits are when it was made, so :func:`list_records` orders the runs by their ids and reads only
as many records as a ``limit`` needs. Runs with other ids (given by a caller, or made before) are
read whole and merged by their start time.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic_core
import uuid6

from atomiton_core import codec, wire
from atomiton_core.errors import ConfigurationError, RunNotFound, StorageError, ValueNotEncodable
from atomiton_core.results import ExecutionResult, ExecutionStatus, NodeResult, NodeStatus

if TYPE_CHECKING:
    from atomiton_core.storage.flows import FlowStorage

__all__ = [
    "FORMAT",
    "INLINE_LIMIT",
    "SUMMARY_FILE",
    "SUMMARY_FROM",
    "PriorRun",
    "RunRecord",
    "StoredNode",
    "StoredOutputs",
    "digest",
    "digest_parts",
    "id_time",
    "list_records",
    "new_run_id",
    "pack",
    "pack_parts",
    "read_events",
    "read_events_after",
    "store_outputs",
    "unpack",
    "value_digest",
    "writer_alive",
]

#: A finished record larger than this gets ``summary.json`` beside it: the record without its
#: nodes and outputs (plus ``nodeCount``), what listing runs reads.
SUMMARY_FROM = 64 * 1024
SUMMARY_FILE = "summary.json"
#: Bytes of JSON a value may take inline in a log line or entry; larger ones go to a blob.
INLINE_LIMIT = 16 * 1024
#: Values that are their own codec tree (no walk needed).
_PLAIN = frozenset({int, bool, type(None)})
_dumps = pydantic_core.to_json

#: The record's format; readers refuse a newer one clearly.
FORMAT = 3
_BLOB_MAGIC = b"ATB1"


def digest(data: bytes | str) -> str:
    """The content digest used throughout the record (BLAKE2b, 128 bits, hex)."""
    if isinstance(data, str):
        data = data.encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def pack(head: bytes, blobs: list[bytes]) -> bytes:
    """A codec value's JSON tree and blobs as one blob file."""
    return b"".join(pack_parts(head, blobs))


def pack_parts(head: bytes, blobs: list[bytes]) -> list[bytes]:
    """What :func:`pack` joins, unjoined: written one after another, nothing is copied."""
    parts = [_BLOB_MAGIC, len(blobs).to_bytes(4, "big"), len(head).to_bytes(8, "big")]
    parts.extend(len(b).to_bytes(8, "big") for b in blobs)
    parts.append(head)
    parts.extend(blobs)
    return parts


def digest_parts(parts: list[bytes]) -> str:
    """:func:`digest` of the parts joined, without joining them."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part)
    return h.hexdigest()


def unpack(data: bytes) -> codec.Encoded:
    """What :func:`pack` wrote, as the codec's Encoded."""
    if data[:4] != _BLOB_MAGIC:
        raise ValueError("not a run-log blob")
    n = int.from_bytes(data[4:8], "big")
    sizes = [int.from_bytes(data[8 + 8 * k : 16 + 8 * k], "big") for k in range(n + 1)]
    pos = 16 + 8 * n
    frames = []
    for size in sizes:
        frames.append(data[pos : pos + size])
        pos += size
    return codec.from_frames(frames)


#: A running record from another host whose heartbeat is older than this was interrupted
#: (its writer rewrites it every 30 s).
STALE_S = 120.0


@dataclass(slots=True)
class StoredOutputs:
    """A node's outputs as the log and the cache store them."""

    #: ``{"port": tree or {"$ref": digest}, ...}`` as JSON.
    json: bytes
    #: Each port's digest (None: it could not be stored).
    digests: dict[str, str | None]
    #: The blobs the JSON refers to: (digest, the blob file's parts).
    blobs: list[tuple[str, list[bytes]]] = field(default_factory=list)
    #: Why these outputs may not be reused (a secret in them, a value no codec stores).
    why: str | None = None
    #: The port that could not be stored, and why.
    unstored: tuple[str, str] | None = None


def store_outputs(
    node_id: str,
    out: Mapping[str, Any],
    shown: Mapping[str, Any] | None = None,
    reused: Mapping[str, tuple[bytes, bytes | None]] | None = None,
) -> StoredOutputs:
    """A node's outputs in their stored form: each port's value through the codec, inline
    JSON when small, a blob (by digest) when large or binary; and each port's digest.

    ``shown``: the outputs with the run's secrets masked; when they differ the masked ones
    are stored, and marked not reusable. ``reused``: the stored form of outputs taken from
    an earlier run or the cache, per port (inline JSON, blob bytes None; or a blob's digest
    and its bytes), kept as it was.
    """
    why = None
    if shown is not None and shown is not out and shown != out:
        out, why = shown, "its outputs hold a secret"
    ports: list[bytes] = []
    digests: dict[str, str | None] = {}
    blobs: list[tuple[str, list[bytes]]] = []
    unstored = None
    for port, value in out.items():
        stored = reused.get(port) if reused is not None else None
        if stored is not None:
            text, data = stored
            if data is not None:  # text is the blob's digest
                d = text.decode()
                blobs.append((d, [data]))
                text = b'{"$ref":"' + text + b'"}'
            else:
                d = digest(text)
        elif type(value) in _PLAIN:  # its own tree: no walk, no blob
            text = _dumps(value)
            d = _SMALL.get(text) or _small_digest(text)
        else:
            try:
                enc = codec.encode(value, where=f"outputs.{port}", node_id=node_id)
                text = _dumps(enc.tree)
            except (ValueNotEncodable, ValueError, TypeError) as exc:
                digests[port] = None
                why = f"output {port!r} cannot be stored: {exc}"
                unstored = (port, str(exc))
                continue
            if enc.blobs or len(text) > INLINE_LIMIT:
                parts = pack_parts(text, enc.blobs)
                d = digest_parts(parts)
                blobs.append((d, parts))
                text = b'{"$ref":"' + d.encode() + b'"}'
            else:
                d = digest(text)
        digests[port] = d
        ports.append(_dumps(port) + b":" + text)
    return StoredOutputs(b"{" + b",".join(ports) + b"}", digests, blobs, why, unstored)


#: Digests of the JSON of small plain values (``true``, ``0``, ``null``...), which many nodes
#: output: a lookup is a tenth of a digest.
_SMALL: dict[bytes, str] = {}


def _small_digest(text: bytes) -> str:
    d = digest(text)
    if len(_SMALL) < 4096:
        _SMALL[text] = d
    return d


def value_digest(value: Any, where: str) -> str | None:
    """A digest of any value (variables, container inputs); None if it cannot be encoded."""
    if codec.is_own_tree(value):  # no walk
        data = _dumps(value)
        if len(data) <= 24:  # a small scalar (an index, a flag): maybe known already
            return _SMALL.get(data) or _small_digest(data)
        return digest(data)
    try:
        enc = codec.encode(value, where=where)
    except ValueNotEncodable:
        return None
    data = _dumps(enc.tree)
    return digest(pack(data, enc.blobs) if enc.blobs else data)


#: The status of a run whose writer died before it ended.
INTERRUPTED = "interrupted"
_FINAL = {"completed", "failed", "cancelled"}
_NODE_END = {
    "node.completed": "completed",
    "node.failed": "failed",
    "node.skipped": "skipped",
    "node.cancelled": "cancelled",
}


def writer_alive(writer: Any) -> bool | None:
    """Is the process that writes a record alive? None when it cannot be told (another host)."""
    import socket

    import psutil

    if not isinstance(writer, dict) or writer.get("host") != socket.gethostname():
        return None
    pid = writer.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return None
    recorded = writer.get("processStart")
    # a start time other than the one recorded: the pid was reused by another process
    return not (isinstance(recorded, int | float) and abs(started - recorded) > 1.0)


def _read_bytes(storage: FlowStorage, path: str) -> bytes | None:
    try:
        with storage.fs.open(path, "rb") as fh:
            data: bytes = fh.read()
            return data
    except FileNotFoundError:
        return None


def read_events(storage: FlowStorage, execution_id: str) -> list[dict[str, Any]]:
    """Every event of a run's log, in order; a torn last line (a killed writer) is left out."""
    return list(_events(storage, execution_id))


def read_events_after(
    storage: FlowStorage, execution_id: str, after: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A growing log read on from where a reader stopped: the events of its lines after the
    first ``after`` finished ones, and how many finished lines there are now (the next
    ``after``). Only those lines are decoded; a line still being written is not counted."""
    if after < 0:
        raise ConfigurationError(f"a log is read on from line 0 or later (got after={after})")
    events: list[dict[str, Any]] = []
    seen = 0
    for chunk in _log_chunks(storage, execution_id):
        lines = chunk.split(b"\n")
        for line in lines[:-1]:  # the last piece has no newline yet: not a finished line
            if not line.strip():
                continue
            seen += 1
            if seen <= after:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events, seen


def _log_chunks(storage: FlowStorage, execution_id: str) -> list[bytes]:
    """A run's log as written: ``events.jsonl``, then its segments (``events/``) in order."""
    folder = storage.run_folder(execution_id)
    chunks: list[bytes] = []
    whole = _read_bytes(storage, f"{folder}/events.jsonl")
    if whole is not None:
        chunks.append(whole)
    segments = f"{folder}/events"
    if storage.fs.exists(segments):
        for name in sorted(storage.fs.ls(segments, detail=False)):
            data = _read_bytes(storage, str(name))
            if data is not None:
                chunks.append(data)
    return chunks


def _events(storage: FlowStorage, execution_id: str) -> Iterator[dict[str, Any]]:
    for chunk in _log_chunks(storage, execution_id):
        for line in chunk.split(b"\n"):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the line a killed writer left half written
            if isinstance(event, dict):
                yield event


_REF = re.compile(r"[0-9a-f]{32}")


def _blob_path(folder: str, ref: Any) -> str:
    """Where a referenced blob is; a reference that is not a digest is refused (a record
    edited by hand must not lead a reader elsewhere)."""
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        raise StorageError(f"the run in {folder} refers to a blob {ref!r}, which is not a digest")
    return f"{folder}/blobs/{ref}"


def _decode_stored(storage: FlowStorage, folder: str, tree: Any) -> Any:
    if isinstance(tree, dict) and set(tree) == {"$ref"}:
        data = _read_bytes(storage, _blob_path(folder, tree["$ref"]))
        if data is None:
            raise StorageError(f"blob {tree['$ref']} of the run in {folder} is missing")
        return codec.decode(unpack(data))
    return codec.decode(codec.Encoded(tree, []))


@dataclass
class StoredNode:
    """A node's outputs as a run stored them, and the key they were stored under."""

    storage: FlowStorage
    execution_id: str
    path: str
    key: str
    trees: dict[str, Any]
    #: Per port, what the new run's log writes again: inline JSON (blob bytes None), or a
    #: blob's digest and its bytes. Filled by :meth:`load`.
    stored: dict[str, tuple[bytes, bytes | None]] = field(default_factory=dict)
    #: The folder whose ``blobs/`` holds the blobs (default: the run's own folder).
    folder: str | None = None

    def load(self) -> dict[str, Any]:
        """The outputs, decoded (blobs read from the run's folder)."""
        folder = self.folder or self.storage.run_folder(self.execution_id)
        out: dict[str, Any] = {}
        for port, tree in self.trees.items():
            if isinstance(tree, dict) and set(tree) == {"$ref"}:
                ref = str(tree["$ref"])
                data = _read_bytes(self.storage, _blob_path(folder, ref))
                if data is None:
                    raise StorageError(f"blob {ref} of run {self.execution_id} is missing")
                out[port] = codec.decode(unpack(data))
                self.stored[port] = (ref.encode(), data)
            else:
                out[port] = codec.decode(codec.Encoded(tree, []))
                self.stored[port] = (pydantic_core.to_json(tree), None)
        return out


class PriorRun:
    """The nodes a resume may reuse: per path, its last completion's key and outputs."""

    def __init__(self, execution_id: str, nodes: dict[str, StoredNode]) -> None:
        self.execution_id = execution_id
        self.nodes = nodes

    def reusable(self, path: str, key: str) -> StoredNode | None:
        node = self.nodes.get(path)
        return node if node is not None and node.key == key else None

    @classmethod
    def load(cls, storage: FlowStorage, execution_id: str) -> PriorRun:
        record = RunRecord.load(storage, execution_id)
        if record.status == "running":
            raise ConfigurationError(
                f"run {execution_id!r} is still running; it can be resumed once it ends",
                hint="cancel it first, or wait for it",
            )
        if record.mode != "full":
            raise ConfigurationError(
                f"run {execution_id!r} was recorded without its outputs "
                f"(record={record.mode!r}), so it cannot be resumed",
                hint='record runs with record="full" (the default) to resume them',
            )
        nodes: dict[str, StoredNode] = {}
        for event in _events(storage, execution_id):
            if event.get("type") != "node.completed":
                continue
            path, key, outputs = event.get("path"), event.get("key"), event.get("outputs")
            if isinstance(path, str) and isinstance(key, str) and isinstance(outputs, dict):
                nodes[path] = StoredNode(storage, execution_id, path, key, outputs)
            elif isinstance(path, str):
                nodes.pop(path, None)  # completed again, not storable this time
        return cls(execution_id, nodes)


@dataclass
class RunRecord:
    """One stored run: its record (``run.json``), as the writer left it or, for a run that
    was interrupted, completed from its log."""

    storage: FlowStorage
    execution_id: str
    data: dict[str, Any]
    #: Read from ``summary.json``: no nodes or outputs until they are asked for.
    brief: bool = False

    @property
    def status(self) -> str:
        return str(self.data.get("status", "unknown"))

    @property
    def mode(self) -> str:
        return str(self.data.get("record", "summary"))

    @property
    def flow_id(self) -> str:
        return str(self.data.get("flowId", ""))

    @property
    def started_at(self) -> float | None:
        value = self.data.get("startedAt")
        return float(value) if isinstance(value, int | float) else None

    @property
    def trigger(self) -> dict[str, Any] | None:
        """What started the run by itself (a trigger of ``atomiton serve``: its flow, id,
        type, ``firedAt`` and what fired it), or None for a run someone started."""
        value = self.data.get("trigger")
        return value if isinstance(value, dict) else None

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        self._whole()
        nodes = self.data.get("nodes")
        return nodes if isinstance(nodes, dict) else {}

    def _whole(self) -> None:
        """A brief record (listed from its summary) reads its whole record when needed; a
        record whose nodes are in its log (``nodeLog``) reads them from there."""
        if self.brief:
            self.data = RunRecord.load(self.storage, self.execution_id).data
            self.brief = False

    @classmethod
    def load(cls, storage: FlowStorage, execution_id: str, *, brief: bool = False) -> RunRecord:
        """A stored run's record; ``brief``: from its summary when it has one (a large
        record, finished), without its nodes and outputs until they are asked for."""
        folder = storage.run_folder(execution_id)
        if brief:
            short = _read_bytes(storage, f"{folder}/{SUMMARY_FILE}")
            if short is not None:
                try:
                    data = json.loads(short)
                except ValueError:
                    data = None  # the record itself says
                if isinstance(data, dict) and data.get("status") in _FINAL:
                    return cls(storage, execution_id, data, brief=True)
        raw = _read_bytes(storage, f"{folder}/run.json")
        if raw is None:
            legacy = _read_bytes(storage, storage.legacy_run_location(execution_id))
            if legacy is None:
                raise RunNotFound(
                    f"no run {execution_id!r} in storage {storage.url}",
                    hint="storage.runs() gives the stored runs (`atomiton runs list`, "
                    "GET /api/runs)",
                )
            return cls(storage, execution_id, _from_legacy(json.loads(legacy)))
        try:
            data = json.loads(raw)
        except ValueError as exc:  # written atomically: only a foreign hand breaks it
            raise StorageError(f"run record {folder}/run.json is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise StorageError(f"run record {folder}/run.json is not an object")
        if isinstance(data.get("format"), int) and data["format"] > FORMAT:
            raise StorageError(
                f"run {execution_id!r} was recorded by a newer version (format "
                f"{data['format']}); this one reads format {FORMAT}",
                hint="upgrade atomiton-core to read it",
            )
        record = cls(storage, execution_id, data)
        if record.status == "running":
            alive = writer_alive(data.get("writer"))
            if alive is None:  # another host: its heartbeat says
                beat = data.get("heartbeatAt", data.get("startedAt"))
                alive = isinstance(beat, int | float) and time.time() - beat < STALE_S
            record._rebuild(interrupted=not alive)
        elif "nodeLog" in data:  # finished, its nodes' entries in the log (format 3)
            if brief:
                record.brief = True
                data.setdefault("nodeCount", len(data["nodeLog"]))
            else:
                record._rebuild(interrupted=False)
        return record

    def _rebuild(self, *, interrupted: bool) -> None:
        """A run still going, or whose writer died: its nodes as the log has them so far; the
        run and its running nodes ``interrupted`` if the writer is gone."""
        data = self.data
        nodes: dict[str, dict[str, Any]] = {}
        last = self.started_at or 0.0
        for event in _events(self.storage, self.execution_id):
            kind = event.get("type")
            t = event.get("t")
            if isinstance(t, int | float):
                last = max(last, float(t))
            path = event.get("path")
            if not isinstance(path, str):
                continue
            entry = nodes.setdefault(
                path,
                {"nodeId": event.get("nodeId"), "nodeType": event.get("nodeType")},
            )
            if kind == "node.started":
                entry["status"] = "running"
                entry["attempts"] = event.get("attempt", 1)
                entry.setdefault("startedAt", t)
            elif kind in _NODE_END:
                started = entry.get("startedAt")
                entry.update(event)  # all it says: timings, error, key, digests, outputs...
                del entry["type"], entry["path"]
                entry["status"] = event.get("status") or _NODE_END[str(kind)]
                if started is not None:  # its node.started line said when it first started
                    entry["startedAt"] = started
        order = data.pop("nodeLog", None)
        if isinstance(order, list):  # finished, its ended nodes in the log (format 3)
            written = data.get("nodes")
            written = written if isinstance(written, dict) else {}
            nodes = {
                p: written[p] if p in written else nodes[p]
                for p in order
                if isinstance(p, str) and (p in written or p in nodes)
            }
        data["nodes"] = nodes
        if not interrupted:
            return
        for entry in nodes.values():
            if entry.get("status") == "running":
                entry["status"] = INTERRUPTED
        data["status"] = INTERRUPTED
        data["endedAt"] = last
        if self.started_at is not None:
            data["durationMs"] = (last - self.started_at) * 1000
        data["error"] = {
            "code": "INTERRUPTED",
            "message": "the process running it ended before it did (killed, or a crash)",
            "hint": f"resume it: conductor.run(flow, resume={self.execution_id!r}) "
            f"(`atomiton run {self.flow_id} --resume {self.execution_id}`)",
        }

    def summary(self) -> dict[str, Any]:
        """What a list of runs shows of it."""
        data = self.data
        error = data.get("error")
        return {
            "executionId": self.execution_id,
            "flowId": self.flow_id,
            "status": self.status,
            "startedAt": wire.iso(self.started_at),
            "durationMs": data.get("durationMs"),
            "nodes": data["nodeCount"] if self.brief else len(self.nodes),
            "error": error.get("message") if isinstance(error, dict) else None,
            "resumedFrom": data.get("resumedFrom"),
            "trigger": self.trigger,
        }

    def to_result(self) -> ExecutionResult:
        """The run as an ExecutionResult (an interrupted one as ``failed``, its error saying
        so; outputs decoded, blobs read)."""
        self._whole()
        data = self.data
        folder = self.storage.run_folder(self.execution_id)
        status = self.status
        result = ExecutionResult(
            self.execution_id,
            self.flow_id,
            ExecutionStatus(status) if status in _FINAL else ExecutionStatus.FAILED,
        )
        if status == "running":
            result.status = ExecutionStatus.RUNNING
        result.started_at = self.started_at
        result.duration_ms = data.get("durationMs")
        result.error = wire.load_error(data.get("error"))
        outputs = data.get("outputs")
        if isinstance(outputs, dict):
            try:  # per node, per port: a value's tree, or a blob by reference
                result.outputs = {
                    node_id: {
                        port: _decode_stored(self.storage, folder, tree)
                        for port, tree in ports.items()
                    }
                    if isinstance(ports, dict)
                    else ports
                    for node_id, ports in outputs.items()
                }
            except Exception:
                result.outputs = outputs
        for path, entry in self.nodes.items():
            node_status = entry.get("status")
            res = NodeResult(
                str(entry.get("nodeId") or path.rsplit("/", 1)[-1]),
                str(entry.get("nodeType") or ""),
                path,
                NodeStatus(str(node_status))
                if node_status in NodeStatus._value2member_map_
                else NodeStatus.CANCELLED,
            )
            res.attempts = int(entry.get("attempts") or 0)
            res.started_at = entry.get("startedAt")
            res.duration_ms = entry.get("durationMs")
            res.cpu_ms = entry.get("cpuMs")
            res.peak_memory = entry.get("peakMemory")
            res.reason = entry.get("reason")
            if node_status == INTERRUPTED:
                res.reason = INTERRUPTED
            res.resumed_from = entry.get("resumedFrom")
            res.injected = entry.get("injected")
            res.error = wire.load_error(entry.get("error"))
            stored = entry.get("outputs")
            if isinstance(stored, dict):
                try:
                    res.outputs = {
                        port: _decode_stored(self.storage, folder, tree)
                        for port, tree in stored.items()
                    }
                except Exception:
                    res.outputs = stored
            result.nodes[path] = res
        return result


def _from_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """A record of an earlier version (the result's wire form) in the current shape."""
    result = wire.load(ExecutionResult, data)
    nodes = {}
    for path, res in result.nodes.items():
        entry = wire.dump(res)
        entry.pop("path", None)
        if res.outputs is not None:
            entry["outputs"] = codec.encode(res.outputs).tree
        nodes[path] = entry
    return {
        "format": 1,
        "record": "summary",
        "executionId": result.execution_id,
        "flowId": result.flow_id,
        "status": str(result.status),
        "startedAt": result.started_at,
        "durationMs": result.duration_ms,
        "error": data.get("error"),
        "outputs": codec.encode(result.outputs).tree,
        "nodes": nodes,
    }


def new_run_id() -> str:
    """A new run's id: a UUID of version 7 (RFC 9562) as 32 hex digits. Its first 48 bits are
    the time in milliseconds, so ids sort as their runs started (within a millisecond too)."""
    return uuid6.uuid7().hex


_TIMED_ID = re.compile(r"[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}")
_EARLIEST_ID_TIME = 1.6e12  # 2020: an id of this shape from before is not one of ours
#: How far an id's time may run ahead of its run's start: ids made in the same millisecond
#: take the following milliseconds (uuid6's monotonic ids), and processes' clocks differ.
_ID_TIME_SLACK = 60.0


def id_time(execution_id: str) -> float | None:
    """The time in a run id of :func:`new_run_id` (seconds since the epoch): when it was made,
    or a little after for ids made in a burst (each id in the same millisecond takes the next
    one); None for any other id, or one whose time is implausible (before 2020, a day ahead)."""
    if not _TIMED_ID.fullmatch(execution_id):
        return None
    ms = int(execution_id[:12], 16)
    if ms < _EARLIEST_ID_TIME or ms > (time.time() + 86_400) * 1000:
        return None
    return ms / 1000


def list_records(
    storage: FlowStorage,
    *,
    flow_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    before: str | None = None,
) -> list[RunRecord]:
    """The stored runs' records, newest first, of one flow and in one status if given; large
    finished ones brief (read from their summaries).

    ``limit``: at most that many; records are read newest first until it is reached (runs with
    time-ordered ids, see :func:`new_run_id`; any others are all read). ``before``: only runs
    that started before that run (the last one of a page), for the next page.
    """
    if limit is not None and limit < 0:
        raise ConfigurationError(f"a limit of runs must be 0 or more (got {limit})")
    timed: list[tuple[float, str]] = []
    others: list[tuple[tuple[float, str], RunRecord]] = []
    for eid in storage.list_runs():
        at = id_time(eid)
        if at is not None:
            timed.append((at, eid))
        elif (record := _try_load(storage, eid)) is not None:
            others.append(((record.started_at or 0.0, eid), record))
    bound = _position(storage, before) if before is not None else None
    bound_timed = before is not None and id_time(before) is not None
    timed.sort(reverse=True)
    others.sort(key=lambda pair: pair[0], reverse=True)

    def read_timed() -> Iterator[tuple[tuple[float, str], RunRecord]]:
        # in the order of their ids, which is the order of their start times; a record's own
        # start time is its key, as for the others (an id's time is cut to the millisecond)
        for at, eid in timed:
            if bound is not None and (
                eid >= bound[1] if bound_timed else at > bound[0] + _ID_TIME_SLACK
            ):
                continue  # made after the bound: not read
            if (record := _try_load(storage, eid)) is not None:
                yield (record.started_at or at, eid), record

    def kept(pairs: Iterable[tuple[tuple[float, str], RunRecord]]) -> Iterator[RunRecord]:
        for key, record in pairs:
            if bound is not None and key >= bound:
                continue
            if (flow_id is None or record.flow_id == flow_id) and (
                status is None or record.status == status
            ):
                yield record

    merged = kept(heapq.merge(read_timed(), others, key=lambda pair: pair[0], reverse=True))
    return list(itertools.islice(merged, limit))  # the merge reads no record past the limit


def _try_load(storage: FlowStorage, execution_id: str) -> RunRecord | None:
    """A run's brief record, or None when it cannot be read (being deleted, torn, foreign)."""
    try:
        return RunRecord.load(storage, execution_id, brief=True)
    except (RunNotFound, StorageError, ValueError):
        return None


def _position(storage: FlowStorage, execution_id: str) -> tuple[float, str]:
    """Where a run stands in the newest-first order (for ``before=``); RunNotFound if absent."""
    record = RunRecord.load(storage, execution_id, brief=True)
    return (record.started_at or id_time(execution_id) or 0.0, execution_id)
