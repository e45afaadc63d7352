"""Per-flow statistics over its last runs: how long each node takes and how often it fails.

:func:`flow_stats` reads the newest runs of one flow (by start time) and gives, for the runs,
their count per status and the p50 / p95 of their durations, and for every node (children
of containers included) how many runs it ran in, the p50 / p95 of its durations, its failure
rate, how often it was answered from the cache or skipped, and its mean attempts.

- Percentiles are **nearest-rank**: the p-th percentile of n values is the value at rank
  ``ceil(p / 100 * n)`` of them sorted (1-based), so it is always one of the durations
  measured (the p50 of 1, 2, 3, 4 is 2; the p95 of fewer than 20 values is the largest).
- Runs still going, or whose writer died (``interrupted``: a record without an end), are
  counted apart (``unfinished``): their nodes count neither as runs nor as failures.
- A node is named by its place in the flow: the ids of its containers and its own id,
  joined by ``/`` (``batch/clean``); the iterations of a loop or parallel node fold into
  one (``batch/iteration 3/clean`` is ``batch/clean``), and each counts as an execution.
- A node *ran* when it completed or failed (cached, pinned, skipped, cancelled and resumed
  ones did not do their work to an end); durations, the failure rate (failed / ran) and the
  mean attempts are over those.

Records are read for what is needed: a finished run's node entries are the end lines of its
log, read without their ``outputs`` (neither parsed nor their blobs opened), and of a large
record (listed from its summary) only the node list at its end is parsed, not the flow's
outputs before it. Should a file not have the layout the writer gives it
(:mod:`atomiton_core.conductor.runlog`), it is read whole instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atomiton_core.errors import ConfigurationError, FlowNotFound, InvalidFlowId
from atomiton_core.storage.runs import RunRecord
from atomiton_core.wire import CONFIG, Timestamp

if TYPE_CHECKING:
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["DEFAULT_LAST", "FlowStats", "NodeStats", "flow_stats", "percentile"]

#: How many of a flow's newest runs the statistics cover unless told.
DEFAULT_LAST = 50
#: Run statuses with an end; the others (``running``, ``interrupted``) are unfinished.
FINISHED = frozenset({"completed", "failed", "cancelled"})
#: Node statuses of a node that did its work to an end.
_RAN = frozenset({"completed", "failed"})
#: The log lines that end a node: their entry is the node's in the record.
_END_PREFIXES = tuple(
    b'{"type":"node.' + kind + b'"' for kind in (b"completed", b"failed", b"skipped", b"cancelled")
)
#: Where a finished record's node list begins: its last two keys are ``nodeLog`` and
#: ``nodes`` (entries of nodes that never started, which hold no list under that name).
_NODE_LOG = b',"nodeLog":['
#: Where a ``node.completed`` line's outputs begin: always its last key, and an object (no
#: key before it holds an object of objects, so the first match is the top-level key).
_OUTPUTS = b',"outputs":{'


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; None if empty."""
    if not 0 < p <= 100:
        raise ConfigurationError(f"a percentile is over 0 and at most 100 (got {p!r})")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


@dataclass(slots=True)
class NodeStats:
    """One node over a flow's last finished runs (see the module's docstring)."""

    __pydantic_config__ = CONFIG

    #: Its place in the flow: container ids and its own id (``batch/clean``).
    node: str
    node_id: str
    #: Its node type in the newest run it appears in.
    node_type: str
    #: Finished runs in which it ran (completed or failed) at least once.
    runs: int = 0
    #: Times it ran (completed or failed); a loop's child once per iteration.
    ran: int = 0
    failed: int = 0
    #: ``failed / ran``; None if it never ran.
    failure_rate: float | None = None
    cached: int = 0
    skipped: int = 0
    #: Nearest-rank percentiles of the durations of the times it ran, in milliseconds.
    p50_ms: float | None = None
    p95_ms: float | None = None
    #: Attempts per time it ran (retries make it more than 1).
    mean_attempts: float | None = None
    #: Its entries per status (``resumed`` for outputs reused by a resume).
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class FlowStats:
    """A flow's last runs: counts, run durations, and each node's figures."""

    __pydantic_config__ = CONFIG

    flow_id: str
    #: How many of the newest runs were asked for.
    last: int
    #: How many there were (at most ``last``).
    runs: int = 0
    #: Per status, those runs (``running`` and ``interrupted`` included).
    statuses: dict[str, int] = field(default_factory=dict)
    #: Runs with an end (completed, failed, cancelled): what the figures are over.
    finished: int = 0
    #: Runs still going or whose writer died: counted here only.
    unfinished: int = 0
    #: Nearest-rank percentiles of the finished runs' durations, in milliseconds.
    p50_ms: float | None = None
    p95_ms: float | None = None
    #: Start of the oldest and of the newest run counted.
    since: Timestamp = None
    until: Timestamp = None
    #: Every node seen, in the order of the runs (newest first), children after their container.
    nodes: list[NodeStats] = field(default_factory=list)

    def node(self, name: str) -> NodeStats:
        """A node's figures by its place in the flow (``batch/clean``) or, if unique, its id."""
        for entry in self.nodes:
            if entry.node == name:
                return entry
        found = [n for n in self.nodes if n.node_id == name]
        if len(found) == 1:
            return found[0]
        raise KeyError(
            f"no node {name!r} in the statistics of flow {self.flow_id!r}"
            + (f" ({len(found)} nodes have that id: name it by its place)" if found else "")
        )


