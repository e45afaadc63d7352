"""The conductor's output cache, in storage: ``cache/entries/<key>.json`` per entry and
``cache/blobs/<digest>`` for large or binary values, so entries survive restarts and are
shared by every process using the same storage.

A node is cached when its execution setting ``cache`` is true (a flow's ``cache: true``, or a
node type declared ``@node(pure=True, cacheable=True)``). Its key is the one the run log keys
it by (see :mod:`atomiton_core.conductor.runlog`): the node type and its version, the node's
parameters as the flow gives them, the variables it sees, and the digests of its inputs.
A hit completes the node with the stored outputs and the status ``cached``; an entry older
than the node's ``cacheTtl`` (seconds) is a miss. Values are stored as the run log stores
them (the codec; blobs by digest), so a value the codec cannot store is not cached.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import pydantic_core

from atomiton_core.errors import StorageError
from atomiton_core.files import atomic_write_bytes
from atomiton_core.storage.runs import _REF, StoredNode, StoredOutputs

if TYPE_CHECKING:
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["CACHE_MODES", "CacheStore"]

#: ``use`` (hits and writes), ``refresh`` (no hits, fresh entries written), ``off``.
CACHE_MODES = ("use", "refresh", "off")


class CacheStore:
    """Cache entries under ``cache/`` of a flow storage."""

    def __init__(self, storage: FlowStorage) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.storage = storage
        self.fs = storage.fs
        self.folder = storage._join("cache")
        self.local = isinstance(self.fs, LocalFileSystem)
        self._made: set[str] = set()

    def _write(self, path: str, data: bytes) -> None:
        """Replace ``path`` atomically (on local disk: a temporary file renamed over it, no
        fsync: an entry lost to a power cut is a miss, not an error)."""
        if not self.local:
            atomic_write_bytes(path, data, fs=self.fs, fsync=False)
            return
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _entry(self, key: str) -> str:
        if not _REF.fullmatch(key):
            raise StorageError(f"cache key {key!r} is not a digest")
        return f"{self.folder}/entries/{key}.json"

    def get(self, key: str, ttl: float | None) -> StoredNode | None:
        """The entry for ``key`` if there is one younger than ``ttl`` seconds (None: any)."""
        try:
            with self.fs.open(self._entry(key), "rb") as fh:
                data = json.loads(fh.read())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
            return None
        created = data.get("createdAt")
        if ttl is not None and (
            not isinstance(created, int | float) or time.time() - created > ttl
        ):
            return None
        entry = StoredNode(self.storage, str(data.get("executionId", "")), "", key, data["outputs"])
        entry.folder = self.folder
        return entry

    def put(
        self,
        key: str,
        node_type: str,
        version: str,
        execution_id: str,
        stored: StoredOutputs,
    ) -> None:
        """Store a node's outputs under ``key`` (blobs first, then the entry, atomically)."""
        for d, parts in stored.blobs:
            path = f"{self.folder}/blobs/{d}"
            if not self.fs.exists(path):
                self._write(path, b"".join(parts))
        head = pydantic_core.to_json(
            {
                "key": key,
                "nodeType": node_type,
                "typeVersion": version,
                "executionId": execution_id,
                "createdAt": time.time(),
            }
        )
        self._write(self._entry(key), head[:-1] + b',"outputs":' + stored.json + b"}")

    def entries(self) -> list[dict[str, Any]]:
        """Every entry's key, node type, version, run, creation time and size, newest first."""
        found: list[dict[str, Any]] = []
        if not self.fs.exists(self.folder):
            return found
        for path in self.fs.glob(f"{self.folder}/entries/*.json"):
            try:
                with self.fs.open(path, "rb") as fh:
                    raw = fh.read()
                data = json.loads(raw)
            except (OSError, ValueError):
                continue
            found.append(
                {
                    "key": data.get("key"),
                    "nodeType": data.get("nodeType"),
                    "typeVersion": data.get("typeVersion"),
                    "executionId": data.get("executionId"),
                    "createdAt": data.get("createdAt"),
                    "bytes": len(raw),
                }
            )
        found.sort(key=lambda e: e.get("createdAt") or 0, reverse=True)
        return found

    def clear(self, node_type: str | None = None) -> int:
        """Delete the entries (of one node type if given); returns how many. Blobs go with
        the last entry: with no node type given, the whole cache folder."""
        if not self.fs.exists(self.folder):
            return 0
        doomed = [e for e in self.entries() if node_type is None or e["nodeType"] == node_type]
        if node_type is None:
            self.fs.rm(self.folder, recursive=True)
            self._made.clear()
            return len(doomed)
        for entry in doomed:
            self.fs.rm(self._entry(str(entry["key"])))
        return len(doomed)
