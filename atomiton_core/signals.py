"""Blinker signals: anyone can observe executions and storage without the SDK knowing them.

Every signal is sent by the :class:`~atomiton_core.Conductor` (or storage) that emits it, with
one keyword argument ``event`` holding a typed payload. Connect to all senders, or to one::

    from atomiton_core import signals

    @signals.node_completed.connect_via(conductor)
    def on_done(sender, event):
        print(event.path, event.duration_ms)

The conductor checks ``signal.receivers`` before building a payload, so a signal nobody
listens to costs one attribute test. A receiver that raises never fails what it observes (a
run, a save) and never keeps the other receivers from the event: its error is logged
(``atomiton.signals``), once per receiver and run, with the traceback, and the run says at
its end how often it raised. (A plugin's ``atomiton_before_node`` hook, which rides on
``node_started``, is the exception its hookspec documents: raising fails the run.)
Payloads travel as JSON through ``atomiton_core.wire`` (``wire.dump(event)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from blinker import NamedSignal, Namespace

from atomiton_core.results import ExecutionResult
from atomiton_core.wire import CONFIG, Error, Timestamp, Value

__all__ = [
    "ALL_SIGNALS",
    "EXECUTION_SIGNALS",
    "NODE_SIGNALS",
    "ExecutionEvent",
    "FlowEvent",
    "NodeEvent",
    "execution_cancelled",
    "execution_completed",
    "execution_failed",
    "execution_started",
    "flow_deleted",
    "flow_saved",
    "node_cancelled",
    "node_completed",
    "node_failed",
    "node_paused",
    "node_progress",
    "node_retrying",
    "node_skipped",
    "node_started",
    "send_observed",
]

_signals = Namespace()
_log = logging.getLogger("atomiton.signals")

execution_started = _signals.signal(
    "execution.started", doc="An execution began; event: ExecutionEvent (progress 0)."
)
execution_completed = _signals.signal(
    "execution.completed", doc="An execution finished; event.result holds the ExecutionResult."
)
execution_failed = _signals.signal(
    "execution.failed", doc="An execution failed; event.error and event.result say why."
)
execution_cancelled = _signals.signal(
    "execution.cancelled", doc="An execution was cancelled; event.result has what ran."
)
node_started = _signals.signal("node.started", doc="A node attempt began (event.attempt).")
node_progress = _signals.signal(
    "node.progress", doc="A node reported progress: event.fraction (0..1), event.message."
)
node_completed = _signals.signal(
    "node.completed", doc="A node finished; event.outputs, event.duration_ms."
)
node_failed = _signals.signal("node.failed", doc="A node failed after its last attempt.")
node_cancelled = _signals.signal(
    "node.cancelled", doc="A running node was cancelled (run cancelled, or a sibling failed)."
)
node_skipped = _signals.signal(
    "node.skipped", doc="A node did not run: disabled, or its inputs never arrived."
)
node_retrying = _signals.signal(
    "node.retrying", doc="A node attempt failed and will be retried after event.delay_ms."
)
node_paused = _signals.signal(
    "node.paused",
    doc="A debugged run paused before a node (a breakpoint, or stepping); event.inputs are "
    "the inputs it will run with.",
)
flow_saved = _signals.signal("flow.saved", doc="A flow was saved to storage; event: FlowEvent.")
flow_deleted = _signals.signal("flow.deleted", doc="A flow was deleted from storage.")

#: What one execution emits, in the order of its life.
EXECUTION_SIGNALS = (execution_started, execution_completed, execution_failed, execution_cancelled)
#: What each node of an execution may emit.
NODE_SIGNALS = (
    node_started,
    node_progress,
    node_completed,
    node_failed,
    node_cancelled,
    node_skipped,
    node_retrying,
    node_paused,
)

#: Every signal of this module, executions' and nodes' first, then storage's.
ALL_SIGNALS = (
    execution_started,
    execution_completed,
    execution_failed,
    execution_cancelled,
    node_started,
    node_progress,
    node_completed,
    node_failed,
    node_cancelled,
    node_skipped,
    node_retrying,
    node_paused,
    flow_saved,
    flow_deleted,
)


def send_observed(signal: NamedSignal, sender: Any, event: Any) -> None:
    """Send ``event`` to each receiver of ``signal`` for ``sender``, as ``signal.send`` does,
    except that a receiver that raises is logged and the others still hear it: for what
    storage and servers emit outside a run (a run's signals go through the conductor, which
    also counts each receiver's errors per run)."""
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, event=event)
        except Exception:
            _log.exception("a receiver of signal %r raised; what it observed stands", signal.name)


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """The payload of the ``execution_*`` signals: which run, its status and progress; the
    finishing ones carry the result."""

    __pydantic_config__ = CONFIG

    type: str
    execution_id: str
    flow_id: str
    timestamp: Timestamp
    progress: float
    status: str
    error: Error = None
    #: The ExecutionResult, on the finishing events.
    result: ExecutionResult | None = field(default=None, compare=False)
    #: What started the run by itself: a trigger of ``atomiton serve`` (its flow, id, type,
    #: ``firedAt`` and what fired it), as its record says; None for a run someone started.
    trigger: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """The payload of the ``node_*`` signals: which node of which run, where it sits, and
    what the signal says of it (attempt, progress, outputs, error, timings)."""

    __pydantic_config__ = CONFIG

    type: str
    execution_id: str
    flow_id: str
    node_id: str
    node_type: str
    #: Where the node sits: ``group-1/resize``, ``loop-1/iteration 3/resize``.
    path: str
    timestamp: Timestamp
    #: Overall progress of the execution, 0..1, never decreasing.
    progress: float
    status: str
    attempt: int = 0
    fraction: float | None = None
    message: str | None = None
    error: Error = None
    outputs: Value = field(default=None, compare=False)
    #: On ``node.paused``: the inputs the node will run with.
    inputs: Value = field(default=None, compare=False)
    duration_ms: float | None = None
    delay_ms: float | None = None
    #: CPU time of the node's attempts so far (see ``NodeResult.cpu_ms``).
    cpu_ms: float | None = None
    #: On ``node.completed``: the execution whose outputs the node reused (a resume).
    resumed_from: str | None = None
    #: What the run's ``inject`` option put in place of the node's work (``error``,
    #: ``timeout``, ``delay:MS``), from its start on.
    injected: str | None = None


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """The payload of ``flow_saved`` and ``flow_deleted``: the flow's id and where it is
    stored."""

    __pydantic_config__ = CONFIG

    type: str
    flow_id: str
    location: str
    timestamp: Timestamp
