"""Replay: a recorded run run again, with every node that is not pure answered from the
recording instead of executed (no file written, no request sent, no program started), and
every node whose outputs now differ from the recording named: the flow-level regression test.

``Conductor.replay(run_id, flow=None)`` returns a :class:`ReplayReport`; the CLI's
``atomiton replay RUN_ID [--flow FILE]`` and the testing kit's ``assert_replays`` use it.
Pure nodes (``@node(pure=True)``) and containers run; a node that is not pure and is not in
the recording (added since) fails, saying so, rather than reach the outside world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atomiton_core.results import ExecutionResult
from atomiton_core.storage.runs import StoredNode, read_events, store_outputs

if TYPE_CHECKING:
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["Recording", "ReplayReport"]

_DONE = {"completed", "cached", "pinned"}


@dataclass
class Difference:
    """A node whose outputs differ from the recording's (ports: those that differ)."""

    path: str
    ports: list[str]
    why: str = "outputs differ"


@dataclass
class ReplayReport:
    """What a replay found: the replayed run's result, and each difference from the recording."""

    recorded_id: str
    result: ExecutionResult
    differences: list[Difference] = field(default_factory=list)
    #: Nodes answered from the recording (not run).
    answered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        if self.ok:
            return (
                f"replay of {self.recorded_id}: no difference "
                f"({len(self.answered)} nodes answered from the recording)"
            )
        lines = [f"replay of {self.recorded_id}: {len(self.differences)} node(s) differ"]
        for d in self.differences:
            ports = f" ({', '.join(d.ports)})" if d.ports else ""
            lines.append(f"  - {d.path}{ports}: {d.why}")
        return "\n".join(lines)


class Recording:
    """A recorded run's node outcomes by path: stored outputs, digests, or the failure."""

    def __init__(self, storage: FlowStorage, execution_id: str) -> None:
        self.execution_id = execution_id
        self.outputs: dict[str, StoredNode] = {}
        self.digests: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, str] = {}
        for event in read_events(storage, execution_id):
            path = event.get("path")
            if not isinstance(path, str):
                continue
            kind = event.get("type")
            if kind == "node.completed":
                outputs = event.get("outputs")
                if isinstance(outputs, dict):
                    key = str(event.get("key") or "")
                    self.outputs[path] = StoredNode(storage, execution_id, path, key, outputs)
                self.digests[path] = dict(event.get("outputsDigests") or {})
                self.statuses[path] = str(event.get("status") or "completed")
                self.failures.pop(path, None)
            elif kind in ("node.failed", "node.skipped", "node.cancelled"):
                self.statuses[path] = str(kind).split(".")[1]
                if kind == "node.failed":
                    self.failures[path] = dict(event.get("error") or {})

    def compare(self, result: ExecutionResult, answered: set[str]) -> list[Difference]:
        """Each node that ran and whose outputs (or outcome) differ from the recording's."""
        found: list[Difference] = []
        for path, res in result.nodes.items():
            if path in answered:
                continue
            then = self.statuses.get(path)
            now = str(res.status)
            if then is None:
                found.append(Difference(path, [], f"not in the recording (now {now})"))
                continue
            done_then, done_now = then in _DONE, now in _DONE
            if done_then != done_now:
                found.append(Difference(path, [], f"was {then}, now {now}"))
                continue
            if not done_now:
                continue
            digests = store_outputs(res.node_id, res.outputs or {}).digests
            recorded = self.digests.get(path, {})
            ports = sorted(
                p for p in set(digests) | set(recorded) if digests.get(p) != recorded.get(p)
            )
            if ports:
                found.append(Difference(path, ports))
        for path, then in self.statuses.items():
            if path not in result.nodes and then in _DONE and "/" not in path:
                found.append(Difference(path, [], "in the recording, not in the replay"))
        return found
