"""The API of the triggers (``/api/triggers...``) and the webhooks' route."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from atomiton_core.errors import ExecutionConflict, RequestError
from atomiton_core.server.triggers.state import HOOKS_PREFIX

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from atomiton_core.server.triggers.engine import TriggerEngine
    from atomiton_core.server.triggers.state import ActiveTrigger

__all__ = ["trigger_routes"]


def trigger_routes(engine: TriggerEngine) -> list[Any]:
    """The API of the triggers (``/api/triggers...``) and the webhooks (``/api/hooks/...``)."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def list_triggers(request: Request) -> Response:
        await engine.settled()
        flow_id = request.query_params.get("flowId")
        return JSONResponse(
            {"triggers": engine.states(flow_id), "problems": engine.problem_list(flow_id)}
        )

    async def found(request: Request) -> ActiveTrigger:
        await engine.settled()
        return engine.get(request.path_params["flow_id"], request.path_params["trigger_id"])

    async def get_trigger(request: Request) -> Response:
        trig = await found(request)
        engine.refresh_last_runs()
        return JSONResponse(trig.state())

    async def pause(request: Request) -> Response:
        trig = await found(request)
        engine.pause(trig)
        return JSONResponse(trig.state())

    async def resume(request: Request) -> Response:
        trig = await found(request)
        engine.resume(trig)
        return JSONResponse(trig.state())

    async def fire(request: Request) -> Response:
        """Fire a trigger by hand: 202 and the run's id (or its place in the queue); 409 if
        its policy skips it now, or if the flow disables it (``enabled: false``)."""
        trig = await found(request)
        if not trig.spec.enabled:
            raise ExecutionConflict(
                f"trigger {trig.key} is disabled (enabled: false in the flow): it never fires",
                hint="enable it in the flow, or start the flow itself (POST /api/executions)",
            )
        raw = await engine.read_body(request) if engine.read_body is not None else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise RequestError(f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError('the body must be a JSON object ({"inputs": {...}}) or empty')
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise RequestError("`inputs` must be an object of variable values")
        outcome = await engine.fire_now(trig, inputs)
        if outcome.status == "failed":
            assert outcome.error is not None
            raise outcome.error
        if outcome.status == "skipped":
            raise ExecutionConflict(f"trigger {trig.key}: not run: {outcome.reason}")
        answer: dict[str, Any] = {"trigger": trig.key, "flowId": trig.flow_id}
        answer["status"] = "running" if outcome.execution is not None else "queued"
        headers = None
        if outcome.execution is not None:
            eid = outcome.execution.execution_id
            answer["executionId"] = eid
            headers = {"Location": f"/api/executions/{eid}"}
        else:
            answer["position"] = outcome.position
        return JSONResponse(answer, 202, headers=headers)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route("/api/triggers", list_triggers, methods=["GET"]),
        Route("/api/triggers/{flow_id}/{trigger_id}", get_trigger, methods=["GET"]),
        Route("/api/triggers/{flow_id}/{trigger_id}/pause", pause, methods=["POST"]),
        Route("/api/triggers/{flow_id}/{trigger_id}/resume", resume, methods=["POST"]),
        Route("/api/triggers/{flow_id}/{trigger_id}/fire", fire, methods=["POST"]),
        Route(HOOKS_PREFIX + "{path:path}", engine.handle_webhook, methods=methods),
    ]
