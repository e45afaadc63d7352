"""Flow and run-record storage on any fsspec URL.

Layout under the root: ``flows/<id>.flow.yaml`` and ``runs/<execution id>.json``. Saves are
atomic, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from atomiton_core import signals, wire
from atomiton_core.errors import (
    FlowLoadError,
    FlowNotFound,
    InvalidFlowId,
    RunNotFound,
    StorageError,
)
from atomiton_core.files import atomic_write_text
from atomiton_core.flow.models import Flow
from atomiton_core.flow.yaml_io import dumps_flow, loads_flow
from atomiton_core.results import ExecutionResult

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
        return self._join("flows", check_id("flow", flow_id) + FLOW_SUFFIX)

    # -- flows ---------------------------------------------------------------------------
    def save(self, flow: Flow) -> str:
        """Store a flow as ``<id>.flow.yaml``; comments and layout it was loaded with stay."""
        location = self.flow_location(flow.id)
        text = dumps_flow(flow)
        try:
            atomic_write_text(location, text, fs=self.fs)
        except OSError as exc:
            raise StorageError(f"cannot save flow {flow.id!r} to {location}: {exc}") from exc
        if signals.flow_saved.receivers:
            signals.flow_saved.send(
                self, event=signals.FlowEvent("flow.saved", flow.id, location, time.time())
            )
        return location

    def save_text(self, text: str, *, source: str = "<text>") -> Flow:
        """Parse YAML text, then store it; a text that is not a flow is refused."""
        flow = loads_flow(text, source=source)
        self.save(flow)
        return flow

    def load(self, flow_id: str) -> Flow:
        location = self.flow_location(flow_id)
        try:
            with self.fs.open(location, "rb") as fh:
                text = fh.read().decode("utf-8")
        except FileNotFoundError:
            raise FlowNotFound(
                f"no flow {flow_id!r} in storage {self.url}",
                hint="`atomiton flows list` shows the stored flows",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read flow {flow_id!r} from {location}: {exc}") from exc
        return loads_flow(text, source=location)

    def exists(self, flow_id: str) -> bool:
        return bool(self.fs.exists(self.flow_location(flow_id)))

    def delete(self, flow_id: str) -> None:
        location = self.flow_location(flow_id)
        if not self.fs.exists(location):
            raise FlowNotFound(f"no flow {flow_id!r} in storage {self.url}")
        self.fs.rm(location)
        if signals.flow_deleted.receivers:
            signals.flow_deleted.send(
                self, event=signals.FlowEvent("flow.deleted", flow_id, location, time.time())
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

    # -- run records ---------------------------------------------------------------------
    def save_run(self, result: ExecutionResult) -> str:
        location = self._join("runs", check_id("execution", result.execution_id) + ".json")
        atomic_write_text(location, wire.dumps(result, indent=1), fs=self.fs)
        return location

    def load_run(self, execution_id: str) -> dict[str, Any]:
        location = self._join("runs", check_id("execution", execution_id) + ".json")
        try:
            with self.fs.open(location, "rb") as fh:
                data: dict[str, Any] = json.loads(fh.read())
        except FileNotFoundError:
            raise RunNotFound(f"no run record {execution_id!r} in storage {self.url}") from None
        return data

    def prune_runs(self, keep: int) -> int:
        """Delete all but the ``keep`` newest run records; returns how many were deleted."""
        folder = self._join("runs")
        if keep < 0 or not self.fs.exists(folder):
            return 0
        if not self._inside_root(folder):
            _log.warning("run records not pruned: %s leads outside the storage", folder)
            return 0
        records = [
            info
            for info in self.fs.ls(folder, detail=True)
            if str(info["name"]).endswith(".json")
            and not _basename(info["name"]).startswith(".")
            and not info.get("islink")
        ]
        records.sort(key=_modified, reverse=True)
        doomed = records[keep:]
        for info in doomed:
            self.fs.rm(info["name"])
        return len(doomed)

    def _inside_root(self, path: str) -> bool:
        """On local disk: the path, symlinks resolved, is inside the storage's own folder."""
        from fsspec.implementations.local import LocalFileSystem

        if not isinstance(self.fs, LocalFileSystem):
            return True
        root = os.path.realpath(self._join(""))
        real = os.path.realpath(path)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def list_runs(self) -> builtins.list[str]:
        folder = self._join("runs")
        if not self.fs.exists(folder):
            return []
        names = (str(p).rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))


def _basename(path: Any) -> str:
    return str(path).rsplit("/", 1)[-1]


def _modified(info: dict[str, Any]) -> float:
    """When a file was last written, whatever the backend calls it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        stamp = getattr(value, "timestamp", None)
        if callable(stamp):
            return float(stamp())
    return 0.0


def create_storage(url: str | os.PathLike[str] | None = None) -> FlowStorage:
    """Storage at an fsspec URL or local path; default: :func:`default_storage_url`."""
    import fsspec

    where = os.fspath(url) if url is not None else default_storage_url()
    try:
        fs, root = fsspec.core.url_to_fs(where)
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open storage {where!r}: {exc}",
            hint="install the fsspec backend for this protocol (e.g. s3fs for s3://)",
        ) from exc
    fs.makedirs(root, exist_ok=True)
    return FlowStorage(fs, root, where)