def flow_stats(storage: FlowStorage, flow_id: str, *, last: int = DEFAULT_LAST) -> FlowStats:
    """Statistics over the ``last`` newest runs of ``flow_id`` in ``storage``; FlowNotFound
    when the flow is neither stored nor has runs (a stored flow without runs has none)."""
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ConfigurationError(
            f"statistics are over the last 1 or more runs (got last={last!r})",
            hint="give last=N, a whole number of runs (`atomiton runs stats FLOW --last N`)",
        )
    records = storage.runs(flow_id=flow_id, limit=last)
    stats = FlowStats(flow_id, last, runs=len(records))
    if not records and not _stored(storage, flow_id):
        raise FlowNotFound(
            f"no flow {flow_id!r} in storage {storage.url}, and no runs of it",
            hint="storage.list() gives the stored flows and storage.runs() the runs "
            "(`atomiton flows list`, `atomiton runs list`)",
        )
    durations: list[float] = []
    nodes: dict[str, _NodeTally] = {}
    for index, record in enumerate(records):
        stats.statuses[record.status] = stats.statuses.get(record.status, 0) + 1
        if record.status not in FINISHED:
            stats.unfinished += 1
            continue
        stats.finished += 1
        duration = record.data.get("durationMs")
        if isinstance(duration, int | float):
            durations.append(float(duration))
        _tally_run(nodes, index, _node_entries(record))
    stats.p50_ms = percentile(durations, 50)
    stats.p95_ms = percentile(durations, 95)
    started = [r.started_at for r in records if r.started_at is not None]
    if started:
        stats.since, stats.until = min(started), max(started)
    stats.nodes = [nodes[place].stats() for place in _tree_order(nodes)]
    return stats


def _tree_order(places: Iterable[str]) -> list[str]:
    """Places in the order first seen, each container's children right after it."""
    seen = {place: i for i, place in enumerate(places)}
    last = len(seen)

    def key(place: str) -> tuple[int, ...]:
        parts = place.split("/")
        return tuple(seen.get("/".join(parts[: k + 1]), last) for k in range(len(parts)))

    return sorted(seen, key=key)


def _stored(storage: FlowStorage, flow_id: str) -> bool:
    try:
        return storage.exists(flow_id)
    except InvalidFlowId:  # an id no stored flow can have
        return False


@dataclass(slots=True)
class _NodeTally:
    node: str
    node_id: str
    node_type: str
    runs: int = 0
    failed: int = 0
    cached: int = 0
    skipped: int = 0
    durations: list[float] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    #: The run it last ran in (counted once in ``runs`` however many times it ran there).
    seen_in: int = -1

    def stats(self) -> NodeStats:
        ran = len(self.attempts)
        return NodeStats(
            node=self.node,
            node_id=self.node_id,
            node_type=self.node_type,
            runs=self.runs,
            ran=ran,
            failed=self.failed,
            failure_rate=self.failed / ran if ran else None,
            cached=self.cached,
            skipped=self.skipped,
            p50_ms=percentile(self.durations, 50),
            p95_ms=percentile(self.durations, 95),
            mean_attempts=sum(self.attempts) / ran if ran else None,
            statuses=self.statuses,
        )


def _tally_run(nodes: dict[str, _NodeTally], run: int, entries: dict[str, dict[str, Any]]) -> None:
    """Add the node entries (by path) of finished run number ``run`` to the tallies (by
    place in the flow)."""
    places: dict[str, str] = {}
    for path, entry in entries.items():
        node_id = entry.get("nodeId")
        node_id = str(node_id) if node_id is not None else path.rsplit("/", 1)[-1]
        place = _place(path, node_id, entries, places)
        tally = nodes.get(place)
        if tally is None:
            tally = nodes[place] = _NodeTally(place, node_id, str(entry.get("nodeType") or ""))
        status = str(entry.get("status") or "unknown")
        if status == "completed" and entry.get("resumedFrom"):
            status = "resumed"
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if status == "cached":
            tally.cached += 1
        elif status == "skipped":
            tally.skipped += 1
        if status not in _RAN:
            continue
        if tally.seen_in != run:
            tally.seen_in = run
            tally.runs += 1
        if status == "failed":
            tally.failed += 1
        attempts = entry.get("attempts")
        tally.attempts.append(attempts if isinstance(attempts, int) else 1)
        duration = entry.get("durationMs")
        if isinstance(duration, int | float):
            tally.durations.append(float(duration))


