"""Watches: a local folder through ``watchfiles`` (a file fires once it has been left alone
for ``debounce``), any other fsspec URL listed every ``pollInterval``; each new or changed
file matching the glob fires with its path."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from atomiton_core.errors import AtomitonError
from atomiton_core.files import resolve_path
from atomiton_core.flow.models import Trigger
from atomiton_core.flow.triggers import duration_ms
from atomiton_core.server.triggers.state import Firing

if TYPE_CHECKING:
    from atomiton_core.files import Location
    from atomiton_core.server.triggers.engine import TriggerEngine
    from atomiton_core.server.triggers.state import ActiveTrigger

__all__ = ["ARMED_S", "POLL_MS", "RETRY_S", "SEEN_FILES", "matches", "run_watch"]

_log = logging.getLogger("atomiton.triggers")

#: How long a watch whose folder is missing or unreadable waits before it looks again.
RETRY_S = 2.0
#: How often a local watcher's thread comes back to the loop when nothing happens (the
#: first time says it is armed).
ARMED_S = 0.5
#: The default listing interval of a watch on a URL that is not a local folder.
POLL_MS = 5000.0
#: Files whose last fired signature a watch remembers, at most.
SEEN_FILES = 10_000


async def run_watch(engine: TriggerEngine, trig: ActiveTrigger) -> None:
    spec = trig.spec
    assert spec.folder is not None
    try:
        location = resolve_path(
            spec.folder, roots=engine.conductor.security.allowed_roots, what="watched folder"
        )
    except AtomitonError as exc:
        trig.problem = str(exc)
        _log.error("trigger %s cannot watch %s: %s", trig.key, spec.folder, exc)
        engine.emit(trig)
        return
    if location.local:
        await _watch_local(engine, trig, location.path)
    else:
        await _watch_listing(engine, trig, location)


def matches(spec: Trigger, relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    if name.startswith(".") and not spec.glob.startswith("."):
        return False  # hidden and temporary files (.part, .~lock) are not files that landed
    return fnmatch.fnmatchcase(relative, spec.glob) or fnmatch.fnmatchcase(name, spec.glob)


async def _watch_local(engine: TriggerEngine, trig: ActiveTrigger, folder: str) -> None:
    try:
        import watchfiles
    except ImportError:
        engine.set_problem(
            trig, "watching a folder needs watchfiles: pip install 'atomiton-core[server]'"
        )
        return
    spec = trig.spec
    settle = duration_ms(spec.debounce) / 1000
    loop = asyncio.get_running_loop()
    pending: dict[str, tuple[asyncio.TimerHandle, str]] = {}
    seen: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def settled(path: str) -> None:
        _, change = pending.pop(path)
        try:
            st = os.stat(path)
        except OSError:
            return  # gone again before it settled
        if not os.path.isfile(path):
            return
        signature = (st.st_mtime_ns, st.st_size)
        if seen.get(path) == signature:
            return  # fired already for the file as it is
        seen[path] = signature
        seen.move_to_end(path)
        while len(seen) > SEEN_FILES:
            seen.popitem(last=False)
        if trig.paused:
            return
        engine.spawn(_fire_file(engine, trig, path, change))

    def changed(change: Any, path: str) -> None:
        relative = os.path.relpath(path, folder).replace(os.sep, "/")
        if relative.startswith("..") or not matches(spec, relative):
            return
        kind = "added" if change == watchfiles.Change.added else "modified"
        old = pending.pop(path, None)
        if old is not None:
            old[0].cancel()
            kind = old[1] if old[1] == "added" else kind
        pending[path] = (loop.call_later(settle, settled, path), kind)

    try:
        while not trig.stop_event.is_set():
            if not os.path.isdir(folder):
                engine.set_problem(trig, f"folder {folder} does not exist (looked for again)")
                await asyncio.sleep(RETRY_S)
                continue
            engine.set_problem(trig, None)
            try:
                async for changes in watchfiles.awatch(
                    folder,
                    watch_filter=None,
                    debounce=50,
                    step=20,
                    stop_event=trig.stop_event,
                    recursive=spec.recursive,
                    rust_timeout=int(ARMED_S * 1000),
                    yield_on_timeout=True,  # the first yield says the watcher is armed
                    ignore_permission_denied=True,
                ):
                    if not trig.watching:
                        trig.watching = True
                        engine.emit(trig)
                    for change, path in sorted(changes, key=lambda c: c[1]):
                        if change != watchfiles.Change.deleted:
                            changed(change, path)
            except Exception as exc:  # the watcher's own errors (in a group, from anyio)
                trig.watching = False
                engine.set_problem(trig, f"watching {folder} failed: {exc!r}")
                await asyncio.sleep(RETRY_S)
    finally:
        trig.stop_event.set()
        for handle, _ in pending.values():
            handle.cancel()


async def _watch_listing(engine: TriggerEngine, trig: ActiveTrigger, location: Location) -> None:
    spec = trig.spec
    every = duration_ms(spec.poll_interval if spec.poll_interval is not None else POLL_MS)
    every_s = max(every / 1000, 0.05)
    seen: dict[str, str] | None = None
    while True:
        try:
            listing = await asyncio.to_thread(_listing, location, spec)
        except Exception as exc:  # any file system's own errors
            engine.set_problem(trig, f"listing {location.url} failed: {exc}")
            await asyncio.sleep(max(every_s, RETRY_S))
            continue
        engine.set_problem(trig, None)
        if seen is not None and not trig.paused:
            for relative, signature in sorted(listing.items()):
                old = seen.get(relative)
                if old != signature:
                    change = "added" if old is None else "modified"
                    url = f"{location.url.rstrip('/')}/{relative}"  # as the folder was given
                    await _fire_file(engine, trig, url, change)
        seen = listing
        if not trig.watching:
            trig.watching = True
            engine.emit(trig)
        await asyncio.sleep(every_s)


def _listing(location: Location, spec: Trigger) -> dict[str, str]:
    fs, root = location.fs, location.path.rstrip("/")
    found = fs.find(root, maxdepth=None if spec.recursive else 1, detail=True)
    out: dict[str, str] = {}
    for path, info in found.items():
        if info.get("type") == "directory":
            continue
        relative = str(path)[len(root) :].lstrip("/")
        if not relative or not matches(spec, relative):
            continue
        stamp = [info.get(k) for k in ("size", "mtime", "LastModified", "ETag", "created")]
        out[relative] = repr(stamp)
    return out


async def _fire_file(engine: TriggerEngine, trig: ActiveTrigger, path: str, change: str) -> None:
    spec = trig.spec
    inputs = {spec.path_variable: path, **spec.inputs}
    await engine.fire(trig, Firing("watch", inputs, {"path": path, "change": change}))
