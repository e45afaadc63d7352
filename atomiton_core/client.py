"""A client for ``atomiton serve``: run flows on a remote conductor as if it were local.

::

    from atomiton_core.client import RemoteConductor

    remote = RemoteConductor("http://127.0.0.1:8000", token)
    result = remote.run("demo", {"who": "Ada"})      # or: await remote.execute(...)
    print(result.status, result.outputs)

Request/response calls (``start``, ``cancel``, ``validate``, flows...) are synchronous, like
the local conductor's; ``execute`` and ``events`` are async. Errors the server reports come
back as the SDK's own exceptions (``FlowValidationError`` with its report, ``FlowNotFound``…)
or, for anything else, :class:`RemoteError` with the HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from atomiton_core.conductor.results import ExecutionStatus, NodeStatus
from atomiton_core.errors import (
    AtomitonError,
    ExecutionError,
    FlowLoadError,
    FlowNotFound,
    FlowValidationError,
    InvalidFlowId,
)
from atomiton_core.flow.models import Flow
from atomiton_core.flow.validation import Problem, ValidationReport
from atomiton_core.flow.yaml_io import load_flow

__all__ = ["RemoteConductor", "RemoteError", "RemoteNodeResult", "RemoteResult"]

FINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
RemoteFlow = Flow | str | os.PathLike[str] | Mapping[str, Any]


class RemoteError(AtomitonError):
    """The server answered with an error the SDK has no exception for (401, 413, 429…)."""

    code = "REMOTE_ERROR"

    def __init__(self, message: str, *, status_code: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status_code = status_code


def _report(data: Mapping[str, Any]) -> ValidationReport:
    problems = [
        Problem(
            code=p["code"],
            message=p["message"],
            location=p.get("location", ""),
            node_id=p.get("nodeId"),
            edge_id=p.get("edgeId"),
            hint=p.get("hint"),
            severity=p.get("severity", "error"),
        )
        for p in data.get("problems", ())
    ]
    return ValidationReport(str(data.get("flowId")), problems)


def _error_from(data: Mapping[str, Any] | None) -> AtomitonError | None:
    if not data:
        return None
    err = AtomitonError(data.get("message", ""), hint=data.get("hint"), node_id=data.get("nodeId"))
    err.code = data.get("code", AtomitonError.code)  # type: ignore[misc]
    return err


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": "HTTP_ERROR", "message": response.text or response.reason_phrase}
    code, message, hint = error.get("code"), str(error.get("message")), error.get("hint")
    if code == "VALIDATION_FAILED":
        raise FlowValidationError(_report(body.get("report") or error), source="server")
    known: dict[str, type[AtomitonError]] = {
        "FLOW_NOT_FOUND": FlowNotFound,
        "FLOW_LOAD_FAILED": FlowLoadError,
        "INVALID_FLOW_ID": InvalidFlowId,
    }
    if code in known:
        raise known[code](message, hint=hint)
    raise RemoteError(
        f"{response.request.method} {response.request.url.path} -> {response.status_code} "
        f"{code}: {message}",
        status_code=response.status_code,
        hint=hint,
        code=code,
    )


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


@dataclass(slots=True)
class RemoteNodeResult:
    """One node's result as the server reported it (compare NodeResult)."""

    path: str
    status: NodeStatus
    outputs: dict[str, Any] | None
    error: AtomitonError | None
    attempts: int
    started_at: float | None
    duration_ms: float | None
    data: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(slots=True)
class RemoteResult:
    """An execution result from the server, shaped like the local ExecutionResult."""

    data: dict[str, Any] = field(repr=False)
    execution_id: str = ""
    flow_id: str = ""
    status: ExecutionStatus = ExecutionStatus.RUNNING
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, RemoteNodeResult] = field(default_factory=dict)
    error: AtomitonError | None = None
    started_at: float | None = None
    duration_ms: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteResult:
        plain = {k: v for k, v in data.items() if k != "progress"}
        nodes = {
            path: RemoteNodeResult(
                path=path,
                status=NodeStatus(n["status"]),
                outputs=n.get("outputs"),
                error=_error_from(n.get("error")),
                attempts=n.get("attempts", 0),
                started_at=_epoch(n.get("startedAt")),
                duration_ms=n.get("durationMs"),
                data=n,
            )
            for path, n in (plain.get("nodes") or {}).items()
        }
        return cls(
            data=plain,
            execution_id=plain.get("executionId", ""),
            flow_id=plain.get("flowId", ""),
            status=ExecutionStatus(plain["status"]),
            outputs=plain.get("outputs") or {},
            nodes=nodes,
            error=_error_from(plain.get("error")),
            started_at=_epoch(plain.get("startedAt")),
            duration_ms=plain.get("durationMs"),
        )

    @property
    def ok(self) -> bool:
        return self.status is ExecutionStatus.COMPLETED

    def node(self, path: str) -> RemoteNodeResult:
        return self.nodes[path]

    def to_dict(self) -> dict[str, Any]:
        """The same JSON as ExecutionResult.to_dict() gives on the server."""
        return json.loads(json.dumps(self.data))  # type: ignore[no-any-return]

    def raise_for_status(self) -> RemoteResult:
        if self.error is not None and not self.ok:
            raise self.error
        return self


