"""Files that nodes and storage touch: path confinement and atomic writes, on any fsspec URL.

**Confinement.** A conductor created with ``security=Security(allowed_roots=[...])`` refuses
every node path outside those roots (:class:`~atomiton_core.errors.PathNotAllowed`). ``..`` is
resolved before the check, and on local disk so are symlinks, so neither leads out; the
resolved path is also the one operated on. Nodes call ``ctx.resolve_path(url)``; code outside
a node calls :func:`resolve_path` with the roots itself.

**Atomic writes.** :func:`atomic_write_bytes` / :func:`atomic_write_text` write beside the
target and move over it, so readers see the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from atomiton_core.errors import ConfigurationError, PathNotAllowed

__all__ = ["Location", "atomic_write_bytes", "atomic_write_text", "backend_hint", "resolve_path"]


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
    roots: Sequence[str] | None = None,
    what: str = "path",
    node_id: str | None = None,
) -> Location:
    """Resolve a path or fsspec URL; refuse it (code PATH_NOT_ALLOWED) outside ``roots``."""
    import fsspec

    text = os.fspath(url) if url else ""
    if not text:
        raise ConfigurationError(
            f"no {what} given",
            node_id=node_id,
            hint=f"set the {what!r} parameter or connect the {what!r} input port",
            retryable=False,
        )
    if roots is not None:
        _refuse_wrappers(text, what, node_id, roots)
    try:
        fs, raw = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot open {what} {text!r}: {exc}",
            node_id=node_id,
            hint=backend_hint(text),
            retryable=False,
        ) from exc
    path = _normal(fs, raw)
    if roots is not None:
        resolved = []
        for root in roots:
            rfs, rpath = fsspec.core.url_to_fs(root)
            resolved.append((_protocol(rfs), _normal(rfs, rpath)))
        if not _inside(_protocol(fs), path, resolved):
            raise PathNotAllowed(
                f"{what} {text!r} (resolved to {path!r}) is outside the allowed roots "
                f"{list(roots)}",
                node_id=node_id,
                hint="use a path under one of the conductor's allowedRoots, or widen that "
                "setting (create_conductor(security=Security(allowed_roots=[...])))",
                retryable=False,
            )
    return Location(fs, path, text)


#: fsspec protocols that open another file (or URL) to read from: under allowedRoots they
#: would be opened, and the file they wrap read, before the path itself could be checked.
WRAPPING_PROTOCOLS = frozenset(
    {
        "zip",
        "tar",
        "libarchive",
        "reference",
        "simplecache",
        "filecache",
        "blockcache",
        "cached",
        "dir",
        "jlab",
        "dbfs",
    }
)


def _refuse_wrappers(text: str, what: str, node_id: str | None, roots: Sequence[str]) -> None:
    """Refuse chained URLs (``zip://x::/dev/zero``) and wrapping protocols under roots."""
    protocol = text.split("://", 1)[0].lower() if "://" in text else ""
    if "::" in text or protocol.split("+")[0] in WRAPPING_PROTOCOLS:
        raise PathNotAllowed(
            f"{what} {text!r} opens another file through it (a chained URL or the "
            f"{protocol or 'chained'} protocol), which the allowed roots {list(roots)} cannot "
            "confine",
            node_id=node_id,
            hint="give the file's own path or URL",
            retryable=False,
        )


def atomic_write_bytes(
    url: str,
    data: bytes | Sequence[bytes | memoryview],
    *,
    fs: Any = None,
    fsync: bool = True,
) -> None:
    """Replace ``url`` with ``data`` so readers see the old file or the new one, never half.

    ``data`` may be a sequence of parts, written one after another (a large file made of
    pieces is then never joined in memory).

    On local disk the temporary file is fsynced and renamed over the target (atomic on POSIX);
    on other filesystems the move is as atomic as the backend makes it. ``fsync=False``
    skips the fsync: still atomic for readers and across a killed process, but a power loss
    may lose the write (run records, rewritten often and backed by their log, take that).
    """
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    path = url
    if fs is None:
        fs, path = fsspec.core.url_to_fs(url)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    name = path.rsplit("/", 1)[-1]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp" if parent else f".{name}.tmp"
    if isinstance(fs, LocalFileSystem):
        try:  # the file keeps its mode; a new one gets what open() gives (0666 less umask)
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                _write_parts(fh, data)
                fh.flush()
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)
                if fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _remove_stale(parent or ".", name)
        return
    try:
        with fs.open(tmp, "wb") as fh:
            _write_parts(fh, data)
        fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def _write_parts(fh: Any, data: bytes | Sequence[bytes | memoryview]) -> None:
    if isinstance(data, bytes | bytearray | memoryview):
        fh.write(data)
    else:
        fh.writelines(data)


#: A temporary file of an atomic write this old was left by a write that died.
STALE_TMP_S = 600.0


def _remove_stale(folder: str, name: str) -> None:
    """Remove the temporary files earlier writes of ``name`` left when they were killed."""
    import time

    prefix = f".{name}."
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return
    cutoff = time.time() - STALE_TMP_S
    for entry in entries:
        if entry.name.endswith(".tmp"):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass


def atomic_write_text(url: str, text: str, *, fs: Any = None, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``url`` atomically, as :func:`atomic_write_bytes` does."""
    atomic_write_bytes(url, text.encode(encoding), fs=fs)


def backend_hint(url: str) -> str:
    """What to install when fsspec has no backend for ``url``'s protocol."""
    protocol = url.split("://", 1)[0].lower() if "://" in url else ""
    if protocol in ("http", "https"):
        return "reading over HTTP needs aiohttp: pip install 'atomiton-core[http]'"
    known = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
    if protocol in known:
        return f"install the fsspec backend for {protocol}://: pip install {known[protocol]}"
    return "install the fsspec backend for this protocol (e.g. s3fs for s3://)"
