"""A client for ``atomiton serve``: run flows on a remote conductor as if it were local.

::

    from atomiton_core.server.client import RemoteConductor

    remote = RemoteConductor("http://127.0.0.1:8000", token)
    result = remote.run("demo", {"who": "Ada"})      # or: await remote.execute(...)
    print(result.status, result.outputs)

It needs only httpx and websockets, not the server's own dependencies. Results come back as
the same :class:`~atomiton_core.ExecutionResult` / :class:`~atomiton_core.NodeResult` a local
conductor returns, read from the wire format (:mod:`atomiton_core.wire`); ``start()`` returns a
:class:`RemoteExecution` handle with the methods of the local ``Execution`` (``result()``,
``cancel()``, ``events()``). Errors the server reports are raised as the class that owns
their code (``FlowValidationError`` with its report, ``FlowNotFound``, ``Unauthorized``…);
an answer without one of our codes is a :class:`~atomiton_core.RemoteError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import httpx

from atomiton_core import wire
from atomiton_core.conductor.debug import PausedNode
from atomiton_core.errors import (
    ConfigurationError,
    ExecutionConflict,
    FlowValidationError,
    RemoteError,
    ValidationReport,
)
from atomiton_core.flow.models import Flow
from atomiton_core.flow.yaml_io import load_flow, loads_flow
from atomiton_core.results import ExecutionResult, ExecutionStatus
from atomiton_core.signals import ExecutionEvent, NodeEvent
from atomiton_core.storage.stats import FlowStats

__all__ = ["RemoteConductor", "RemoteDebugger", "RemoteExecution"]

#: ``start``'s debugging keywords, as the server's request body names them.
_DEBUG_KEYS = {
    "breakpoints": "breakpoints",
    "step": "step",
    "inject": "inject",
    "slow_mo": "slowMo",
}

FINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
RemoteFlow = Flow | str | os.PathLike[str] | Mapping[str, Any]


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "code" not in error:
        raise RemoteError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text or response.reason_phrase}",
            status_code=response.status_code,
        )
    err = wire.load_error(error) or RemoteError(response.text, status_code=response.status_code)
    if isinstance(err, FlowValidationError) and isinstance(body.get("report"), dict):
        err = FlowValidationError(wire.load(ValidationReport, body["report"]), source="server")
    if isinstance(err, RemoteError):
        err.status_code = response.status_code
    raise err


def _paused_nodes(state: Mapping[str, Any]) -> tuple[PausedNode, ...]:
    return tuple(
        PausedNode(
            str(p["nodeId"]),
            str(p["nodeType"]),
            str(p["path"]),
            dict(p.get("inputs") or {}),
            str(p["reason"]),
            float(p["since"]),
        )
        for p in state.get("paused") or ()
    )


def _raise_for_debug(response: httpx.Response) -> None:
    """A 409 from the debug route: the run ended (nothing to wait for), or was never
    debugged (an error worth raising)."""
    code = (response.json().get("error") or {}).get("code")
    if code == "EXECUTION_CONFLICT" and "without debugging" in response.text:
        _raise_for(response)


def _event(data: Mapping[str, Any]) -> NodeEvent | ExecutionEvent | None:
    """An event the server sent, as the signal payload class it was made from."""
    kind = str(data.get("type", ""))
    if kind.startswith("node."):
        return wire.load(NodeEvent, data)
    if kind.startswith("execution."):
        return wire.load(ExecutionEvent, data)
    return None  # e.g. the "events.dropped" marker of a long execution


class RemoteExecution:
    """A started remote execution: the handle ``Conductor.start()`` returns, over HTTP."""

    def __init__(self, remote: RemoteConductor, execution_id: str, flow_id: str) -> None:
        self._remote = remote
        self.execution_id = execution_id
        self.flow_id = flow_id
        self._result: ExecutionResult | None = None

    def __repr__(self) -> str:
        return f"<RemoteExecution {self.execution_id} of {self.flow_id!r}>"

    @property
    def snapshot(self) -> ExecutionResult:
        """The result as it stands now (status ``running`` until it finishes)."""
        return self._result or self._remote.get(self.execution_id)

    @property
    def progress(self) -> float:
        data = self._remote._request("GET", f"/api/executions/{self.execution_id}").json()
        return float(data.get("progress") or 0.0)

    def done(self) -> bool:
        """Whether the execution has ended (asks the server)."""
        return self.snapshot.status is not ExecutionStatus.RUNNING

    def cancel(self) -> bool:
        """Ask the server to cancel; False if the execution had already finished."""
        return self._remote.cancel(self.execution_id)

    def events(self) -> AsyncIterator[NodeEvent | ExecutionEvent]:
        """Every event of the execution from its start, ending after the final one."""
        return self._remote.events(self.execution_id)

    async def result(self) -> ExecutionResult:
        """The final result (a cancelled execution returns its result, status cancelled)."""
        if self._result is None:
            self._result = await self._remote.wait(self.execution_id)
        return self._result

    @property
    def debugger(self) -> RemoteDebugger:
        """Steers a run started with debugging options, as ``Execution.debugger`` does."""
        return RemoteDebugger(self._remote, self.execution_id)


class RemoteDebugger:
    """The local ``Debugger``'s methods for a run on the server (``/api/executions/{id}/
    debug``): ``paused``, ``wait_paused()``, ``step()``, ``cont()``, ``abort()``,
    ``set_breakpoints()``. Paused nodes come back as :class:`PausedNode` with their inputs
    as JSON."""

    def __init__(self, remote: RemoteConductor, execution_id: str) -> None:
        self._remote = remote
        self.execution_id = execution_id

    def __repr__(self) -> str:
        return f"<RemoteDebugger of {self.execution_id}>"

    def state(self) -> dict[str, Any]:
        """The server's answer: breakpoints, ``halted``, ``paused`` (each with inputs)."""
        return self._remote.debug_state(self.execution_id)

    @property
    def paused(self) -> tuple[PausedNode, ...]:
        return _paused_nodes(self.state())

    @property
    def breakpoints(self) -> set[str]:
        return set(self.state()["breakpoints"])

    def step(self) -> tuple[PausedNode, ...]:
        """Let the first paused node run; pause before the next. The nodes paused after."""
        return _paused_nodes(self._remote.debug(self.execution_id, action="step"))

    def cont(self) -> tuple[PausedNode, ...]:
        """Let every paused node run on to the next breakpoint."""
        return _paused_nodes(self._remote.debug(self.execution_id, action="continue"))

    def abort(self) -> None:
        """Cancel the run ("aborted in the debugger")."""
        self._remote.debug(self.execution_id, action="abort")

    def set_breakpoints(self, names: list[str]) -> None:
        """Replace the run's breakpoints (node ids or paths, each checked by the server)."""
        self._remote.debug(self.execution_id, breakpoints=list(names))

    async def wait_paused(self) -> PausedNode | None:
        """The first paused node once the run pauses (at once if it is paused now); None
        when it ends without pausing. Follows the run's events, asking for the state at
        each ``node.paused``."""
        async with self._remote._async_client() as http:

            async def now() -> tuple[PausedNode | None, bool]:
                response = await http.get(f"/api/executions/{self.execution_id}/debug")
                if response.status_code == 409:  # over, or not debugged
                    _raise_for_debug(response)
                    return None, True
                _raise_for(response)
                data = response.json()
                found = _paused_nodes(data)
                return (found[0] if found else None), data["status"] != "running"

            first, over = await now()
            if first is not None or over:
                return first
            stream = self._remote.events(self.execution_id)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if event.type == "node.paused":
                        first, over = await now()
                        if first is not None or over:
                            return first
                    elif event.type in FINAL_EVENTS:
                        return None
        return None


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
        """Close the client's connections (also at the end of its ``with`` block)."""
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
        """A Flow, a mapping, YAML or JSON text (anything with a line break, or starting
        with ``{``), a local flow file, or else the id of a flow stored remotely."""
        if isinstance(flow, Flow):
            return {"flow": flow.to_data()}
        if isinstance(flow, Mapping):
            return {"flow": dict(flow)}
        if isinstance(flow, str) and ("\n" in flow or flow.lstrip().startswith("{")):
            return {"flow": loads_flow(flow).to_data()}
        text = os.fspath(flow)
        if text.endswith((".yaml", ".yml", ".json")) or "/" in text or os.path.isfile(text):
            return {"flow": load_flow(text).to_data()}
        return {"flowId": text}

    def _ws_url(self, path: str) -> str:
        base = "ws" + self.url.removeprefix("http") if self.url.startswith("http") else self.url
        return base + path

    # -- server and node types ---------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The server's health answer: ``{"status": "ok", "version": ...}``."""
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
        return wire.load(ValidationReport, response.json())

    def list_flows(self) -> list[dict[str, Any]]:
        """The stored flows: id, name, description, location."""
        data: list[dict[str, Any]] = self._request("GET", "/api/flows").json()["flows"]
        return data

    def get_flow(self, flow_id: str) -> Flow:
        """A stored flow, as a Flow (FlowNotFound if there is none)."""
        return Flow.from_data(self._request("GET", f"/api/flows/{flow_id}").json())

    def get_flow_yaml(self, flow_id: str) -> str:
        """A stored flow's YAML text, comments and layout kept."""
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
        """Delete a stored flow (FlowNotFound if there is none)."""
        self._request("DELETE", f"/api/flows/{flow_id}")

    # -- executions --------------------------------------------------------------------------
    def _handle(self, data: Mapping[str, Any]) -> RemoteExecution:
        return RemoteExecution(self, str(data["executionId"]), str(data.get("flowId", "")))

    def _start_body(
        self,
        flow: RemoteFlow,
        inputs: Mapping[str, Any] | None,
        resume: str | None,
        debug: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {**self._flow_payload(flow), "inputs": dict(inputs or {})}
        if resume is not None:
            body["resume"] = resume
        for key, value in (debug or {}).items():
            if value is not None and value is not False:
                body[_DEBUG_KEYS[key]] = list(value) if key == "breakpoints" else value
        return body

    def start(
        self,
        flow: RemoteFlow,
        inputs: Mapping[str, Any] | None = None,
        *,
        resume: str | None = None,
        breakpoints: list[str] | None = None,
        step: bool = False,
        inject: Mapping[str, str] | None = None,
        slow_mo: float | None = None,
    ) -> RemoteExecution:
        """Start an execution on the server; returns its handle at once. ``resume``: a
        stored run whose unchanged, completed nodes are reused; ``breakpoints``, ``step``,
        ``inject``, ``slow_mo``: debugging, as ``Conductor.start`` (``.debugger`` of the
        handle steers it)."""
        debug = {"breakpoints": breakpoints, "step": step, "inject": inject, "slow_mo": slow_mo}
        body = self._start_body(flow, inputs, resume, debug)
        return self._handle(self._request("POST", "/api/executions", json=body).json())

    async def start_async(
        self,
        flow: RemoteFlow,
        inputs: Mapping[str, Any] | None = None,
        *,
        resume: str | None = None,
        breakpoints: list[str] | None = None,
        step: bool = False,
        inject: Mapping[str, str] | None = None,
        slow_mo: float | None = None,
    ) -> RemoteExecution:
        """``start`` without blocking the event loop."""
        debug = {"breakpoints": breakpoints, "step": step, "inject": inject, "slow_mo": slow_mo}
        body = self._start_body(flow, inputs, resume, debug)
        async with self._async_client() as http:
            response = await http.post("/api/executions", json=body)
        _raise_for(response)
        return self._handle(response.json())

    def debug_state(self, execution_id: str) -> dict[str, Any]:
        """A debugged execution's breakpoints and paused nodes (``GET .../debug``)."""
        data: dict[str, Any] = self._request("GET", f"/api/executions/{execution_id}/debug").json()
        return data

    def debug(
        self, execution_id: str, *, action: str | None = None, breakpoints: list[str] | None = None
    ) -> dict[str, Any]:
        """Step, continue or abort a debugged execution, or set its breakpoints; its state
        after (``POST .../debug``)."""
        body: dict[str, Any] = {}
        if action is not None:
            body["action"] = action
        if breakpoints is not None:
            body["breakpoints"] = breakpoints
        data: dict[str, Any] = self._request(
            "POST", f"/api/executions/{execution_id}/debug", json=body
        ).json()
        return data

    def cancel(self, execution_id: str) -> bool:
        """Ask the server to cancel; False if the execution had already finished."""
        try:
            self._request("POST", f"/api/executions/{execution_id}/cancel")
        except ExecutionConflict:
            return False
        return True

    def get(self, execution_id: str) -> ExecutionResult:
        """The execution's result as it stands (status ``running`` until it finishes)."""
        data = self._request("GET", f"/api/executions/{execution_id}").json()
        return wire.load(ExecutionResult, data)

    def executions(self) -> list[dict[str, Any]]:
        """Summaries of the executions the server knows (id, flow, status, times)."""
        data: list[dict[str, Any]] = self._request("GET", "/api/executions").json()["executions"]
        return data

    def runs(
        self,
        *,
        flow_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries of the runs in the server's storage, newest first (they outlive the
        server: a restarted one lists them too); ``limit`` and ``before`` (the last run id of
        the previous page) page through them."""
        params = {
            k: v
            for k, v in (
                ("flowId", flow_id),
                ("status", status),
                ("limit", limit),
                ("before", before),
            )
            if v is not None
        }
        data: list[dict[str, Any]] = self._request("GET", "/api/runs", params=params).json()["runs"]
        return data

    def flow_stats(self, flow_id: str, *, last: int | None = None) -> FlowStats:
        """Each node's p50/p95 duration and failure rate over the flow's ``last`` newest runs
        in the server's storage (default 50), as ``storage.stats()`` gives them locally."""
        params = {"last": last} if last is not None else {}
        data = self._request("GET", f"/api/flows/{flow_id}/stats", params=params).json()
        return wire.load(FlowStats, data)

    def run_record(self, execution_id: str) -> dict[str, Any]:
        """A stored run's record: status, timings, and each node's status, digests, outputs."""
        data: dict[str, Any] = self._request("GET", f"/api/runs/{execution_id}").json()
        return data

    def run_events(self, execution_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """A stored run's log: its events in order; ``after``: only those after its first
        ``after`` lines (for a run still being written: how many events were read before)."""
        params = {"after": after} if after else {}
        data: list[dict[str, Any]] = self._request(
            "GET", f"/api/runs/{execution_id}/events", params=params
        ).json()["events"]
        return data

    def delete_run(self, execution_id: str) -> None:
        """Delete a stored run's record, log and blobs."""
        self._request("DELETE", f"/api/runs/{execution_id}")

    # -- triggers ----------------------------------------------------------------------------
    def triggers(self, *, flow_id: str | None = None) -> list[dict[str, Any]]:
        """The triggers the server runs (of one flow if given): each one's type, status
        (active, paused, disabled, error), next fire, last fire and run, counts, last error."""
        params = {"flowId": flow_id} if flow_id is not None else {}
        data: list[dict[str, Any]] = self._request("GET", "/api/triggers", params=params).json()[
            "triggers"
        ]
        return data

    def trigger_problems(self, *, flow_id: str | None = None) -> list[dict[str, Any]]:
        """The stored flows whose triggers cannot be read: ``[{"flowId", "message"}...]``."""
        params = {"flowId": flow_id} if flow_id is not None else {}
        data: list[dict[str, Any]] = self._request("GET", "/api/triggers", params=params).json()[
            "problems"
        ]
        return data

    def trigger(self, flow_id: str, trigger_id: str) -> dict[str, Any]:
        """One trigger's state: status, next fire, last fire and run, counts, problems."""
        data: dict[str, Any] = self._request("GET", f"/api/triggers/{flow_id}/{trigger_id}").json()
        return data

    def pause_trigger(self, flow_id: str, trigger_id: str) -> dict[str, Any]:
        """Pause a trigger (it stays paused across restarts); returns its state."""
        path = f"/api/triggers/{flow_id}/{trigger_id}/pause"
        data: dict[str, Any] = self._request("POST", path).json()
        return data

    def resume_trigger(self, flow_id: str, trigger_id: str) -> dict[str, Any]:
        """Resume a paused trigger; its state after."""
        path = f"/api/triggers/{flow_id}/{trigger_id}/resume"
        data: dict[str, Any] = self._request("POST", path).json()
        return data

    def fire_trigger(
        self, flow_id: str, trigger_id: str, inputs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Fire a trigger now, paused or not, under its overlap policy: ``{"status":
        "running", "executionId": ...}`` or ``{"status": "queued", "position": ...}``
        (ExecutionConflict if the policy skips it)."""
        path = f"/api/triggers/{flow_id}/{trigger_id}/fire"
        body = {"inputs": dict(inputs)} if inputs else {}
        data: dict[str, Any] = self._request("POST", path, json=body).json()
        return data

    def webhook(
        self,
        path: str,
        body: Any = None,
        *,
        method: str = "POST",
        secret: str | None = None,
        signature_header: str = "X-Signature-256",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call a webhook trigger (``/api/hooks/<path>``) as another service would: ``body``
        sent as JSON, signed with ``secret`` if given; returns the server's answer (the run's
        id, or with ``respond: result`` its status and outputs)."""
        import hashlib
        import hmac

        content = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if secret is not None:
            digest = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
            headers[signature_header] = f"sha256={digest}"
        response = self._request(
            method,
            f"/api/hooks/{path.strip('/')}",
            content=content,
            headers=headers,
            params=dict(params or {}),
        )
        data: dict[str, Any] = response.json()
        return data

    async def events(self, execution_id: str) -> AsyncGenerator[NodeEvent | ExecutionEvent]:
        """Every event of an execution from its start, ending after the final one."""
        try:
            from websockets.asyncio.client import connect  # imported when used
        except ImportError as exc:
            raise ConfigurationError(
                "RemoteConductor.events() (and so wait(), execute() and run()) needs the "
                "websockets package",
                hint='pip install "atomiton-core[client]"',
            ) from exc

        url = self._ws_url(f"/api/executions/{execution_id}/events")
        async with connect(url, additional_headers=self._headers, max_size=None) as socket:
            async for message in socket:
                event = _event(json.loads(message))
                if event is not None:
                    yield event

    async def wait(self, execution_id: str) -> ExecutionResult:
        """The result, once the execution finishes (events, or polling if they stop early)."""
        async with contextlib.aclosing(self.events(execution_id)) as stream:
            async for event in stream:
                if isinstance(event, ExecutionEvent) and event.result is not None:
                    return event.result
        async with self._async_client() as http:
            while True:
                response = await http.get(f"/api/executions/{execution_id}")
                _raise_for(response)
                data = response.json()
                if data["status"] != "running":
                    return wire.load(ExecutionResult, data)
                await asyncio.sleep(0.1)

    async def execute(
        self,
        flow: RemoteFlow,
        inputs: Mapping[str, Any] | None = None,
        *,
        resume: str | None = None,
    ) -> ExecutionResult:
        """Run a flow on the server to the end; raises FlowValidationError if it is invalid."""
        execution = await self.start_async(flow, inputs, resume=resume)
        return await execution.result()

    def run(
        self,
        flow: RemoteFlow,
        inputs: Mapping[str, Any] | None = None,
        *,
        resume: str | None = None,
    ) -> ExecutionResult:
        """Synchronous ``execute`` for scripts; not for use inside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.execute(flow, inputs, resume=resume))
        raise ConfigurationError(
            "RemoteConductor.run() was called inside a running event loop",
            hint="use `await remote.execute(...)` there",
        )
