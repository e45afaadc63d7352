"""Emitting a run's signals, with the one guard on receivers.

Payloads are built only when a signal has receivers (``signal.receivers`` is tested first), so
an unobserved run pays one attribute test per step. Each receiver is called in turn, as
blinker's ``send`` would (this loop costs no more than ``send``, which asks of every receiver
whether it is a coroutine function): a receiver that raises never fails the run it observes
and never keeps the receivers after it from hearing the event. Its error is logged
(``atomiton.signals``) once per receiver and run, with the traceback; how many times it
raised in all is said when the run ends (:meth:`~atomiton_core.conductor.run.Run.receiver_raised`).
The one exception is the conductor's own receivers for plugins' node hooks: a ``PluginError``
they raise fails the run, as ``hookspecs`` documents.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from atomiton_core import signals
from atomiton_core.errors import PluginError
from atomiton_core.results import ExecutionStatus, NodeResult

if TYPE_CHECKING:
    from blinker import NamedSignal

    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.run import Run

__all__ = ["emit_execution", "emit_node"]

_log = logging.getLogger("atomiton.signals")
_now = time.time


def _send(run: Run, signal: NamedSignal, event: Any) -> None:
    if signal.is_muted:
        return
    sender = run.conductor
    for receiver in signal.receivers_for(sender):
        try:
            answer = receiver(sender, event=event)
        except PluginError as exc:  # a plugin's before-node hook: it fails the run
            run.receiver_failed(exc)
        except Exception as exc:
            run.receiver_raised(signal, receiver, exc)
        else:
            if answer is not None and inspect.iscoroutine(answer):
                answer.close()
                run.receiver_raised(
                    signal,
                    receiver,
                    TypeError(
                        "it is a coroutine function; signal receivers are called, not awaited"
                    ),
                )


def emit_node(
    run: Run,
    signal: NamedSignal,
    kind: str,
    pn: PlannedNode,
    res: NodeResult,
    **extra: Any,
) -> None:
    """Send a node signal about ``res`` (callers test ``signal.receivers`` first when hot)."""
    if not signal.receivers:
        return
    _send(
        run,
        signal,
        signals.NodeEvent(
            type=kind,
            execution_id=run.execution_id,
            flow_id=run.flow_id,
            node_id=pn.id,
            node_type=pn.type_id,
            path=res.path,
            timestamp=_now(),
            progress=run.current_progress(),
            status=str(res.status),
            attempt=res.attempts,
            error=res.error,
            duration_ms=res.duration_ms,
            cpu_ms=res.cpu_ms,
            resumed_from=res.resumed_from,
            injected=res.injected,
            **extra,
        ),
    )


def emit_execution(run: Run, signal: NamedSignal, kind: str) -> None:
    if not signal.receivers:
        return
    res = run.result
    _send(
        run,
        signal,
        signals.ExecutionEvent(
            type=kind,
            execution_id=run.execution_id,
            flow_id=run.flow_id,
            timestamp=_now(),
            progress=run.progress,
            status=str(res.status),
            error=res.error,
            result=res if res.status is not ExecutionStatus.RUNNING else None,
            trigger=run.trigger,
        ),
    )
