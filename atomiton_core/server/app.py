"""The HTTP + WebSocket API of one conductor, and the live execution page, as a Starlette app.

Everything under ``/api`` except ``/api/health`` (and the webhooks of triggers marked
``public``, which their secret protects: see atomiton_core.server.triggers) needs the bearer
token: an ``Authorization: Bearer <token>`` header, or (WebSockets only, since browsers
cannot set headers there) a ``?token=`` query parameter. The page at ``/`` and its static
files need none; they hold no data and ask for the token themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from atomiton_core import wire
from atomiton_core.conductor.conductor import Conductor, Execution
from atomiton_core.conductor.plan import FlowPlan
from atomiton_core.errors import (
    AtomitonError,
    ExecutionConflict,
    ExecutionNotFound,
    FlowIdMismatch,
    FlowLoadError,
    FlowValidationError,
    NoStorage,
    PayloadTooLarge,
    RequestError,
    RouteNotFound,
    StorageError,
    TooManyExecutions,
    Unauthorized,
)
from atomiton_core.flow.models import Flow
from atomiton_core.flow.validation import validate
from atomiton_core.flow.yaml_io import dumps_flow, loads_flow, read_plain, to_plain
from atomiton_core.nodes.expressions import ENGINE
from atomiton_core.server import debugging
from atomiton_core.server.events import CLOSE_TOO_SLOW, END, OVERFLOW, EventHub, Subscriber
from atomiton_core.server.graph import flow_graph, run_graph
from atomiton_core.server.openapi import openapi_json
from atomiton_core.server.plans import PlanCache
from atomiton_core.server.triggers import TriggerEngine, trigger_routes
from atomiton_core.storage.runs import new_run_id, read_events_after
from atomiton_core.version import __version__

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "uvicorn_settings", "uvicorn_ws_protocol"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: ``?wait=true``: how long a request waits for its execution to finish (seconds).
DEFAULT_WAIT_S = 30.0
#: The longest ``?wait=<seconds>`` taken.
MAX_WAIT_S = 300.0
#: A flow given in the body of at most this many bytes is planned on the loop (tens of
#: microseconds); a larger one in a worker thread.
INLINE_PLAN_BYTES = 16 * 1024
#: A WebSocket sender hands the loop back after sending for this long (seconds), so one
#: client reading a long history does not hold up the engine and the other requests.
SEND_SLICE_S = 0.002
STATIC_DIR = Path(__file__).parent / "static"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
#: Close code for a WebSocket refused because it lacked the token, where the server cannot
#: answer the handshake with HTTP 401.
CLOSE_POLICY = 1008


def _error_response(exc: Exception) -> JSONResponse:
    """Every error answer: ``{"error": <the error on the wire>}`` with the class's status."""
    if isinstance(exc, HTTPException):
        err: AtomitonError = RouteNotFound(str(exc.detail))
        return JSONResponse({"error": wire.dump(err)}, exc.status_code)
    if not isinstance(exc, AtomitonError):
        raise exc
    body: dict[str, Any] = {"error": wire.dump(exc)}
    if isinstance(exc, FlowValidationError):
        body["report"] = wire.dump(exc.report)
    return JSONResponse(body, exc.http_status)


async def _handle_error(request: Request, exc: Exception) -> Response:
    return _error_response(exc)


