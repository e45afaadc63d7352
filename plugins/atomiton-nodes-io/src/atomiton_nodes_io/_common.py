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
    "fail_missing",
    "is_template",
    "locate",
    "normalise_encoding",
    "os_errors",
    "render_str",
]


class IOParams(Parameters):
    """camelCase keys in flow files; unknown keys are reported, not ignored."""

    def missing_inputs(self, connected: frozenset[str]) -> list[tuple[str, str]]:
        """What a run of this node would lack, as ``(parameter, message)`` pairs: the values
        that neither a parameter nor one of the ``connected`` input ports gives. The node
        raises the first when it runs; validation can report them all before it (see the
        plugin's compatibility notes for the core hook that calls this)."""
        return []


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def fail_missing(ctx: NodeContext, params: IOParams, given: dict[str, Any]) -> None:
    """Raise the first of ``params.missing_inputs`` for the ports that received a value."""
    missing = params.missing_inputs(frozenset(k for k, v in given.items() if v is not None))
    if missing:
        name, message = missing[0]
        raise ExecutionError(message, node_id=ctx.node_id, parameter=name, retryable=False)


#: Encodings that are bytes <-> text transforms rather than codecs (the original's ``hex``).
_BINARY_TEXT = ("base64", "hex")


def normalise_encoding(value: str | None) -> str | None:
    """``utf8`` -> ``utf-8``; ``binary`` / ``buffer`` / None -> None (bytes); ``base64`` and
    ``hex`` stay as they are (bytes as base64 / hex text); checks that a codec is text's."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("binary", "buffer", "bytes", "null", "none", ""):
        return None
    if lowered in _BINARY_TEXT:
        return lowered
    try:
        info = codecs.lookup(lowered)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ValueError(
            f"unknown encoding {value!r}; use e.g. utf-8, latin-1, ascii, base64, hex or binary"
        ) from None
    return info.name


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

    # the core types its own codes as ErrorCode members; a plugin's code is a str
    code = "FILE_NOT_FOUND"  # type: ignore[assignment]


class FileAlreadyExists(ExecutionError):
    """A node would replace a file it was told to keep."""

    code = "FILE_EXISTS"  # type: ignore[assignment]


class PermissionDenied(ExecutionError):
    code = "PERMISSION_DENIED"  # type: ignore[assignment]


class HttpError(ExecutionError):
    """A request failed, or its answer was an HTTP error."""

    code = "HTTP_ERROR"  # type: ignore[assignment]


class ResponseTooLarge(ExecutionError):
    code = "RESPONSE_TOO_LARGE"  # type: ignore[assignment]


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
