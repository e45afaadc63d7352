"""What the I/O nodes share: the parameter base, templates, and paths confined to roots."""

from __future__ import annotations

import codecs
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
from atomiton_core import NodeContext
from atomiton_core.errors import ExecutionError
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

__all__ = [
    "IOParams",
    "Location",
    "check_writable",
    "locate",
    "normalise_encoding",
    "os_errors",
    "render_str",
]


class IOParams(BaseModel):
    """camelCase keys in flow files; unknown keys are reported, not ignored."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="forbid")


def normalise_encoding(value: str | None) -> str | None:
    """``utf8`` -> ``utf-8``; ``binary`` / ``buffer`` / None -> None (bytes); checks the codec."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("binary", "buffer", "bytes", "null", "none", ""):
        return None
    if lowered == "base64":
        return "base64"
    try:
        return codecs.lookup(lowered).name
    except LookupError:
        raise ValueError(
            f"unknown encoding {value!r}; use e.g. utf-8, latin-1, base64 or binary"
        ) from None


def render_str(ctx: NodeContext, value: str | None, what: str, **names: Any) -> str | None:
    """Render a string parameter that holds a template; the result must be a string."""
    if value is None or ("{{" not in value and "{%" not in value):
        return value
    rendered = ctx.render(value, **names)
    if rendered is None:
        return None
    if not isinstance(rendered, str | int | float):
        raise ExecutionError(
            f"node {ctx.node_id!r}: parameter {what!r} rendered {value!r} to a "
            f"{type(rendered).__name__}, expected a string",
            node_id=ctx.node_id,
        )
    return str(rendered)


@dataclass(frozen=True, slots=True)
class Location:
    """A resolved path: its filesystem, the filesystem's path, and the URL the user gave."""

    fs: Any
    path: str
    url: str

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def child_url(self, path: str) -> str:
        """The URL of another path on the same filesystem (plain path on local disk)."""
        return path if self.local else str(self.fs.unstrip_protocol(path))


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return str(proto[0] if isinstance(proto, tuple | list) else proto)


def _normal(fs: Any, path: str) -> str:
    if isinstance(fs, LocalFileSystem):
        return os.path.realpath(path).replace(os.sep, "/")
    norm = posixpath.normpath(path) if path else path
    if path.startswith("/") and not norm.startswith("/"):
        norm = "/" + norm
    return "" if norm == "." else norm


def _roots(config: Mapping[str, Any]) -> list[str] | None:
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


def locate(ctx: NodeContext, url: str, what: str = "path") -> Location:
    """Resolve ``url`` (path or fsspec URL); refuse it if it escapes ``allowedRoots``.

    ``..`` is resolved before the check, and on local disk so are symlinks, so neither can
    lead out of an allowed root. The resolved path is also the one operated on.
    """
    if not url:
        raise ExecutionError(
            f"node {ctx.node_id!r}: no {what} given",
            node_id=ctx.node_id,
            hint=f"set the {what!r} parameter or connect the {what!r} input port",
        )
    try:
        fs, raw = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ExecutionError(
            f"node {ctx.node_id!r}: cannot open {what} {url!r}: {exc}",
            node_id=ctx.node_id,
            hint="install the fsspec backend for this protocol (e.g. s3fs for s3://)",
        ) from exc
    path = _normal(fs, raw)
    roots = _roots(ctx.config)
    if roots is not None:
        resolved = []
        for root in roots:
            rfs, rpath = fsspec.core.url_to_fs(root)
            resolved.append((_protocol(rfs), _normal(rfs, rpath)))
        if not _inside(_protocol(fs), path, resolved):
            raise ExecutionError(
                f"node {ctx.node_id!r}: {what} {url!r} (resolved to {path!r}) is outside the "
                f"allowed roots {roots}",
                node_id=ctx.node_id,
                code="PATH_NOT_ALLOWED",
                hint="use a path under one of the conductor's allowedRoots, or widen that "
                "setting (create_conductor(config={'allowedRoots': [...]}))",
            )
    return Location(fs, path, url)


def check_writable(
    ctx: NodeContext, loc: Location, overwrite: bool, create_directories: bool
) -> bool:
    """Refuse what ``overwrite`` / ``createDirectories`` forbid; True if the target exists.

    Missing parents only matter on local disk: object stores have no real directories.
    """
    fs = loc.fs
    exists = bool(fs.exists(loc.path))
    where = f"node {ctx.node_id!r}: "
    if exists and fs.isdir(loc.path):
        raise ExecutionError(f"{where}{loc.url!r} is a directory, not a file", node_id=ctx.node_id)
    if exists and not overwrite:
        raise ExecutionError(
            f"{where}{loc.url!r} already exists and overwrite is false",
            node_id=ctx.node_id,
            code="FILE_EXISTS",
            hint="set `overwrite: true` to replace it, or choose another path",
        )
    parent = fs._parent(loc.path)
    if loc.local and parent and not create_directories and not fs.isdir(parent):
        raise ExecutionError(
            f"{where}directory {parent!r} for {loc.url!r} does not exist",
            node_id=ctx.node_id,
            hint="set `createDirectories: true` to create it",
        )
    return exists


_OS_CODES = {
    FileNotFoundError: "FILE_NOT_FOUND",
    FileExistsError: "FILE_EXISTS",
    PermissionError: "PERMISSION_DENIED",
}


@contextmanager
def os_errors(ctx: NodeContext, doing: str) -> Iterator[None]:
    """Turn what the filesystem raises into an ExecutionError saying what was being done."""
    try:
        yield
    except OSError as exc:
        code = next((c for t, c in _OS_CODES.items() if isinstance(exc, t)), None)
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ExecutionError(
            f"node {ctx.node_id!r}: {doing} failed: {type(exc).__name__}: {reason}",
            node_id=ctx.node_id,
            code=code,
        ) from exc
