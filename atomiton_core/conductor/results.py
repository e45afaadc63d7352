"""What an execution produces: per-node results and the execution result, and their JSON."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from atomiton_core.errors import AtomitonError

__all__ = ["ExecutionResult", "ExecutionStatus", "NodeResult", "NodeStatus", "jsonable"]


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: bytes become base64 text, unknown objects their ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, AtomitonError):
        return value.to_dict()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return jsonable(dump(mode="json"))
    return repr(value)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@dataclass(slots=True)
class NodeResult:
    node_id: str
    node_type: str
    path: str
    status: NodeStatus = NodeStatus.PENDING
    outputs: dict[str, Any] | None = None
    error: AtomitonError | None = None
    attempts: int = 0
    #: Wall-clock start (epoch seconds) of the first attempt.
    started_at: float | None = None
    duration_ms: float | None = None
    #: Why a skipped node did not run (``disabled``, ``upstream``...).
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": str(self.status),
            "outputs": jsonable(self.outputs),
            "error": self.error.to_dict() if self.error is not None else None,
            "attempts": self.attempts,
            "startedAt": _iso(self.started_at),
            "durationMs": self.duration_ms,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(slots=True)
class ExecutionResult:
    execution_id: str
    flow_id: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    #: Sink node id -> its output ports.
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Node path -> result; children of containers are ``parent/child``.
    nodes: dict[str, NodeResult] = field(default_factory=dict)
    error: AtomitonError | None = None
    started_at: float | None = None
    duration_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is ExecutionStatus.COMPLETED

    def node(self, path: str) -> NodeResult:
        return self.nodes[path]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "executionId": self.execution_id,
            "flowId": self.flow_id,
            "status": str(self.status),
            "outputs": jsonable(self.outputs),
            "nodes": {path: r.to_dict() for path, r in self.nodes.items()},
            "durationMs": self.duration_ms,
            "startedAt": _iso(self.started_at),
        }
        if self.error is not None:
            data["error"] = self.error.to_dict()
        return data

    def raise_for_status(self) -> ExecutionResult:
        """Raise the run's error unless it completed; return self for chaining."""
        if self.error is not None and self.status is not ExecutionStatus.COMPLETED:
            raise self.error
        return self
