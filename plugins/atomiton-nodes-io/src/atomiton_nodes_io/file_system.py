"""``file-system``: read, write, list, exists, create, delete, copy and move on any fsspec URL.

Local paths, ``memory://``, ``s3://`` (with s3fs installed)... all work the same way. Writes
are atomic on local disk. The conductor-wide setting ``allowedRoots`` confines every path.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from atomiton_core import ExecutionError, NodeContext, atomic_write_bytes, node
from atomiton_core.nodes.definition import accepts_original_names
from pydantic import Field, ValidationInfo, field_validator

from atomiton_nodes_io._common import (
    FileAlreadyExists,
    FileMissing,
    IOParams,
    Location,
    check_writable,
    fail_missing,
    locate,
    normalise_encoding,
    os_errors,
    render_str,
)
from atomiton_nodes_io._glob import matcher

__all__ = ["FileSystemParams", "file_system"]

Operation = Literal["read", "write", "list", "exists", "create", "delete", "copy", "move"]


class FileSystemParams(IOParams):
    """The original's names are accepted too: ``filePath``, ``targetPath`` and
    ``createDirectory``; ``fileFilter``, ``fullPaths``, ``recursive``, ``encoding`` (its
    ``schemas/file-system``) are ours as well."""

    original_names: ClassVar[Mapping[str, str]] = {
        "filePath": "path",
        "targetPath": "destination",
        "createDirectory": "createDirectories",
    }
    _original = accepts_original_names()

    operation: Operation = Field("read", description="What to do with `path`")
    path: str | None = Field(
        None,
        description="A path or fsspec URL (memory://, s3://...); a template over `input` and "
        "variables; the `path` input port wins when connected",
    )
    destination: str | None = Field(
        None,
        validate_default=True,
        description="copy / move: where to (a template, like `path`)",
    )
    content: Any = Field(
        None,
        description="write: what to write (a template such as {{$input}}); default: the input",
    )
    encoding: str | None = Field(
        "utf8",
        description="Text encoding (utf8, ascii, latin-1...); `base64` / `hex` read and write "
        "bytes as base64 / hex text; `binary` or null reads bytes",
    )
    create_directories: bool = Field(
        True, description="write / copy / move: create missing parent directories"
    )
    overwrite: bool = Field(True, description="write / copy / move: replace an existing file")
    recursive: bool = Field(
        False, description="list: descend into sub-directories; delete/copy: whole directories"
    )
    pattern: str | None = Field(
        None, description="list: glob on file names, braces allowed: *.{jpg,png}"
    )
    file_filter: str | None = Field(
        None, description="list: a regular expression names must contain (searched, not matched)"
    )
    include_stats: bool = Field(False, description="list: add size and modification time")
    include_directories: bool = Field(True, description="list: include directories")
    include_hidden: bool = Field(
        False, description="list: include names starting with '.' (and descend into them)"
    )
    full_paths: bool | None = Field(
        None,
        description="list: `files` as strings, full paths (true) or paths relative to `path` "
        "(false); default: entries {name, path, type...}",
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        normalise_encoding(value)
        return value

    @field_validator("file_filter")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None, info: ValidationInfo) -> str | None:
        op = info.data.get("operation")
        if op in ("copy", "move") and not value:
            raise ValueError(
                f"operation {op!r} needs a `destination` (the original's `targetPath`)"
            )
        return value

    def missing_inputs(self, connected: frozenset[str]) -> list[tuple[str, str]]:
        missing: list[tuple[str, str]] = []
        if not self.path and "path" not in connected:
            missing.append(
                (
                    "path",
                    f"operation {self.operation!r} needs a `path` (the original's `filePath`): "
                    "set the parameter or connect the `path` input port",
                )
            )
        if (
            self.operation == "write"
            and self.content is None
            and not connected & {"content", "input"}
        ):
            missing.append(
                (
                    "content",
                    "operation 'write' has nothing to write: set `content` or connect the "
                    "`input` (or `content`) port",
                )
            )
        return missing


_OUTPUTS = {"output": dict, "content": Any, "files": list, "exists": bool, "path": str}


@node(
    "file-system",
    params=FileSystemParams,
    outputs=_OUTPUTS,
    name="File System",
    category="io",
    icon="folder",
    description="Read, write, list, check, create, delete, copy and move files on any fsspec "
    "URL (local disk, memory://, s3://...)",
)
def file_system(
    ctx: NodeContext,
    params: FileSystemParams,
    input: Any = None,
    path: str | None = None,
    content: Any = None,
) -> dict[str, Any]:
    """Run one file operation; ``output`` holds the whole result."""
    fail_missing(ctx, params, {"path": path, "content": content, "input": input})
    raw = path if path is not None else render_str(ctx, params.path, "path", input=input)
    if not raw:
        raise _fail(
            ctx,
            f"parameter 'path' {params.path!r} rendered an empty path",
            hint="check the variables and the input the template reads",
        )
    loc = locate(ctx, raw)
    with os_errors(ctx, f"{params.operation} {loc.url!r}"):
        result = _operate(ctx, params, loc, input, content)
    return {
        "output": result,
        "path": loc.url,
        **{port: result[port] for port in ("content", "files", "exists") if port in result},
    }


def _operate(
    ctx: NodeContext, params: FileSystemParams, loc: Location, input: Any, content: Any
) -> dict[str, Any]:
    op = params.operation
    result: dict[str, Any] = {"operation": op, "path": loc.url, "success": True}
    if op == "read":
        result.update(_read(ctx, params, loc))
    elif op == "write":
        data = content if content is not None else _content(ctx, params, input)
        result.update(_write(ctx, params, loc, data))
    elif op == "list":
        result.update(_list(ctx, params, loc))
    elif op == "exists":
        exists = bool(loc.fs.exists(loc.path))
        kind = _kind(loc) if exists else None
        result.update(exists=exists, type=kind)
    elif op == "create":
        existed = bool(loc.fs.exists(loc.path))
        if existed and not loc.fs.isdir(loc.path):
            raise ExecutionError(
                f"cannot create directory {loc.url!r}: a file is there",
                node_id=ctx.node_id,
            )
        loc.fs.makedirs(loc.path, exist_ok=True)
        result["created"] = not existed
    elif op == "delete":
        result["deleted"] = _delete(ctx, params, loc)
    else:
        dest_raw = render_str(ctx, params.destination, "destination", input=input)
        dest = locate(ctx, dest_raw or "", "destination")
        _transfer(ctx, params, loc, dest, move=op == "move")
        result["destination"] = dest.url
    return result


def _fail(
    ctx: NodeContext, message: str, cls: type[ExecutionError] = ExecutionError, **kw: Any
) -> ExecutionError:
    return cls(message, node_id=ctx.node_id, **kw)


def _kind(loc: Location) -> str:
    return "directory" if loc.fs.isdir(loc.path) else "file"


def _content(ctx: NodeContext, params: FileSystemParams, input: Any) -> Any:
    if params.content is None:
        return input
    if isinstance(params.content, str | dict | list):
        return ctx.render(params.content, input=input)
    return params.content


def _encode(ctx: NodeContext, data: Any, encoding: str | None) -> bytes:
    if data is None:
        raise _fail(
            ctx,
            "nothing to write: no `content` parameter and no `input`",
            hint="set `content` or connect the `input` port",
        )
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, indent=2, ensure_ascii=False, default=str)
    )
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise _fail(ctx, f"content is not valid base64: {exc}") from exc
    if encoding == "hex":
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise _fail(ctx, f"content is not valid hex: {exc}") from exc
    try:
        return text.encode(encoding or "utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(
            ctx,
            f"the content cannot be written as {encoding}: {exc.reason} at character "
            f"{exc.start} ({text[exc.start : exc.start + 1]!r})",
            hint="choose an encoding that has every character, such as utf-8",
            retryable=False,
        ) from None


def _read(ctx: NodeContext, params: FileSystemParams, loc: Location) -> dict[str, Any]:
    fs = loc.fs
    if not fs.exists(loc.path):
        raise _fail(ctx, f"file {loc.url!r} does not exist", cls=FileMissing)
    if fs.isdir(loc.path):
        raise _fail(
            ctx, f"{loc.url!r} is a directory", hint="use operation: list to see what it holds"
        )
    data: bytes = fs.cat_file(loc.path)
    encoding = normalise_encoding(params.encoding)
    text: str | bytes
    if encoding is None:
        text = data
    elif encoding == "base64":
        text = base64.b64encode(data).decode("ascii")
    elif encoding == "hex":
        text = binascii.hexlify(data).decode("ascii")
    else:
        try:
            text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
        except UnicodeDecodeError as exc:
            raise _fail(
                ctx,
                f"file {loc.url!r} is not valid {params.encoding}: {exc}",
                hint="set `encoding: binary` to read bytes, or the file's real encoding",
            ) from exc
    return {"content": text, "size": len(data), "encoding": encoding or "binary"}


def _check_target(ctx: NodeContext, params: FileSystemParams, loc: Location) -> bool:
    return check_writable(ctx, loc, params.overwrite, params.create_directories)


def _write(ctx: NodeContext, params: FileSystemParams, loc: Location, data: Any) -> dict[str, Any]:
    payload = _encode(ctx, data, normalise_encoding(params.encoding))
    existed = _check_target(ctx, params, loc)
    atomic_write_bytes(loc.path, payload, fs=loc.fs)
    return {"size": len(payload), "created": not existed}


def _entry(loc: Location, info: dict[str, Any], stats: bool) -> dict[str, Any]:
    name = str(info["name"]).rstrip("/")
    is_dir = info.get("type") == "directory"
    entry: dict[str, Any] = {
        "name": name.rsplit("/", 1)[-1],
        "path": loc.child_url(name),
        "type": "directory" if is_dir else "file",
        "isFile": not is_dir,
        "isDirectory": is_dir,
    }
    if stats:
        entry["size"] = info.get("size")
        modified = info.get("mtime", info.get("LastModified", info.get("created")))
        if isinstance(modified, int | float):
            modified = datetime.fromtimestamp(modified, UTC).isoformat()
        elif isinstance(modified, datetime):
            modified = modified.isoformat()
        entry["modified"] = modified
    return entry


def _list(ctx: NodeContext, params: FileSystemParams, loc: Location) -> dict[str, Any]:
    fs = loc.fs
    if not fs.isdir(loc.path):
        what = "is a file, not a directory" if fs.exists(loc.path) else "does not exist"
        raise _fail(ctx, f"cannot list {loc.url!r}: it {what}", cls=FileMissing)
    if params.recursive:
        infos = fs.find(loc.path, withdirs=params.include_directories, detail=True).values()
    else:
        infos = fs.ls(loc.path, detail=True)
    match = matcher(params.pattern).fullmatch if params.pattern else None
    search = re.compile(params.file_filter).search if params.file_filter else None
    root = loc.path.rstrip("/")
    files: list[Any] = []
    for info in sorted(infos, key=lambda i: str(i["name"])):
        if ctx.cancelled:
            break
        name = str(info["name"]).rstrip("/")
        if name == root:
            continue
        relative = name[len(root) + 1 :] if name.startswith(root + "/") else name
        if not params.include_hidden and any(p.startswith(".") for p in relative.split("/")):
            continue  # as the original: hidden names are left out, and not descended into
        if not params.include_directories and info.get("type") == "directory":
            continue
        base = name.rsplit("/", 1)[-1]
        if match is not None and not match(base):
            continue
        if search is not None and not search(base):
            continue
        if params.full_paths is None:
            files.append(_entry(loc, info, params.include_stats))
        else:
            files.append(loc.child_url(name) if params.full_paths else relative)
    return {"files": files, "count": len(files)}


def _delete(ctx: NodeContext, params: FileSystemParams, loc: Location) -> bool:
    fs = loc.fs
    if not fs.exists(loc.path):
        return False
    if fs.isdir(loc.path):
        if not params.recursive and fs.ls(loc.path):
            raise _fail(
                ctx,
                f"directory {loc.url!r} is not empty",
                hint="set `recursive: true` to delete it with everything inside",
            )
        fs.rm(loc.path, recursive=True)
    else:
        fs.rm_file(loc.path)
    return True


def _transfer(
    ctx: NodeContext, params: FileSystemParams, src: Location, dest: Location, *, move: bool
) -> None:
    verb = "move" if move else "copy"
    if not src.fs.exists(src.path):
        raise _fail(ctx, f"cannot {verb} {src.url!r}: it does not exist", cls=FileMissing)
    is_dir = bool(src.fs.isdir(src.path))
    if is_dir and not params.recursive:
        raise _fail(
            ctx,
            f"cannot {verb} directory {src.url!r} without `recursive: true`",
            hint="set `recursive: true` to include everything inside",
        )
    if is_dir:
        if dest.fs.exists(dest.path) and not params.overwrite:
            raise _fail(
                ctx,
                f"{dest.url!r} already exists and overwrite is false",
                cls=FileAlreadyExists,
                hint="set `overwrite: true`, or choose another destination",
            )
        for info in src.fs.find(src.path, detail=True).values():
            if ctx.cancelled:
                return
            name = str(info["name"])
            rel = name[len(src.path.rstrip("/")) + 1 :]
            # each file again through the confinement: a symlink inside the folder (to read
            # through) or inside the destination (to write through) must not lead out
            inner = ctx.resolve_path(src.child_url(name), "path")
            target = ctx.resolve_path(
                dest.child_url(f"{dest.path.rstrip('/')}/{rel}"), "destination"
            )
            atomic_write_bytes(target.path, inner.fs.cat_file(inner.path), fs=target.fs)
    else:
        _check_target(ctx, params, dest)
        if move and src.fs is dest.fs:
            dest.fs.makedirs(dest.fs._parent(dest.path), exist_ok=True)
            src.fs.mv(src.path, dest.path)
            return
        atomic_write_bytes(dest.path, src.fs.cat_file(src.path), fs=dest.fs)
    if move:
        src.fs.rm(src.path, recursive=is_dir)
