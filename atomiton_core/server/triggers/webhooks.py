"""Webhooks: ``/api/hooks/<path>`` — the token (unless public), the HMAC-SHA256 signature
under the trigger's secret, the request's body, query and headers as the run's inputs, and
the answer (202 with the run's id, or the flow's outputs when it ends in time)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from atomiton_core.errors import (
    AtomitonError,
    ExecutionConflict,
    RequestError,
    RouteNotFound,
    TooManyExecutions,
    Unauthorized,
)
from atomiton_core.server.triggers.state import HOOKS_PREFIX, SECRET_REFERENCE, Firing, now_iso

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Scope

    from atomiton_core.server.triggers.engine import TriggerEngine
    from atomiton_core.server.triggers.state import ActiveTrigger

__all__ = ["handle_webhook", "is_public", "sign"]

_log = logging.getLogger("atomiton.triggers")

#: Request headers never handed to a run.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: Variables that receive a whole part of a webhook's request.
_REQUEST_PARTS = ("body", "query", "headers")


def sign(secret: str, body: bytes) -> str:
    """The signature header value a webhook with ``secret`` expects for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_public(engine: TriggerEngine, scope: Scope) -> bool:
    """Whether a request is for a public webhook (the token gate lets it through)."""
    path = str(scope.get("path", ""))
    if scope.get("type") != "http" or not path.startswith(HOOKS_PREFIX):
        return False
    route = (str(scope.get("method", "")).upper(), path[len(HOOKS_PREFIX) :].strip("/"))
    trig = engine.hooks.get(route)
    return trig is not None and trig.spec.public and trig.spec.enabled


def _secret(engine: TriggerEngine, trig: ActiveTrigger) -> str:
    secret = trig.spec.secret or ""
    match = SECRET_REFERENCE.match(secret)
    if match is None:
        return secret
    name = next(g for g in match.groups() if g)
    for provider in engine.conductor.secret_providers:
        value = provider.get(name)
        if value is not None:
            return value
    where = "; ".join(p.describe() for p in engine.conductor.secret_providers) or "none"
    trig.last_error = {
        "code": "UNAUTHORIZED",
        "message": f"its secret {name!r} is not set, so no request can be checked",
        "hint": f"the server looks secrets up in: {where}",
        "at": now_iso(),
    }
    _log.error("trigger %s: its secret %r is not set (looked up in %s)", trig.key, name, where)
    engine.emit(trig)
    raise Unauthorized(
        "this webhook's secret is not set on the server, so no request can be checked",
        hint="the server's log and GET /api/triggers say which",
    )


def _check_signature(
    engine: TriggerEngine, trig: ActiveTrigger, request: Request, body: bytes
) -> None:
    header = trig.spec.signature_header
    expected = sign(_secret(engine, trig), body)
    given = request.headers.get(header, "").strip().lower()
    if "=" not in given:  # the bare hex digest
        given = "sha256=" + given
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(
            f"the request's {header} header is missing or wrong",
            hint=f"send {header}: sha256=<the hex HMAC-SHA256 of the body under the "
            "webhook's secret>",
        )


def _request_inputs(
    trig: ActiveTrigger, request: Request, body: bytes
) -> tuple[dict[str, Any], list[str]]:
    """The run's inputs from a request, and the names it gave that the flow does not
    declare (left out, and said in the answer)."""
    variables = trig.variables
    data: Any = None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body.strip():
        if media == "application/x-www-form-urlencoded":
            data = dict(parse_qsl(body.decode("utf-8", "replace")))
        elif media in ("", "application/json") or media.endswith("+json"):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise RequestError(f"the body is not valid JSON: {exc}") from None
        else:
            data = body.decode("utf-8", "replace")
    query = dict(request.query_params)
    skip = _PRIVATE_HEADERS | {trig.spec.signature_header.lower()}
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in skip}
    inputs: dict[str, Any] = {}
    ignored: list[str] = []
    spread = [("query", query), ("body", data if isinstance(data, dict) else {})]
    for part, values in spread:
        for name, value in values.items():
            if name in variables and name not in _REQUEST_PARTS:
                inputs[name] = value
            elif part not in variables:
                ignored.append(name)
    parts = {"body": data, "query": query, "headers": headers}
    for part in _REQUEST_PARTS:
        if part in variables:
            inputs[part] = parts[part]
    inputs.update(trig.spec.inputs)  # the trigger's own inputs stand
    return inputs, sorted(set(ignored))


async def handle_webhook(engine: TriggerEngine, request: Request) -> Response:
    """``/api/hooks/<path>``: check, fire, answer (see the package's notes)."""
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    hook = str(request.path_params.get("path", "")).strip("/")
    method = request.method.upper()
    trig = engine.hooks.get((method, hook))
    if trig is None and engine.reloading:  # a flow saved a moment ago may bring it
        await engine.settled()
        trig = engine.hooks.get((method, hook))
    if trig is None:
        methods = sorted(m for (m, p) in engine.hooks if p == hook)
        if methods:
            raise HTTPException(405, f"{HOOKS_PREFIX}{hook} takes {', '.join(methods)}")
        raise RouteNotFound(
            f"no webhook at {HOOKS_PREFIX}{hook}",
            hint="GET /api/triggers lists the webhooks of the stored flows",
        )
    body = await engine.read_body(request) if engine.read_body is not None else b""
    if trig.spec.secret:
        _check_signature(engine, trig, request, body)
    if not trig.spec.enabled:
        raise ExecutionConflict(f"trigger {trig.key} is disabled (enabled: false)")
    if trig.paused:
        raise ExecutionConflict(
            f"trigger {trig.key} is paused",
            hint=f"POST /api/triggers/{trig.flow_id}/{trig.id}/resume",
        )
    inputs, ignored = _request_inputs(trig, request, body)
    client = request.client.host if request.client is not None else None
    detail = {"method": method, "path": hook, "remote": client}
    outcome = await engine.fire(trig, Firing("webhook", inputs, detail))
    base: dict[str, Any] = {"flowId": trig.flow_id, "trigger": trig.key}
    if ignored:
        base["ignored"] = ignored
    if outcome.status == "failed":
        assert outcome.error is not None
        raise outcome.error
    if outcome.status == "skipped":
        if trig.spec.policy == "skip" or outcome.reason == "it is paused":
            raise ExecutionConflict(f"trigger {trig.key}: not run: {outcome.reason}")
        raise TooManyExecutions(f"trigger {trig.key}: not run: {outcome.reason}")
    wait = trig.spec.timeout / 1000 if trig.spec.respond == "result" else 0.0
    deadline = time.monotonic() + wait
    execution = outcome.execution
    if execution is None and wait > 0 and outcome.firing is not None:
        started = outcome.firing.started
        assert started is not None
        with contextlib.suppress(TimeoutError, AtomitonError):
            execution = await asyncio.wait_for(asyncio.shield(started), wait)
    if execution is None:
        return JSONResponse({**base, "status": "queued", "position": outcome.position}, 202)
    eid = execution.execution_id
    location = {"Location": f"/api/executions/{eid}"}
    record = engine.hub.get(eid)
    left = deadline - time.monotonic()
    if record is not None and left > 0 and await record.wait_finished(left):
        result = json.loads(record.result_body())
        answer = {
            **base,
            "executionId": eid,
            "status": result.get("status"),
            "outputs": result.get("outputs"),
            "error": result.get("error"),
        }
        return JSONResponse(answer, 200, headers=location)
    return JSONResponse({**base, "executionId": eid, "status": "running"}, 202, location)
