"""Paths that nodes read and write, on any fsspec URL, optionally confined to allowed roots.

A conductor created with ``config={"allowedRoots": [...]}`` refuses every node path outside
those roots. ``..`` is resolved before the check, and on local disk so are symlinks, so
neither leads out; the resolved path is also the one operated on.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from atomiton_core.errors import ExecutionError

__all__ = ["Location", "allowed_roots", "resolve_path"]


@dataclass(frozen=True, slots=True)
class Location:
    """A resolved path: its filesystem, the filesystem's path, and the URL the user gave."""

    fs: Any
    path: str
    url: str

    @property
    def local(self) -> bool:
        from fsspec.implementations.local import LocalFileSystem

        return isinstance(self.fs, LocalFileSystem)

    def child_url(self, path: str) -> str:
        """The URL of another path on the same filesystem (plain path on local disk)."""
        return path if self.local else str(self.fs.unstrip_protocol(path))


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return str(proto[0] if isinstance(proto, tuple | list) else proto)


def _normal(fs: Any, path: str) -> str:
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        return os.path.realpath(path).replace(os.sep, "/")
    norm = posixpath.normpath(path) if path else path
    if path.startswith("/") and not norm.startswith("/"):
        norm = "/" + norm
    return "" if norm == "." else norm


def allowed_roots(config: Mapping[str, Any]) -> list[str] | None:
    """The ``allowedRoots`` setting as a list of paths / URLs (None: no confinement)."""
    roots = config.get("allowedRoots")
    if roots is None:
        return None
    if isinstance(roots, str | os.PathLike):
        return [os.fspath(roots)]
    return [os.fspath(r) for r in roots]


def _inside(protocol: str, path: str, roots: Iterable[tuple[str, str]]) -> bool:
    for root_protocol, root in roots:
        if root_protocol != protocol:
            continue
        if path == root or path.startswith(root.rstrip("/") + "/") or root in ("", "/"):
            return True
    return False


def resolve_path(
    url: str | os.PathLike[str],
    *,
    roots: list[str] | None = None,
    what: str = "path",
    node_id: str | None = None,
) -> Location:
    """Resolve a path or fsspec URL; refuse it (code PATH_NOT_ALLOWED) outside ``roots``."""
    import fsspec

    who = f"node {node_id!r}: " if node_id else ""
    text = os.fspath(url) if url else ""
    if not text:
        raise ExecutionError(
            f"{who}no {what} given",
            node_id=node_id,
            hint=f"set the {what!r} parameter or connect the {what!r} input port",
            retryable=False,
        )
    try:
        fs, raw = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise ExecutionError(
            f"{who}cannot open {what} {text!r}: {exc}",
            node_id=node_id,
            hint="install the fsspec backend for this protocol (e.g. s3fs for s3://)",
            retryable=False,
        ) from exc
    path = _normal(fs, raw)
    if roots is not None:
        resolved = []
        for root in roots:
            rfs, rpath = fsspec.core.url_to_fs(root)
            resolved.append((_protocol(rfs), _normal(rfs, rpath)))
        if not _inside(_protocol(fs), path, resolved):
            raise ExecutionError(
                f"{who}{what} {text!r} (resolved to {path!r}) is outside the allowed roots {roots}",
                node_id=node_id,
                code="PATH_NOT_ALLOWED",
                hint="use a path under one of the conductor's allowedRoots, or widen that "
                "setting (create_conductor(config={'allowedRoots': [...]}))",
                retryable=False,
            )
    return Location(fs, path, text)
