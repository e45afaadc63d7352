"""The worker process of an isolated node: the side of :mod:`.isolation` that runs the node.

A worker starts in a session (and process group) of its own, so the conductor can kill it
together with everything it started; it dies with its parent. It then serves one task at a
time over its pipe. A task is the node's function, context and parameters (pickled: code),
its inputs (through :mod:`atomiton_core.codec`: data) and its limits:

- ``memory``: the address space the attempt may add, as ``RLIMIT_AS`` over what the worker
  already maps, so an allocation beyond it fails at once (``MemoryError``) rather than after
  the machine has started swapping;
- ``processes``: how many processes the attempt may start, counted by an audit hook
  (``os.fork``, ``subprocess.Popen``, ``os.posix_spawn``, ``os.system``...); a process the
  attempt forked may start none, so a fork bomb stops at the limit. (``RLIMIT_NPROC`` would
  count every process of the user, and means nothing to root.)

CPU time is watched by the conductor, which kills the worker beyond ``cpuLimit``. After the
attempt the worker reports its outputs, its CPU time and its peak memory (``VmHWM``, reset
before each attempt through ``/proc/self/clear_refs``), and whether it started processes or
left a thread running: such a worker is replaced (its process group killed), so nothing the
attempt left behind runs on. A process started from native code (``ctypes`` calling
``fork``) escapes the count, not the kill.

Messages are frames on a ``multiprocessing`` connection: a JSON header, then the frames it
announces.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import select
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from atomiton_core import codec, wire
from atomiton_core.errors import (
    AtomitonError,
    ExecutionError,
    ExpressionError,
    ResourceLimitExceeded,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["in_worker", "main"]

_state: dict[str, Any] = {"pid": None, "budget": None, "started": 0, "over": False}

#: Node functions by the key the conductor gave them: each is sent once per worker.
_FNS: dict[str, Any] = {}

_SPAWNING = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "pty.spawn",
    }
)


class ProcessLimitReached(PermissionError):
    """Raised inside a node that starts more processes than its ``processLimit``."""


def in_worker() -> bool:
    """True inside an isolated node's worker process."""
    return bool(_state["pid"] == os.getpid())


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _SPAWNING or _state["pid"] is None:
        return
    budget = _state["budget"]
    if os.getpid() != _state["pid"]:  # a process the attempt forked starts none
        raise ProcessLimitReached("a process started by an isolated node may not start more")
    if budget is not None and _state["started"] >= budget:
        _state["over"] = True
        raise ProcessLimitReached(
            f"this node may start at most {budget} process(es) (its processLimit)"
        )
    _state["started"] += 1