class RemoteConductor:
    """Talks to an Atomiton server at ``url`` (``http://host:port``) with a bearer ``token``."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._headers = headers
        # Made once: building an SSL context costs ~0.1 s, and each execute opens a client.
        self._ssl = httpx.create_ssl_context()
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, verify=self._ssl
        )

    def __repr__(self) -> str:
        return f"RemoteConductor({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteConductor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = self._http.request(method, path, **kw)
        _raise_for(response)
        return response

    def _async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers=self._headers, timeout=self.timeout, verify=self._ssl
        )

    @staticmethod
    def _flow_payload(flow: RemoteFlow) -> dict[str, Any]:
        """A Flow, a mapping, a local flow file, or else the id of a flow stored remotely."""
        if isinstance(flow, Flow):
            return {"flow": flow.to_data()}
        if isinstance(flow, Mapping):
            return {"flow": dict(flow)}
        text = os.fspath(flow)
        if text.endswith((".yaml", ".yml", ".json")) or "/" in text or os.path.isfile(text):
            return {"flow": load_flow(text).to_data()}
        return {"flowId": text}

    def _ws_url(self, path: str) -> str:
        base = "ws" + self.url.removeprefix("http") if self.url.startswith("http") else self.url
        return base + path

    # -- server and node types ---------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._request("GET", "/api/health").json()
        return data

    def nodes(self) -> list[dict[str, Any]]:
        """The server's node types with their parameter schemas and ports."""
        data: list[dict[str, Any]] = self._request("GET", "/api/nodes").json()["nodeTypes"]
        return data

    # -- flows -------------------------------------------------------------------------------
    def validate(self, flow: RemoteFlow) -> ValidationReport:
        """Validate a flow against the server's catalogue (a stored id is fetched first)."""
        payload = self._flow_payload(flow)
        body = payload.get("flow") or self.get_flow(payload["flowId"]).to_data()
        response = self._request("POST", "/api/flows/validate", json=body)
        return _report(response.json())

    def list_flows(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._request("GET", "/api/flows").json()["flows"]
        return data

    def get_flow(self, flow_id: str) -> Flow:
        return Flow.from_data(self._request("GET", f"/api/flows/{flow_id}").json())

    def get_flow_yaml(self, flow_id: str) -> str:
        return self._request("GET", f"/api/flows/{flow_id}", params={"format": "yaml"}).text

    def save_flow(self, flow: Flow | str | os.PathLike[str]) -> dict[str, Any]:
        """Store a flow (a Flow, or a local flow file sent as is, comments included)."""
        if isinstance(flow, Flow):
            response = self._request("PUT", f"/api/flows/{flow.id}", json=flow.to_data())
        else:
            loaded = load_flow(flow)
            with open(os.fspath(flow), "rb") as fh:
                text = fh.read()
            response = self._request(
                "PUT",
                f"/api/flows/{loaded.id}",
                content=text,
                headers={"Content-Type": "application/yaml"},
            )
        data: dict[str, Any] = response.json()
        return data

    def delete_flow(self, flow_id: str) -> None:
        self._request("DELETE", f"/api/flows/{flow_id}")

    # -- executions --------------------------------------------------------------------------
    def start(self, flow: RemoteFlow, inputs: Mapping[str, Any] | None = None) -> str:
        """Start an execution on the server; returns its id at once."""
        body = {**self._flow_payload(flow), "inputs": dict(inputs or {})}
        data: dict[str, Any] = self._request("POST", "/api/executions", json=body).json()
        return str(data["executionId"])

    async def start_async(self, flow: RemoteFlow, inputs: Mapping[str, Any] | None = None) -> str:
        body = {**self._flow_payload(flow), "inputs": dict(inputs or {})}
        async with self._async_client() as http:
            response = await http.post("/api/executions", json=body)
        _raise_for(response)
        return str(response.json()["executionId"])

    def cancel(self, execution_id: str) -> bool:
        """Ask the server to cancel; False if the execution had already finished."""
        response = self._http.post(f"/api/executions/{execution_id}/cancel")
        if response.status_code == 409:
            return False
        _raise_for(response)
        return True

    def get(self, execution_id: str) -> dict[str, Any]:
        """Status, progress and (once finished) the result: ExecutionResult.to_dict() shape."""
        data: dict[str, Any] = self._request("GET", f"/api/executions/{execution_id}").json()
        return data

    def executions(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._request("GET", "/api/executions").json()["executions"]
        return data

    async def events(self, execution_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """Every event of an execution from its start, ending after the final one."""
        from websockets.asyncio.client import connect

        url = self._ws_url(f"/api/executions/{execution_id}/events")
        async with connect(url, additional_headers=self._headers, max_size=None) as socket:
            async for message in socket:
                yield json.loads(message)

    async def wait(self, execution_id: str) -> RemoteResult:
        """The result, once the execution finishes (events, or polling if they stop early)."""
        async with contextlib.aclosing(self.events(execution_id)) as stream:
            async for event in stream:
                if event["type"] in FINAL_EVENTS and "result" in event:
                    return RemoteResult.from_dict(event["result"])
        async with self._async_client() as http:
            while True:
                response = await http.get(f"/api/executions/{execution_id}")
                _raise_for(response)
                data = response.json()
                if data["status"] != "running":
                    return RemoteResult.from_dict(data)
                await asyncio.sleep(0.1)

    async def execute(
        self, flow: RemoteFlow, inputs: Mapping[str, Any] | None = None
    ) -> RemoteResult:
        """Run a flow on the server to the end; raises FlowValidationError if it is invalid."""
        execution_id = await self.start_async(flow, inputs)
        return await self.wait(execution_id)

    def run(self, flow: RemoteFlow, inputs: Mapping[str, Any] | None = None) -> RemoteResult:
        """Synchronous ``execute`` for scripts; not for use inside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.execute(flow, inputs))
        raise ExecutionError(
            "RemoteConductor.run() was called inside a running event loop",
            hint="use `await remote.execute(...)` there",
        )
