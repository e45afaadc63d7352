"""What the I/O nodes share: the parameter base, templates, and paths confined to roots."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from atomiton_core import ExecutionError, Location, NodeContext, Parameters

__all__ = [
    "IOParams",
    "Location",
    "check_writable",
    "locate",
    "normalise_encoding",
    "os_errors",
    "render_str",
]


class IOParams(Parameters):
    """camelCase keys in flow files; unknown keys are reported, not ignored."""


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
            f"parameter {what!r} rendered {value!r} to a "
            f"{type(rendered).__name__}, expected a string",
            node_id=ctx.node_id,
        )
    return str(rendered)


def locate(ctx: NodeContext, url: str, what: str = "path") -> Location:
    """Resolve ``url`` (path or fsspec URL) through the core, which refuses it when it escapes
    the conductor's ``allowedRoots`` (``..`` and symlinks resolved first)."""
    return ctx.resolve_path(url, what)


def check_writable(
    ctx: NodeContext, loc: Location, overwrite: bool, create_directories: bool
) -> bool:
    """Refuse what ``overwrite`` / ``createDirectories`` forbid; True if the target exists.

    Missing parents only matter on local disk: object stores have no real directories.
    """
    fs = loc.fs
    exists = bool(fs.exists(loc.path))
    if exists and fs.isdir(loc.path):
        raise ExecutionError(f"{loc.url!r} is a directory, not a file", node_id=ctx.node_id)
    if exists and not overwrite:
        raise FileAlreadyExists(
            f"{loc.url!r} already exists and overwrite is false",
            node_id=ctx.node_id,
            hint="set `overwrite: true` to replace it, or choose another path",
        )
    parent = fs._parent(loc.path)
    if loc.local and parent and not create_directories and not fs.isdir(parent):
        raise ExecutionError(
            f"directory {parent!r} for {loc.url!r} does not exist",
            node_id=ctx.node_id,
            hint="set `createDirectories: true` to create it",
        )
    return exists


class FileMissing(ExecutionError):
    """A file or folder a node needs does not exist."""

    code = "FILE_NOT_FOUND"


class FileAlreadyExists(ExecutionError):
    """A node would replace a file it was told to keep."""

    code = "FILE_EXISTS"


class PermissionDenied(ExecutionError):
    code = "PERMISSION_DENIED"


class HttpError(ExecutionError):
    """A request failed, or its answer was an HTTP error."""

    code = "HTTP_ERROR"


class ResponseTooLarge(ExecutionError):
    code = "RESPONSE_TOO_LARGE"


_OS_ERRORS: dict[type[OSError], type[ExecutionError]] = {
    FileNotFoundError: FileMissing,
    FileExistsError: FileAlreadyExists,
    PermissionError: PermissionDenied,
}


@contextmanager
def os_errors(ctx: NodeContext, doing: str) -> Iterator[None]:
    """Turn what the filesystem raises into an ExecutionError saying what was being done."""
    try:
        yield
    except OSError as exc:
        cls = next((c for t, c in _OS_ERRORS.items() if isinstance(exc, t)), ExecutionError)
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise cls(
            f"{doing} failed: {type(exc).__name__}: {reason}",
            node_id=ctx.node_id,
        ) from exc
