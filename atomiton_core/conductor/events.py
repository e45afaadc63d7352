"""Emitting a run's signals, with the one guard on receivers.

Payloads are built only when a signal has receivers (``signal.receivers`` is tested first), so
an unobserved run pays one attribute test per step. A receiver that raises while a run is
going fails that run with its error (the node it observed keeps its own outcome); one that
raises on a finishing event is logged, as the run has ended already.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from atomiton_core import signals
from atomiton_core.errors import AtomitonError, ExecutionError
from atomiton_core.results import ExecutionStatus, NodeResult

if TYPE_CHECKING:
    from blinker import NamedSignal

    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.run import Run

__all__ = ["emit_execution", "emit_node"]

_log = logging.getLogger("atomiton.signals")
_now = time.time


def _send(run: Run, signal: NamedSignal, event: Any) -> None:
    try:
        signal.send(run.conductor, event=event)
    except Exception as exc:
        if run.result.status is not ExecutionStatus.RUNNING:
            _log.exception("a receiver of %s raised after the run ended", signal.name)
            return
        if isinstance(exc, AtomitonError):  # e.g. a plugin's node hook (PluginError)
            run.receiver_failed(exc)
            return
        err = ExecutionError(
            f"a receiver of signal {signal.name!r} raised {type(exc).__name__}: {exc}",
            hint="signal receivers observe a run; make this one handle its own errors",
        )
        err.__cause__ = exc
        run.receiver_failed(err)


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
        ),
    )
