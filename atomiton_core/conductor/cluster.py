"""Values that stay on a Dask cluster: what a node run there hands on instead of its outputs.

A node the Dask executor runs returns its outputs to its task on a worker. A large output
(over :data:`FETCH_LIMIT` pickled) stays there: the conductor holds a :class:`ClusterValue`
(the task's future and the port) in its place, passes it on to the next node, and Dask moves
the data from worker to worker. The conductor fetches it only for a node that runs in its own
process (an async node, a container, a node kept ``local``) and for the run's outputs.

Small outputs are fetched with the task's description, as before: a number or a short text
costs less to fetch than to describe, and every node, template and record can use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["FETCH_LIMIT", "ClusterValue", "held", "swap", "swap_async"]

#: Outputs up to this many bytes (pickled) come back to the conductor with their task.
FETCH_LIMIT = 64 * 1024


class ClusterValue:
    """An output port's value held on the Dask cluster.

    ``future``: the ``distributed.Future`` of the producing task's outputs (None once the run
    that made it ended: the cluster then lets the data go); ``port``: the output port in them;
    ``kind``: the value's class when it is a builtin (for typed input ports), else None;
    ``type_name``, ``nbytes``: what it is and how large, for messages and the run's record;
    ``key``: the task's key on the cluster.
    """

    __slots__ = ("future", "key", "kind", "nbytes", "port", "type_name")

    #: Why the codec does not store it, and what to do (the record notes the port as not
    #: stored: its node is run again on a resume).
    __atomiton_unstored__ = (
        "is held on the Dask cluster and was not fetched to be recorded",
        "a resume runs this node again; keep it here with 'executor: local' to record it",
    )

    def __init__(
        self,
        future: Any,
        port: str,
        kind: type | None,
        type_name: str,
        nbytes: int,
        key: str,
    ) -> None:
        self.future = future
        self.port = port
        self.kind = kind
        self.type_name = type_name
        self.nbytes = nbytes
        self.key = key

    def __repr__(self) -> str:
        where = f"on the Dask cluster ({self.key}[{self.port!r}])"
        if self.future is None:
            where += ", released"
        return f"<{self.type_name} of {_size(self.nbytes)} {where}>"

    __str__ = __repr__

    def release(self) -> None:
        """Let the cluster drop the data (the run that made it has ended)."""
        self.future = None


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def held(value: Any) -> bool:
    """Whether a node's inputs (or a value within them) hold a :class:`ClusterValue`."""
    tp = type(value)
    if tp is ClusterValue:
        return True
    if tp is dict:
        return any(held(v) for v in value.values())
    if tp is list or tp is tuple:
        return any(held(v) for v in value)
    return False


def swap(value: Any, fn: Callable[[ClusterValue], Any]) -> Any:
    """``value`` with each :class:`ClusterValue` in it (in dicts, lists, tuples) replaced by
    ``fn(it)``; what holds none is returned as is."""
    tp = type(value)
    if tp is ClusterValue:
        return fn(value)
    if tp is dict:
        if not any(held(v) for v in value.values()):
            return value
        return {k: swap(v, fn) for k, v in value.items()}
    if tp is list or tp is tuple:
        if not any(held(v) for v in value):
            return value
        return tp(swap(v, fn) for v in value)
    return value


async def swap_async(
    value: Any, fetch: Callable[[list[ClusterValue]], Awaitable[list[Any]]]
) -> Any:
    """``value`` with each :class:`ClusterValue` in it replaced by its value, all fetched with
    one call of ``fetch``."""
    found: list[ClusterValue] = []
    swap(value, found.append)
    if not found:
        return value
    values = await fetch(found)
    by_id = {id(cv): v for cv, v in zip(found, values, strict=True)}
    return swap(value, lambda cv: by_id[id(cv)])
