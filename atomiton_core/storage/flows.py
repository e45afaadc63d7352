"""Flow and run-record storage on any fsspec URL.

Layout under the root: ``flows/<id>.flow.yaml`` and ``runs/<execution id>/`` (a run's record,
log and blobs: see :mod:`atomiton_core.conductor.runlog`). Saves are atomic, so a crash
mid-save leaves the previous file intact.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atomiton_core import signals, wire
from atomiton_core.errors import (
    FlowLoadError,
    FlowNotFound,
    InvalidFlowId,
    RunNotFound,
    StorageError,
)
from atomiton_core.files import atomic_write_text, backend_hint
from atomiton_core.flow.models import Flow
from atomiton_core.flow.yaml_io import dumps_flow, loads_flow, read_plain
from atomiton_core.storage.runs import RunRecord, list_records
from atomiton_core.storage.stats import DEFAULT_LAST, FlowStats, flow_stats

__all__ = ["FlowStorage", "FlowSummary", "create_storage", "default_storage_url"]

_log = logging.getLogger("atomiton.storage")

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
FLOW_SUFFIX = ".flow.yaml"


def check_id(kind: str, value: str) -> str:
    """Refuse ids that could escape the storage root (``../x``, ``/etc/passwd``, ``a/b``)."""
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or ".." in value:
        raise InvalidFlowId(
            f"{kind} id {value!r} cannot be stored: ids are 1-200 letters, digits, '.', '_' "
            "or '-', start with a letter or digit, and never contain '..' or '/'",
            hint="rename it, e.g. to "
            + repr(re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip(".-") or "my-flow"),
        )
    return value


def default_storage_url() -> str:
    """``$ATOMITON_STORAGE``, or a folder in the user's data directory."""
    env = os.environ.get("ATOMITON_STORAGE")
    if env:
        return env
    import platformdirs

    return platformdirs.user_data_dir("atomiton", appauthor=False)


@dataclass(frozen=True, slots=True)
class FlowSummary:
    id: str
    name: str | None
    description: str | None
    location: str