def _send(conn: Connection, header: dict[str, Any], frames: list[bytes] = ()) -> None:  # type: ignore[assignment]
    conn.send_bytes(json.dumps({**header, "frames": len(frames)}).encode())
    for frame in frames:
        conn.send_bytes(frame)


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the one that started it exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _status(key: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (``VmHWM``, ``VmSize``), where there is one."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _die_with_conductor(pid: int | None) -> None:
    """End this worker's process group (it, and what its node started) as soon as the
    conductor's process exits, however it exits (a SIGKILL included): a thread waits on a
    pidfd of the conductor, which turns readable when it is gone. The worker's parent is the
    fork server, not the conductor, so the kernel's parent-death signal alone would wait for
    the fork server, which outlives a killed conductor."""
    if pid is None or not hasattr(os, "pidfd_open"):
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # already gone, or the kernel has no pidfds
        if not _alive(pid):
            os._exit(0)
        return

    def wait() -> None:
        select.select([fd], [], [])
        with contextlib.suppress(OSError):
            os.killpg(0, signal.SIGKILL)
        os._exit(0)

    watcher = threading.Thread(target=wait, name="atomiton-conductor-watch", daemon=True)
    watcher.start()
    _state["watcher"] = watcher


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def main(conn: Connection, conductor_pid: int | None = None) -> None:
    """The worker's life: serve tasks until the conductor closes the pipe."""
    os.setsid()
    _die_with_parent()
    _die_with_conductor(conductor_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the conductor's to handle
    _state["pid"] = os.getpid()
    sys.addaudithook(_audit)
    _send(conn, {"op": "ready", "pid": os.getpid()})
    while True:
        try:
            header = json.loads(conn.recv_bytes())
            frames = [conn.recv_bytes() for _ in range(header["frames"])]
        except (EOFError, OSError):
            os._exit(0)
        if header.get("op") == "env":
            os.environ.clear()
            os.environ.update(header.get("environ") or {})
            continue
        if header.get("op") != "run":
            continue
        try:
            _run(conn, header, frames)
        finally:
            if os.getpid() != _state["pid"]:
                os._exit(0)  # a process the node forked never answers for the worker


def _run(conn: Connection, header: dict[str, Any], frames: list[bytes]) -> None:
    limits = header.get("limits") or {}
    node_id = header.get("nodeId", "?")
    node_type = header.get("nodeType", "?")
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    memory = limits.get("memory")
    _state.update(budget=limits.get("processes"), started=0, over=False)
    peak_known = _reset_peak()
    cpu0 = time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    reply: dict[str, Any]
    out_frames: list[bytes] = []
    ctx: Any = None
    try:
        key = header["fn"]
        if frames[0]:
            _FNS[key] = pickle.loads(frames[0])
        fn = _FNS[key]
        ctx, params = pickle.loads(frames[1])
        inputs = codec.decode(codec.from_frames(frames[2:]))
        ctx.isolated = True
        ctx.secrets = _AskedSecrets(conn)
        ctx._reporter = lambda fraction, message: _send(
            conn, {"op": "progress", "fraction": fraction, "message": message}
        )
        if memory is not None:
            base = _status("VmSize") or 0
            limit = base + int(memory * 1024 * 1024)
            resource.setrlimit(resource.RLIMIT_AS, (limit, old_as[1]))
        out = fn(ctx, params, **inputs)
        if hasattr(out, "__await__"):
            import asyncio

            out = asyncio.run(out)
        if os.getpid() != _state["pid"]:
            os._exit(0)  # a process the node forked, returning from the node
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, old_as)
        out_frames = codec.to_frames(codec.encode(out, where="outputs", node_id=node_id))
        reply = {"op": "done"}
    except BaseException as exc:  # everything the node did wrong goes back as its error
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, old_as)
        if os.getpid() != _state["pid"]:
            os._exit(1)
        err: AtomitonError
        if isinstance(exc, MemoryError) and memory is not None:
            err = ResourceLimitExceeded(
                f"{node_type} needed more memory than its memoryLimit of {memory:g} MB",
                node_id=node_id,
                hint="raise 'memoryLimit' (megabytes), or make the node use less",
                limit="memoryLimit",
            )
        elif _state["over"]:
            err = _over_process_limit(node_type, node_id)
        elif isinstance(exc, AtomitonError):
            err = exc
        else:
            err = ExecutionError.from_exception(exc, node_id=node_id, node_type=node_type)
            err.context["traceback"] = "".join(traceback.format_exception(exc)[-12:])
        reply = {"op": "error", "error": wire.dump(err), "context": wire.jsonable(err.context)}
    if _state["over"] and reply["op"] == "done":  # the node caught the refusal: still over
        reply = {"op": "error", "error": wire.dump(_over_process_limit(node_type, node_id))}
        out_frames = []
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    reply["cpuMs"] = (
        time.process_time()
        - cpu0
        + child1.ru_utime
        + child1.ru_stime
        - child0.ru_utime
        - child0.ru_stime
    ) * 1000
    reply["peakMemory"] = _status("VmHWM") if peak_known else None
    # a process or a thread the attempt started could run on: the worker is replaced
    ours = 2 if "watcher" in _state else 1  # the main thread, and the conductor's watcher
    reply["spawned"] = _state["started"] > 0 or _state["over"] or threading.active_count() > ours
    _state.update(budget=None, started=0, over=False)
    _send(conn, reply, out_frames)


def _over_process_limit(node_type: str, node_id: str) -> AtomitonError:
    return ResourceLimitExceeded(
        f"{node_type} tried to start more than its processLimit of {_state['budget']} process(es)",
        node_id=node_id,
        hint="raise 'processLimit' if the node is meant to start processes",
        limit="processLimit",
    )


class _AskedSecrets:
    """``secrets`` in a worker: each one is asked of the conductor over the pipe, so it is
    looked up where the conductor's providers are (its environment, its keyring) and the run
    knows to mask it."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> str:
        _send(self._conn, {"op": "secret", "name": name})
        answer = json.loads(self._conn.recv_bytes())
        if "error" in answer:
            raise ExpressionError(str(answer["error"]), hint=answer.get("hint"))
        return str(answer["value"])
