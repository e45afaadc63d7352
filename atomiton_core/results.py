"""What an execution produces: per-node results and the execution result.

Plain slotted dataclasses, cheap to create on the conductor's per-node path; their JSON is
the wire format's (:mod:`atomiton_core.wire`): ``wire.dump(result)`` / ``wire.load(...)``.
Their ``repr`` is a summary (outputs by port name, errors by code and the start of their
message): a result may hold megabytes, and asyncio formats a finished task's result when it
looks at the task (``asyncio.run`` does, restoring its SIGINT handler), which with the
generated ``repr`` copied every output several times over.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from atomiton_core.wire import CONFIG, Error, Timestamp, Value

__all__ = ["ExecutionResult", "ExecutionStatus", "NodeResult", "NodeStatus"]


class NodeStatus(StrEnum):
    """Where a node stands in a run; a finished node is completed, cached, pinned, failed,
    skipped or cancelled."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    #: Completed with outputs from the conductor's cache, without running.
    CACHED = "cached"
    #: Completed with the outputs the flow pins for it, without running.
    PINNED = "pinned"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ExecutionStatus(StrEnum):
    """Where a run stands: running, then completed, failed or cancelled."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class NodeResult:
    """What one node did in a run: its status, outputs, error, attempts and timings; keyed
    by its path in :attr:`ExecutionResult.nodes`."""

    __pydantic_config__ = CONFIG

    node_id: str
    node_type: str
    path: str
    status: NodeStatus = NodeStatus.PENDING
    outputs: Value = None
    error: Error = None
    attempts: int = 0
    #: Wall-clock start (epoch seconds) of the first attempt.
    started_at: Timestamp = None
    duration_ms: float | None = None
    #: Why a skipped node did not run (``disabled``, ``upstream``...).
    reason: str | None = None
    #: CPU time of its attempts: in its thread or worker process, or for an async or inline
    #: node, of its own steps on the loop's thread (unless the conductor has
    #: ``cpu_time=False``). A container or ``flow`` node has its children's, added up.
    cpu_ms: float | None = None
    #: Peak resident memory of an isolated node's worker during its attempts.
    peak_memory: int | None = None
    #: The execution whose stored outputs this node reused instead of running (a resume).
    resumed_from: str | None = None
    #: What the run's ``inject`` option put in place of its work (``error``, ``timeout``,
    #: ``delay:MS``); None for a node that ran as it is.
    injected: str | None = None

    def __repr__(self) -> str:
        fields = [
            f"path={self.path!r}",
            f"node_type={self.node_type!r}",
            f"status={str(self.status)!r}",
            f"attempts={self.attempts}",
        ]
        if isinstance(self.outputs, dict):
            fields.append(f"outputs={sorted(self.outputs)!r}")
        if self.error is not None:
            fields.append(f"error={_error_summary(self.error)}")
        if self.reason is not None:
            fields.append(f"reason={self.reason!r}")
        if self.resumed_from is not None:
            fields.append(f"resumed_from={self.resumed_from!r}")
        if self.injected is not None:
            fields.append(f"injected={self.injected!r}")
        if self.duration_ms is not None:
            fields.append(f"duration_ms={self.duration_ms:.1f}")
        return f"NodeResult({', '.join(fields)})"


@dataclass(slots=True)
class ExecutionResult:
    """The result of a run: its status, the flow's outputs (those of its sink nodes), every
    node's :class:`NodeResult` by path, and the error it failed with. The same class
    whether the run was local or on a server (``wire.load`` reads it back)."""

    __pydantic_config__ = CONFIG

    execution_id: str
    flow_id: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    #: Sink node id -> its output ports.
    outputs: Value = field(default_factory=dict)
    #: Node path -> result; children of containers are ``parent/child``.
    nodes: dict[str, NodeResult] = field(default_factory=dict)
    error: Error = None
    started_at: Timestamp = None
    duration_ms: float | None = None

    def __repr__(self) -> str:
        fields = [
            f"execution_id={self.execution_id!r}",
            f"flow_id={self.flow_id!r}",
            f"status={str(self.status)!r}",
            f"nodes={len(self.nodes)}",
        ]
        if isinstance(self.outputs, dict):
            fields.append(f"outputs={sorted(self.outputs)!r}")
        if self.error is not None:
            fields.append(f"error={_error_summary(self.error)}")
        if self.duration_ms is not None:
            fields.append(f"duration_ms={self.duration_ms:.1f}")
        return f"ExecutionResult({', '.join(fields)})"

    @property
    def ok(self) -> bool:
        return self.status is ExecutionStatus.COMPLETED

    def node(self, path: str) -> NodeResult:
        """The result of the node at ``path`` (``group-1/child``); KeyError if none."""
        return self.nodes[path]

    def raise_for_status(self) -> ExecutionResult:
        """Raise the run's error unless it completed; return self for chaining."""
        if self.error is not None and self.status is not ExecutionStatus.COMPLETED:
            raise self.error
        return self


_short = reprlib.Repr()
_short.maxstring = 120


def _error_summary(error: Any) -> str:
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if message is None:
        return _short.repr(error)
    return f"{type(error).__name__}({str(code)!r}, {_short.repr(message)})"