class FlowStorage:
    """Flows and run records under one fsspec root."""

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.url = url

    def __repr__(self) -> str:
        return f"FlowStorage({self.url!r})"

    def _join(self, *parts: str) -> str:
        return (
            "/".join([self.root.rstrip("/"), *parts]) if self.root != "/" else "/" + "/".join(parts)
        )

    def flow_location(self, flow_id: str) -> str:
        """Where the flow ``flow_id`` is (or would be) stored; refuses ids that could escape
        the storage's folder (``INVALID_FLOW_ID``)."""
        return self._join("flows", check_id("flow", flow_id) + FLOW_SUFFIX)

    # -- flows ---------------------------------------------------------------------------
    def save(self, flow: Flow) -> str:
        """Store a flow as ``<id>.flow.yaml``; comments and layout it was loaded with stay.

        A save that changes what is stored stamps ``metadata.updated`` with the time, and
        ``metadata.created`` too unless the flow or the stored file has one (the original's
        storage did the same, ``engines/FilesystemStorage.ts``); the flow given is stamped as
        well. A save that changes nothing (the flow's text is the stored file's) writes
        nothing: the file keeps its bytes, its modification time and its stamps.
        """
        location = self.flow_location(flow.id)
        text = dumps_flow(flow)
        stored = self._stored_text(location)
        if text != stored:
            _stamp(flow, stored)
            text = dumps_flow(flow)
            try:
                atomic_write_text(location, text, fs=self.fs)
            except OSError as exc:
                raise StorageError(f"cannot save flow {flow.id!r} to {location}: {exc}") from exc
        if signals.flow_saved.receivers:
            signals.send_observed(
                signals.flow_saved,
                self,
                signals.FlowEvent("flow.saved", flow.id, location, time.time()),
            )
        return location

    def _stored_text(self, location: str) -> str | None:
        """The text stored at ``location``; None if there is none, or it cannot be read (the
        save then writes it anew)."""
        try:
            with self.fs.open(location, "rb") as fh:
                data: bytes = fh.read()
            return data.decode("utf-8")
        except (OSError, UnicodeDecodeError):  # FileNotFoundError included
            return None

    def save_text(self, text: str, *, source: str = "<text>") -> Flow:
        """Parse YAML text, then store it; a text that is not a flow is refused."""
        flow = loads_flow(text, source=source)
        self.save(flow)
        return flow

    def load(self, flow_id: str) -> Flow:
        """The stored flow ``flow_id`` (``FLOW_NOT_FOUND`` if there is none), ready to be
        saved again with its comments and layout."""
        location = self.flow_location(flow_id)
        try:
            with self.fs.open(location, "rb") as fh:
                text = fh.read().decode("utf-8")
        except FileNotFoundError:
            raise FlowNotFound(
                f"no flow {flow_id!r} in storage {self.url}",
                hint="storage.list() gives the stored flows (`atomiton flows list`, "
                "GET /api/flows)",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read flow {flow_id!r} from {location}: {exc}") from exc
        return loads_flow(text, source=location)

    def exists(self, flow_id: str) -> bool:
        """Whether a flow ``flow_id`` is stored."""
        return bool(self.fs.exists(self.flow_location(flow_id)))

    def delete(self, flow_id: str) -> None:
        """Remove the stored flow ``flow_id`` (``FLOW_NOT_FOUND`` if there is none); its runs
        stay."""
        location = self.flow_location(flow_id)
        if not self.fs.exists(location):
            raise FlowNotFound(f"no flow {flow_id!r} in storage {self.url}")
        self.fs.rm(location)
        if signals.flow_deleted.receivers:
            signals.send_observed(
                signals.flow_deleted,
                self,
                signals.FlowEvent("flow.deleted", flow_id, location, time.time()),
            )

    def list(self) -> list[FlowSummary]:
        """Every stored flow, sorted by id; unreadable files are listed with a note as name."""
        folder = self._join("flows")
        if not self.fs.exists(folder):
            return []
        found: list[FlowSummary] = []
        for path in sorted(self.fs.ls(folder, detail=False)):
            name = str(path).rsplit("/", 1)[-1]
            if not name.endswith(FLOW_SUFFIX) or name.startswith("."):
                continue
            flow_id = name[: -len(FLOW_SUFFIX)]
            try:
                flow = self.load(flow_id)
            except (FlowLoadError, StorageError) as exc:
                found.append(FlowSummary(flow_id, None, f"unreadable: {exc.message}", str(path)))
                continue
            found.append(FlowSummary(flow.id, flow.name, flow.description, str(path)))
        return found

    # -- runs ------------------------------------------------------------------------------
    def run_folder(self, execution_id: str) -> str:
        """Where a run's record, log and blobs are: ``runs/<execution id>``."""
        return self._join("runs", check_id("execution", execution_id))

    def legacy_run_location(self, execution_id: str) -> str:
        """Where an earlier version kept a run's record: ``runs/<execution id>.json``."""
        return self._join("runs", check_id("execution", execution_id) + ".json")

    def record(self, execution_id: str) -> RunRecord:
        """A stored run (see :mod:`atomiton_core.storage.runs`); RunNotFound if none."""
        return RunRecord.load(self, execution_id)

    def runs(
        self,
        *,
        flow_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> builtins.list[RunRecord]:
        """Stored runs, newest first, of one flow and in one status if given: at most
        ``limit`` (only those are read), started before the run ``before`` if given (the last
        of the previous page)."""
        return list_records(self, flow_id=flow_id, status=status, limit=limit, before=before)

    def stats(self, flow_id: str, *, last: int = DEFAULT_LAST) -> FlowStats:
        """Each node's p50 / p95 duration and failure rate over the flow's ``last`` newest
        runs (see :mod:`atomiton_core.storage.stats`)."""
        return flow_stats(self, flow_id, last=last)

    def run_flow_location(self, content_hash: str) -> str:
        """Where the flows runs ran are kept, by content digest: ``run-flows/<digest>.json``
        (one file for every run of the same flow, stored or given inline)."""
        return self._join("run-flows", check_id("flow digest", content_hash) + ".json")

    def save_run_flow(self, content_hash: str, flow: Flow) -> None:
        """Keep the flow a run ran (once per digest), so the run can be shown as it ran
        whatever becomes of the stored flow, or when it was never stored."""
        location = self.run_flow_location(content_hash)
        if self.fs.exists(location):
            return
        try:
            atomic_write_text(location, json.dumps(flow.to_data()), fs=self.fs)
        except (OSError, TypeError, ValueError) as exc:
            _log.warning("the flow of digest %s was not kept for its runs: %s", content_hash, exc)

    def run_flow(self, content_hash: str) -> Flow | None:
        """The flow kept for runs of this digest (see ``save_run_flow``), or None."""
        try:
            with self.fs.open(self.run_flow_location(content_hash), "rb") as fh:
                data = json.loads(fh.read())
            return Flow.from_data(data, source=f"the flow kept for runs ({content_hash})")
        except (OSError, ValueError, InvalidFlowId, FlowLoadError):
            return None

    def load_run(self, execution_id: str) -> dict[str, Any]:
        """A stored run as an ExecutionResult's JSON (the wire format)."""
        data: dict[str, Any] = wire.dump(self.record(execution_id).to_result())
        return data

    def delete_run(self, execution_id: str) -> None:
        """Delete a run's record, log and blobs."""
        folder = self.run_folder(execution_id)
        legacy = self.legacy_run_location(execution_id)
        found = False
        if self.fs.exists(folder):
            if not self._inside_root(folder):
                raise StorageError(f"run {execution_id!r} not deleted: {folder} leads outside")
            self.fs.rm(folder, recursive=True)
            found = True
        if self.fs.exists(legacy):
            self.fs.rm(legacy)
            found = True
        if not found:
            raise RunNotFound(f"no run {execution_id!r} in storage {self.url}")

    def prune_runs(self, keep: int) -> int:
        """Delete all but the ``keep`` newest runs (by start time; runs still going are
        kept); returns how many were deleted."""
        folder = self._join("runs")
        if keep < 0 or not self.fs.exists(folder):
            return 0
        if not self._inside_root(folder):
            _log.warning("run records not pruned: %s leads outside the storage", folder)
            return 0
        if len(self.list_runs()) <= keep:  # the common case: nothing to read
            return 0
        records = list_records(self)
        doomed = [r for r in records[keep:] if r.status != "running"]
        for record in doomed:
            self.delete_run(record.execution_id)
        gone = {r.execution_id for r in doomed}
        kept = {r.data.get("flowHash") for r in records if r.execution_id not in gone}
        self._prune_run_flows(kept)
        return len(doomed)

    def _prune_run_flows(self, kept: set[Any]) -> None:
        """Delete the kept flows no run that is left ran."""
        folder = self._join("run-flows")
        try:
            names = self.fs.ls(folder, detail=False) if self.fs.exists(folder) else []
        except OSError:
            return
        for name in names:
            digest = str(name).rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
            if digest not in kept:
                with contextlib.suppress(OSError):
                    self.fs.rm(name)

    def _inside_root(self, path: str) -> bool:
        """On local disk: the path, symlinks resolved, is inside the storage's own folder."""
        from fsspec.implementations.local import LocalFileSystem

        if not isinstance(self.fs, LocalFileSystem):
            return True
        root = os.path.realpath(self._join(""))
        real = os.path.realpath(path)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def list_runs(self) -> builtins.list[str]:
        """The ids of the stored runs (sorted by id; ``runs()`` sorts by start time)."""
        folder = self._join("runs")
        if not self.fs.exists(folder):
            return []
        ids = set()
        for info in self.fs.ls(folder, detail=True):
            name = _basename(info["name"])
            if name.startswith(".") or info.get("islink"):
                continue
            if info.get("type") == "directory":
                ids.add(name)
            elif name.endswith(".json"):
                ids.add(name[:-5])
        return sorted(i for i in ids if _SAFE_ID.fullmatch(i))


def iso_now() -> str:
    """The time as JavaScript's ``toISOString()`` writes it (``2025-01-15T10:30:00.123Z``), the
    form of the original's ``metadata.created`` / ``metadata.updated``."""
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def _stamp(flow: Flow, stored: str | None) -> None:
    """Set ``metadata.updated`` to now, and ``metadata.created`` when neither the flow nor
    the ``stored`` text has one (its first save); other metadata keys stay, in their order."""
    now = iso_now()
    metadata = dict(flow.metadata or {})
    if "created" not in metadata:
        metadata["created"] = _created(stored) or now
    metadata["updated"] = now
    flow.metadata = metadata


def _created(stored: str | None) -> str | None:
    """``metadata.created`` of the stored text, if it is a flow that has one."""
    if stored is None or "created" not in stored:
        return None
    try:
        data = read_plain(stored)
    except FlowLoadError:
        return None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    created = metadata.get("created") if isinstance(metadata, dict) else None
    return created if isinstance(created, str) else None


def _basename(path: Any) -> str:
    return str(path).rsplit("/", 1)[-1]


def create_storage(url: str | os.PathLike[str] | None = None) -> FlowStorage:
    """Storage at an fsspec URL or local path; default: :func:`default_storage_url`."""
    import fsspec

    where = os.fspath(url) if url is not None else default_storage_url()
    try:
        fs, root = fsspec.core.url_to_fs(where)
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open storage {where!r}: {exc}", hint=backend_hint(where)
        ) from exc
    fs.makedirs(root, exist_ok=True)
    return FlowStorage(fs, root, where)