def _place(path: str, node_id: str, entries: dict[str, Any], places: dict[str, str]) -> str:
    """A node's place in the flow: its parent's place (the longest path before it that is a
    node of the run, so iteration labels drop out) and its id."""
    known = places.get(path)
    if known is not None:
        return known
    place = node_id
    cut = path.rfind("/")
    while cut > 0:
        parent = path[:cut]
        if parent in entries:
            parent_id = entries[parent].get("nodeId")
            parent_id = str(parent_id) if parent_id is not None else parent.rsplit("/", 1)[-1]
            place = f"{_place(parent, parent_id, entries, places)}/{node_id}"
            break
        cut = path.rfind("/", 0, cut)
    places[path] = place
    return place


def _node_entries(record: RunRecord) -> dict[str, dict[str, Any]]:
    """A finished run's node entries by path, in the record's order, without outputs where
    the record keeps its nodes in its log (format 3)."""
    data = record.data
    if record.brief and "nodeLog" not in data:  # listed from its summary: the record says
        raw = _read(record.storage, f"{record.storage.run_folder(record.execution_id)}/run.json")
        data = _record_nodes(raw) if raw is not None else {}
    order = data.get("nodeLog")
    written = data.get("nodes")
    written = written if isinstance(written, dict) else {}
    if not isinstance(order, list):  # its nodes are in the record itself
        return {p: e for p, e in written.items() if isinstance(e, dict)}
    logged = _logged_ends(record.storage, record.storage.run_folder(record.execution_id))
    entries: dict[str, dict[str, Any]] = {}
    for path in order:
        if not isinstance(path, str):
            continue
        entry = written.get(path) if path in written else logged.get(path)
        if isinstance(entry, dict):
            entries[path] = entry
    return entries


def _record_nodes(raw: bytes) -> dict[str, Any]:
    """``nodeLog`` and ``nodes`` of a record's JSON: its last two keys when it has a log
    (format 3), read alone, without the flow's outputs before them; else the whole record."""
    cut = raw.rfind(_NODE_LOG)
    if cut > 0:
        try:
            tail = json.loads(b"{" + raw[cut + 1 :])
        except ValueError:
            tail = None  # not the layout it was written in: read it whole
        if isinstance(tail, dict) and set(tail) == {"nodeLog", "nodes"}:
            return tail
    whole = json.loads(raw)
    return whole if isinstance(whole, dict) else {}


def _logged_ends(storage: FlowStorage, folder: str) -> dict[str, dict[str, Any]]:
    """Per path, the last line of the log that ended the node, its outputs left unread
    (the lines are looked at in place: only the part before the outputs is copied)."""
    ends: dict[str, dict[str, Any]] = {}
    for chunk in _log_files(storage, folder):
        pos, size = 0, len(chunk)
        while pos < size:
            stop = chunk.find(b"\n", pos)
            stop = size if stop < 0 else stop
            if chunk.startswith(_END_PREFIXES, pos) and chunk[stop - 1 : stop] == b"}":
                event = _without_outputs(chunk, pos, stop)
                path = event.get("path") if event is not None else None
                if event is not None and isinstance(path, str):
                    event.setdefault("status", str(event.get("type", "node.?"))[5:])
                    ends[path] = event
            pos = stop + 1
    return ends


def _without_outputs(chunk: bytes, start: int, stop: int) -> dict[str, Any] | None:
    """The log line ``chunk[start:stop]`` as JSON, less its ``outputs``; None if torn."""
    cut = chunk.find(_OUTPUTS, start, stop)
    if cut > 0:
        try:
            head = json.loads(chunk[start:cut] + b"}")
        except ValueError:
            head = None  # not the layout it was written in: read it whole
        if isinstance(head, dict):
            return head
    try:
        event = json.loads(chunk[start:stop])
    except ValueError:
        return None  # the line a killed writer left half written
    if isinstance(event, dict):
        event.pop("outputs", None)
        return event
    return None


def _log_files(storage: FlowStorage, folder: str) -> Iterator[bytes]:
    """A run's log: ``events.jsonl``, or its numbered segments (object stores)."""
    names = [f"{folder}/events.jsonl"]
    segments = f"{folder}/events"
    if storage.fs.exists(segments):
        names += sorted(str(n) for n in storage.fs.ls(segments, detail=False))
    for name in names:
        chunk = _read(storage, name)
        if chunk:
            yield chunk


def _read(storage: FlowStorage, path: str) -> bytes | None:
    try:
        with storage.fs.open(path, "rb") as fh:
            data: bytes = fh.read()
            return data
    except FileNotFoundError:
        return None