class TokenGate:
    """Refuse ``/api`` requests without the bearer token (``/api/health`` stays open, and so
    do the requests ``open_when`` says are: public webhooks, which check their own secret)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        open_paths: Iterable[str] = ("/api/health",),
        open_when: Callable[[Scope], bool] | None = None,
    ):
        self.app = app
        self.token = token.encode()
        self.open_paths = frozenset(open_paths)
        self.open_when = open_when

    def _protected(self, path: str) -> bool:
        return (path == "/api" or path.startswith("/api/")) and path not in self.open_paths

    def _presented(self, scope: Scope) -> str | None:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        for name, value in headers:
            if name == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return credentials.strip()
        if scope["type"] == "websocket":
            query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
            token: str | None = query.get("token")
            return token
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.open_when is not None and self.open_when(scope):
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope)
        if presented is not None and secrets.compare_digest(presented.encode(), self.token):
            await self.app(scope, receive, send)
            return
        refusal = Unauthorized(
            "missing or wrong token" if presented is not None else "this endpoint needs a token",
            hint="send `Authorization: Bearer <token>` (WebSockets: or ?token=<token>);"
            " `atomiton serve` prints the token",
        )
        response = JSONResponse(
            {"error": wire.dump(refusal)},
            refusal.http_status,
            headers={"WWW-Authenticate": 'Bearer realm="atomiton"'},
        )
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:
            await websocket.close(CLOSE_POLICY, "unauthorized")


class HostGate:
    """Answer only requests whose ``Host`` names this server (``allowed_hosts``): a page on
    another site that rebinds its name to 127.0.0.1 reaches nothing (DNS rebinding)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    @staticmethod
    def _host(scope: Scope) -> str:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        for name, value in headers:
            if name == b"host":
                text = value.decode("latin-1").strip().lower()
                if text.startswith("["):  # [::1]:8000
                    return text[1:].partition("]")[0]
                return text.rpartition(":")[0] if text.count(":") == 1 else text
        return ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._host(scope) in self.allowed:
            await self.app(scope, receive, send)
            return
        refusal = RequestError(
            f"this server does not answer for the host {self._host(scope)!r}",
            hint="reach it by the address it listens on (atomiton serve --host)",
        )
        response = JSONResponse({"error": wire.dump(refusal)}, 400)
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        await websocket.close(CLOSE_POLICY, "unknown host")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _wants_yaml(request: Request) -> bool:
    if request.query_params.get("format", "").lower() in ("yaml", "yml"):
        return True
    accept = request.headers.get("accept", "").lower()
    return any(t in accept for t in YAML_TYPES)


def _with_id(data: Any, expected_id: str | None) -> Any:
    """Fill in an absent ``id`` from the URL; refuse one that differs from it."""
    if not isinstance(data, dict) or expected_id is None:
        return data
    if "id" not in data:
        return {"id": expected_id, **data}
    if data["id"] != expected_id:
        raise FlowIdMismatch(
            f"the flow's id {data['id']!r} does not match the URL's {expected_id!r}",
            hint="leave `id` out of the body, or PUT it to /api/flows/<its id>",
        )
    return data


