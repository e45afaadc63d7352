"""Atomic writes on any fsspec filesystem: write beside the target, then move over it."""

from __future__ import annotations

import os
import uuid
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text"]


def atomic_write_bytes(url: str, data: bytes, *, fs: Any = None) -> None:
    """Replace ``url`` with ``data`` so readers see the old file or the new one, never half.

    On local disk the temporary file is fsynced and renamed over the target (atomic on POSIX);
    on other filesystems the move is as atomic as the backend makes it.
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
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def atomic_write_text(url: str, text: str, *, fs: Any = None, encoding: str = "utf-8") -> None:
    atomic_write_bytes(url, text.encode(encoding), fs=fs)
