"""The server's side of debugging a run (see :mod:`atomiton_core.conductor.debug`).

``POST /api/executions`` takes ``breakpoints`` (node ids or paths), ``step`` (pause before
the first node), ``inject`` (``{node: "error" | "timeout" | "delay:MS"}``) and ``slowMo``
(milliseconds). ``GET /api/executions/{id}/debug`` answers the run's debugging state: its
breakpoints, whether it is paused, each paused node with its inputs; ``POST`` to it with an
``action`` (``step``, ``continue``, ``abort``) and/or new ``breakpoints`` steers it and
answers the state after. Each pause is also a ``node.paused`` event on the WebSockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from atomiton_core import wire
from atomiton_core.errors import ExecutionConflict, RequestError

if TYPE_CHECKING:
    from atomiton_core.conductor.conductor import Execution
    from atomiton_core.conductor.debug import Debugger, PausedNode

__all__ = ["ACTIONS", "apply", "start_options", "state"]

#: What ``POST /api/executions/{id}/debug`` can ask.
ACTIONS = ("step", "continue", "abort")


def start_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """The debugging keywords of ``Conductor.start`` from an execution request's body."""
    options: dict[str, Any] = {}
    points = body.get("breakpoints")
    if points is not None:
        options["breakpoints"] = _names(points, "breakpoints")
    step = body.get("step")
    if step is not None:
        if not isinstance(step, bool):
            raise RequestError("`step` must be true or false")
        options["step"] = step
    inject = body.get("inject")
    if inject is not None:
        if not isinstance(inject, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in inject.items()
        ):
            raise RequestError(
                '`inject` must be an object of node id -> "error", "timeout" or "delay:MS"'
            )
        options["inject"] = inject
    slow = body.get("slowMo")
    if slow is not None:
        if isinstance(slow, bool) or not isinstance(slow, int | float) or slow < 0:
            raise RequestError("`slowMo` must be milliseconds, 0 or more")
        options["slow_mo"] = float(slow)
    return options


def _names(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RequestError(f"`{what}` must be a list of node ids or paths")
    return list(value)


def _debugger(execution: Execution) -> Debugger:
    debugger = execution.debugger
    if debugger is None:
        raise ExecutionConflict(
            f"execution {execution.execution_id!r} was started without debugging",
            hint="start it with breakpoints, step, inject or slowMo to debug it",
        )
    return debugger


def state(execution: Execution) -> dict[str, Any]:
    """What ``GET /api/executions/{id}/debug`` answers."""
    debugger = _debugger(execution)
    return {
        "executionId": execution.execution_id,
        "status": str(execution.snapshot.status),
        "breakpoints": sorted(debugger.breakpoints),
        "paused": [_paused(p) for p in debugger.paused],
        "halted": debugger.halted,
        "inject": {k: str(v) for k, v in debugger.injections.items()},
        "slowMo": debugger.slow_mo_ms,
    }


def _paused(paused: PausedNode) -> dict[str, Any]:
    return {
        "nodeId": paused.node_id,
        "nodeType": paused.node_type,
        "path": paused.path,
        "reason": paused.reason,
        "since": paused.since,
        "inputs": wire.jsonable(paused.inputs),
    }


def apply(execution: Execution, body: Mapping[str, Any]) -> dict[str, Any]:
    """Steer a debugged execution as ``body`` asks; its state after."""
    debugger = _debugger(execution)
    action = body.get("action")
    points = body.get("breakpoints")
    if action is None and points is None:
        raise RequestError("give an `action` (step, continue or abort) or `breakpoints`")
    if action is not None and action not in ACTIONS:
        raise RequestError("`action` must be step, continue or abort")
    if points is not None:
        debugger.set_breakpoints(_names(points, "breakpoints"))
    if action == "step":
        debugger.step()
    elif action == "continue":
        debugger.cont()
    elif action == "abort":
        debugger.abort()
    return state(execution)