def _flow_from_text(text: str, *, expected_id: str | None, source: str) -> Flow:
    """YAML (or JSON) text to a flow; comments are kept when the text names its own id."""
    if expected_id is not None:
        plain = read_plain(text, source=source)
        if not isinstance(plain, dict) or "id" not in plain:
            return Flow.from_data(_with_id(plain, expected_id), source=source)
        _with_id(plain, expected_id)
    return loads_flow(text, source=source)


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _decode(body: bytes, source: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowLoadError(f"{source}: not UTF-8 text: {exc}", source=source) from None


class Api:
    """The endpoints, sharing one conductor and one event hub."""

    def __init__(
        self,
        conductor: Conductor,
        hub: EventHub,
        *,
        max_body_bytes: int,
        max_running: int,
    ) -> None:
        self.conductor = conductor
        self.hub = hub
        self.max_body_bytes = max_body_bytes
        self.max_running = max_running
        self.plans = PlanCache(conductor)
        hub.on_flow_change.append(self.plans.clear)

    # -- helpers ---------------------------------------------------------------------------
    async def body(self, request: Request) -> bytes:
        """The request body, refused with 413 past the limit (declared or actually sent)."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise RequestError("Content-Length is not a number") from None
            if size > limit:
                raise self._too_large(size)
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise self._too_large(total)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body has {size} bytes or more; this server accepts at most "
            f"{self.max_body_bytes}",
            hint="start the server with a larger --max-body-bytes",
        )

    async def json_body(self, request: Request) -> dict[str, Any]:
        return (await self.json_body_sized(request))[0]

    async def json_body_sized(self, request: Request) -> tuple[dict[str, Any], int]:
        """The body as a JSON object, and its size in bytes."""
        raw = await self.body(request)
        try:
            data = json.loads(raw or b"null")
        except (ValueError, RecursionError) as exc:  # bad JSON, a 5,000-digit number, depth
            raise RequestError(f"the body is not valid JSON: {_json_problem(exc)}") from None
        if not isinstance(data, dict):
            raise RequestError("the body must be a JSON object")
        return data, len(raw)

    async def flow_body(self, request: Request, expected_id: str | None) -> Flow:
        """A flow from a JSON or YAML body (chosen by Content-Type; YAML when unsaid)."""
        raw = await self.body(request)
        source = "request body"
        if _media_type(request) == "application/json" or _media_type(request).endswith("+json"):
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise FlowLoadError(
                    f"{source}: not valid JSON: {_json_problem(exc)}", source=source
                ) from None
            return Flow.from_data(_with_id(to_plain(data, source), expected_id), source=source)
        return _flow_from_text(_decode(raw, source), expected_id=expected_id, source=source)

    def storage(self) -> Any:
        if self.conductor.storage is None:
            raise NoStorage("this server has no flow storage")
        return self.conductor.storage

    # -- endpoints -------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def nodes(self, request: Request) -> Response:
        catalogue = self.conductor.catalogue
        return JSONResponse(
            {
                "nodeTypes": [wire.dump(catalogue[t]) for t in sorted(catalogue)],
                "disabled": sorted(catalogue.disabled),
                "problems": [wire.dump(p) for p in catalogue.problems],
            }
        )

    async def list_flows(self, request: Request) -> Response:
        found = await asyncio.to_thread(self.storage().list)
        return JSONResponse({"flows": [wire.dump(s) for s in found]})

    async def get_flow(self, request: Request) -> Response:
        flow = await asyncio.to_thread(self.storage().load, request.path_params["flow_id"])
        if _wants_yaml(request):
            return Response(dumps_flow(flow), media_type="application/yaml")
        return JSONResponse(flow.to_data())

    async def put_flow(self, request: Request) -> Response:
        flow_id = request.path_params["flow_id"]
        storage = self.storage()
        storage.flow_location(flow_id)  # refuses ids that cannot be stored (400)
        flow = await self.flow_body(request, flow_id)
        report = validate(flow, self.conductor.catalogue, templates=ENGINE)
        if not report.ok:
            raise FlowValidationError(report, source="request body")
        existed = await asyncio.to_thread(storage.exists, flow_id)
        location = await asyncio.to_thread(storage.save, flow)
        return JSONResponse(
            {"id": flow.id, "location": location, "report": wire.dump(report)},
            200 if existed else 201,
        )

    async def delete_flow(self, request: Request) -> Response:
        await asyncio.to_thread(self.storage().delete, request.path_params["flow_id"])
        return Response(status_code=204)

    async def validate_flow(self, request: Request) -> Response:
        flow = await self.flow_body(request, None)
        report = validate(flow, self.conductor.catalogue, templates=ENGINE)
        return JSONResponse(wire.dump(report))

    async def start_execution(self, request: Request) -> Response:
        """Start an execution: 202 at once, or with ``?wait=<seconds>`` (``true``: 30 s) 200
        and the result if it finishes by then (202 if not, as without ``wait``)."""
        wait = _wait_seconds(request)
        body, size = await self.json_body_sized(request)
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise RequestError("`inputs` must be an object of variable values")
        flow_id, given = body.get("flowId"), body.get("flow")
        if (flow_id is None) == (given is None):
            raise RequestError("give exactly one of `flowId` (a stored flow) or `flow`")
        if flow_id is not None and not isinstance(flow_id, str):
            raise RequestError("`flowId` must be a string")
        resume = body.get("resume")
        if resume is not None and not isinstance(resume, str):
            raise RequestError("`resume` must be the id of a stored run")
        cache = body.get("cache")
        if cache is not None and cache not in ("use", "refresh", "off"):
            raise RequestError('`cache` must be "use", "refresh" or "off"')
        debug = debugging.start_options(body)
        if flow_id is not None:
            self.storage()
            prepared = await self.plans.plan(flow_id)
        elif size <= INLINE_PLAN_BYTES:  # small: planning costs less than a thread hand-off
            prepared = self._plan_given(given)
        else:
            prepared = await asyncio.to_thread(self._plan_given, given)
        if self.hub.running_count >= self.max_running:
            raise TooManyExecutions(
                f"{self.max_running} executions are running; try again when some finish",
            )
        prior = None
        if resume is not None:  # the stored run is read off the loop
            prior = await asyncio.to_thread(self.conductor.load_prior, resume)
        execution = self.conductor.start(
            prepared,
            inputs,
            execution_id=new_run_id(),
            resume=prior,
            cache=cache,
            **debug,
        )
        record = self.hub.track(execution)
        eid = execution.execution_id
        location = {"Location": f"/api/executions/{eid}"}
        if wait is not None and await record.wait_finished(wait):
            return Response(record.result_body(), 200, location, "application/json")
        return JSONResponse(
            {"executionId": eid, "flowId": execution.flow_id, "status": "running"},
            202,
            headers=location,
        )

    def _plan_given(self, given: Any) -> FlowPlan:
        """The plan of a flow given in the request (its data, or YAML text)."""
        if isinstance(given, str):
            flow = loads_flow(given, source="request body")
        else:
            flow = Flow.from_data(given, source="request body")
        return self.conductor.prepare(flow)

    async def list_executions(self, request: Request) -> Response:
        """The executions this server holds, then those in storage only (earlier servers)."""
        listed = [r.summary() for r in reversed(self.hub.records.values())]
        storage = self.conductor.storage
        if storage is not None:
            known = {s["executionId"] for s in listed}
            stored = await asyncio.to_thread(storage.runs)
            listed += [
                {**r.summary(), "progress": 1.0 if r.status != "running" else None}
                for r in stored
                if r.execution_id not in known
            ]
        return JSONResponse({"executions": listed})

    async def list_runs(self, request: Request) -> Response:
        """Stored runs, newest first: ``?flowId=`` / ``?status=`` filter them, ``?limit=`` (at
        most that many: only those records are read) and ``?before=<run id>`` (the last run of
        the previous page) page through them."""
        query = request.query_params
        limit = query.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) <= 9):
            raise RequestError("`limit` must be a whole number")
        found = await asyncio.to_thread(
            self.storage().runs,
            flow_id=query.get("flowId"),
            status=query.get("status"),
            limit=None if limit is None else int(limit),
            before=query.get("before"),
        )
        return JSONResponse({"runs": [r.summary() for r in found]})

    async def flow_stats(self, request: Request) -> Response:
        """Each node's p50/p95 duration and failure rate over the flow's last runs
        (``?last=N``, default 50; see atomiton_core.storage.stats)."""
        last = request.query_params.get("last", "50")
        if not (last.isascii() and last.isdigit() and len(last) <= 9 and int(last) >= 1):
            raise RequestError("`last` must be a whole number of runs, at least 1")
        stats = await asyncio.to_thread(
            self.storage().stats, request.path_params["flow_id"], last=int(last)
        )
        return JSONResponse(wire.dump(stats))

    async def get_run(self, request: Request) -> Response:
        storage, run_id = self.storage(), request.path_params["run_id"]

        def body() -> bytes:  # a large record is read and encoded off the loop
            return _json_bytes(storage.record(run_id).data)

        return Response(await asyncio.to_thread(body), media_type="application/json")

    async def run_events(self, request: Request) -> Response:
        """A stored run's log: ``events`` in order, and ``next``, the number of its lines;
        ``?after=N`` gives only the events after the first N lines (a reader following a
        run that is still being written asks with the ``next`` it was given)."""
        eid = request.path_params["run_id"]
        after = request.query_params.get("after", "0")
        if not (after.isascii() and after.isdigit() and len(after) <= 12):
            raise RequestError("`after` must be a whole number of lines (the `next` given)")
        storage = self.storage()
        await asyncio.to_thread(storage.record, eid)  # 404 for a run that is not there

        def body() -> bytes:  # a long run's log is read and encoded off the loop
            events, lines = read_events_after(storage, eid, int(after))
            return _json_bytes({"events": events, "next": lines})

        return Response(await asyncio.to_thread(body), media_type="application/json")

    async def flow_graph(self, request: Request) -> Response:
        """A stored flow laid out for drawing (``?collapsed=<container path>``, repeatable:
        containers drawn as one box); see atomiton_core.server.graph."""
        flow = await asyncio.to_thread(self.storage().load, request.path_params["flow_id"])
        collapsed = request.query_params.getlist("collapsed")
        catalogue = self.conductor.catalogue
        body = await asyncio.to_thread(flow_graph, flow, catalogue, collapsed=collapsed)
        return JSONResponse(body)

    async def run_graph(self, request: Request) -> Response:
        """The flow a stored run ran, laid out for drawing (``exact`` says whether it is
        still the flow the run ran); ``?collapsed=`` as for a flow's graph."""
        storage, run_id = self.storage(), request.path_params["run_id"]
        collapsed = request.query_params.getlist("collapsed")
        catalogue = self.conductor.catalogue
        body = await asyncio.to_thread(run_graph, storage, run_id, catalogue, collapsed=collapsed)
        return JSONResponse(body)

    async def delete_run(self, request: Request) -> Response:
        eid = request.path_params["run_id"]
        record = self.hub.get(eid)
        if record is not None and not record.finished:
            raise ExecutionConflict(f"run {eid!r} is still running; cancel it first")
        await asyncio.to_thread(self.storage().delete_run, eid)
        return Response(status_code=204)

    async def get_execution(self, request: Request) -> Response:
        """The result, or the snapshot of a running execution; ``?wait=<seconds>`` waits
        (at most that long) for a running one to finish first."""
        eid = request.path_params["execution_id"]
        wait = _wait_seconds(request)
        record = self.hub.get(eid)
        if record is not None:
            if wait is not None and not record.finished:
                await record.wait_finished(wait)
            if record.finished:
                return Response(record.result_body(), media_type="application/json")
            return JSONResponse(record.to_dict())
        storage = self.conductor.storage
        if storage is not None:
            with contextlib.suppress(StorageError):
                data = await asyncio.to_thread(storage.load_run, eid)
                return JSONResponse({**data, "progress": 1.0})
        raise ExecutionNotFound(f"no execution {eid!r} on this server")

    def _running(self, eid: str) -> Execution:
        """The execution ``eid`` as it runs on this server (404 if unknown, 409 if over)."""
        record = self.hub.get(eid)
        if record is None:
            raise ExecutionNotFound(f"no execution {eid!r} on this server")
        if record.finished or record.execution is None:
            raise ExecutionConflict(f"execution {eid!r} already finished ({record.status})")
        return record.execution

    async def get_debug(self, request: Request) -> Response:
        """A debugged execution's breakpoints and paused nodes (see server.debugging)."""
        execution = self._running(request.path_params["execution_id"])
        return JSONResponse(debugging.state(execution))

    async def post_debug(self, request: Request) -> Response:
        """Step, continue or abort a debugged execution, or set its breakpoints."""
        execution = self._running(request.path_params["execution_id"])
        body = await self.json_body(request)
        return JSONResponse(debugging.apply(execution, body))

    async def cancel_execution(self, request: Request) -> Response:
        eid = request.path_params["execution_id"]
        record = self.hub.get(eid)
        if record is None:
            raise ExecutionNotFound(f"no execution {eid!r} on this server")
        if record.finished:
            raise ExecutionConflict(f"execution {eid!r} already finished ({record.status})")
        if record.execution is not None:
            record.execution.cancel()
        else:
            self.conductor.cancel(eid)
        return JSONResponse({"executionId": eid, "status": "cancelling"}, 202)

    async def execution_events(self, websocket: WebSocket) -> None:
        eid = websocket.path_params["execution_id"]
        record = self.hub.get(eid)
        if record is None:
            missing = ExecutionNotFound(f"no execution {eid!r}")
            response = JSONResponse({"error": wire.dump(missing)}, missing.http_status)
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                await websocket.send_denial_response(response)
            else:
                await websocket.close(CLOSE_POLICY, "no such execution")
            return
        await websocket.accept()
        sub = self.hub.subscribe(record)
        try:
            await _stream(websocket, sub)
        finally:
            self.hub.unsubscribe(record, sub)

    async def all_events(self, websocket: WebSocket) -> None:
        await websocket.accept()
        sub = self.hub.subscribe_all()
        try:
            await _stream(websocket, sub)
        finally:
            self.hub.unsubscribe_all(sub)

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


def _json_bytes(data: Any) -> bytes:
    """``data`` as JSONResponse writes it, to encode in a worker thread."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _wait_seconds(request: Request) -> float | None:
    """``?wait=``: seconds to wait for an execution to finish (``true``: 30), or None."""
    text = request.query_params.get("wait")
    if text is None or text.lower() in ("", "false", "no", "0"):
        return None
    if text.lower() in ("true", "yes"):
        return DEFAULT_WAIT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_WAIT_S:
        raise RequestError(
            f"`wait` must be true or a number of seconds above 0, at most {MAX_WAIT_S:g}"
        )
    return seconds


async def _stream(websocket: WebSocket, sub: Subscriber) -> None:
    """Send the subscriber's events until the end, an overflow or a disconnect."""

    async def pump() -> tuple[int, str]:
        clock = time.perf_counter
        started = clock()
        while True:
            item = sub.next()
            if item is None:
                await sub.wait()
                started = clock()
                continue
            if item is END:
                return 1000, "execution finished"
            if item is OVERFLOW:
                return CLOSE_TOO_SLOW, "too slow: event queue overflowed; reconnect to replay"
            assert isinstance(item, str)
            sub.sending = True  # stays so only while the send waits for the socket to drain
            try:
                await websocket.send_text(item)
            finally:
                sub.sending = False
            if clock() - started > SEND_SLICE_S:
                await asyncio.sleep(0)  # the engine and other requests get their turn
                started = clock()

    async def until_disconnect() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sending = asyncio.ensure_future(pump())
    listening = asyncio.ensure_future(until_disconnect())
    dropped = asyncio.ensure_future(sub.dropped.wait())
    done: set[asyncio.Future[Any]] = set()
    try:
        done, _ = await asyncio.wait(
            {sending, listening, dropped}, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (sending, listening, dropped):
            task.cancel()
        await asyncio.gather(sending, listening, dropped, return_exceptions=True)
    if dropped in done and sending not in done:  # overflowed while a send was blocked
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
            await asyncio.wait_for(
                websocket.close(CLOSE_TOO_SLOW, "too slow: event queue overflowed"), 5
            )
        return
    if sending not in done:  # the client went away first
        return
    error = sending.exception()
    if isinstance(error, WebSocketDisconnect | OSError):
        return
    if error is not None:
        raise error
    code, reason = sending.result()
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.close(code, reason)


def uvicorn_ws_protocol() -> str:
    """The uvicorn ``ws`` implementation to use: wsproto when installed.

    uvicorn's ``websockets-sansio`` answers a refused handshake (our 401 / 404) correctly but
    then logs "ASGI callable returned without completing handshake" as an error; its legacy
    ``websockets`` implementation is deprecated by websockets itself.
    """
    return "wsproto" if importlib.util.find_spec("wsproto") is not None else "websockets-sansio"


def uvicorn_settings() -> dict[str, Any]:
    """The uvicorn options the server is meant to run with (``uvicorn.Config(app, **...)``).

    ``ws_per_message_deflate`` is off: compressing every event took about 36 µs of the loop a
    message (two thirds of the cost of sending one), for events of a few hundred bytes; on
    the loopback address the server listens on by default it saves nothing.
    """
    return {"ws": uvicorn_ws_protocol(), "ws_per_message_deflate": False}


def create_app(
    conductor: Conductor,
    *,
    token: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cors_origins: Iterable[str] = (),
    max_events: int = 50_000,
    max_executions: int = 1000,
    subscriber_queue: int = 1000,
    max_running: int = 256,
    allowed_hosts: Iterable[str] | None = None,
    max_history_bytes: int = 256 * 1024 * 1024,
    max_message_bytes: int = 1024 * 1024,
    triggers: bool = True,
) -> Starlette:
    """The server app for ``conductor``; run it with uvicorn (``atomiton serve`` does).

    ``token``: the bearer token every ``/api`` request but ``/api/health`` must present.
    ``max_body_bytes``: larger request bodies get 413. ``cors_origins``: origins allowed to
    call the API from a browser (none: no CORS headers at all). ``max_events``: events kept
    per execution for late subscribers; ``max_executions``: finished executions kept for
    ``GET /api/executions/{id}``; ``max_history_bytes``: what all the kept events and results
    may take together (past it finished executions are forgotten, oldest first);
    ``subscriber_queue``: events a WebSocket client may lag behind while its socket takes no
    more data before it is dropped (close code 1013); ``max_message_bytes``: a final event
    larger than this carries ``resultUrl`` instead of the result; ``max_running``:
    concurrent executions started over the API (more get 429). ``allowed_hosts``: the names
    requests may give in ``Host`` (``atomiton serve`` on a loopback address: 127.0.0.1,
    localhost, ::1); None: any. ``triggers``: run the triggers of the stored flows
    (schedules, webhooks, watches; see atomiton_core.server.triggers).
    """
    if not token:
        raise ValueError("create_app needs a non-empty token; secrets.token_urlsafe() makes one")
    hub = EventHub(
        conductor,
        max_events=max_events,
        max_executions=max_executions,
        subscriber_queue=subscriber_queue,
        max_history_bytes=max_history_bytes,
        max_message_bytes=max_message_bytes,
    )
    api = Api(conductor, hub, max_body_bytes=max_body_bytes, max_running=max_running)
    engine = TriggerEngine(conductor, hub, api.plans, max_running=max_running, read_body=api.body)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        hub.start()
        try:
            if triggers:
                await engine.start()
            yield {}
        finally:
            try:
                await engine.stop()
            finally:  # the signals let go of whatever the triggers' stop said
                await hub.stop()

    routes = [
        Route("/", api.page),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/api/health", api.health),
        Route("/api/openapi.json", openapi_json),
        Route("/api/nodes", api.nodes),
        Route("/api/flows", api.list_flows),
        Route("/api/flows/validate", api.validate_flow, methods=["POST"]),
        Route("/api/flows/{flow_id}", api.get_flow, methods=["GET"]),
        Route("/api/flows/{flow_id}", api.put_flow, methods=["PUT"]),
        Route("/api/flows/{flow_id}", api.delete_flow, methods=["DELETE"]),
        Route("/api/flows/{flow_id}/graph", api.flow_graph),
        Route("/api/flows/{flow_id}/stats", api.flow_stats, methods=["GET"]),
        Route("/api/executions", api.start_execution, methods=["POST"]),
        Route("/api/executions", api.list_executions, methods=["GET"]),
        Route("/api/executions/{execution_id}", api.get_execution),
        Route("/api/executions/{execution_id}/cancel", api.cancel_execution, methods=["POST"]),
        Route("/api/executions/{execution_id}/debug", api.get_debug, methods=["GET"]),
        Route("/api/executions/{execution_id}/debug", api.post_debug, methods=["POST"]),
        Route("/api/runs", api.list_runs),
        Route("/api/runs/{run_id}", api.get_run, methods=["GET"]),
        Route("/api/runs/{run_id}", api.delete_run, methods=["DELETE"]),
        Route("/api/runs/{run_id}/events", api.run_events),
        Route("/api/runs/{run_id}/graph", api.run_graph),
        WebSocketRoute("/api/executions/{execution_id}/events", api.execution_events),
        WebSocketRoute("/api/events", api.all_events),
        *trigger_routes(engine),
    ]
    origins = list(cors_origins)
    middleware = [Middleware(TokenGate, token=token, open_when=engine.is_public)]
    if allowed_hosts is not None:
        middleware.insert(0, Middleware(HostGate, allowed_hosts=list(allowed_hosts)))
    if origins:
        # Outermost, so preflight requests (which carry no token) are answered before the gate.
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "PUT", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Accept"],
                max_age=600,
            ),
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            AtomitonError: _handle_error,
            HTTPException: _handle_error,
        },
    )
    app.state.hub = hub
    app.state.plans = api.plans
    app.state.conductor = conductor
    app.state.triggers = engine
    return app
