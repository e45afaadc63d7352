"""The REST API and the event WebSockets, against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

FINAL = {"execution.completed", "execution.failed", "execution.cancelled"}
TIMINGS = ("executionId", "startedAt", "durationMs")


@pytest.fixture(scope="module")
def http(served: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=20) as client:
        yield client


def read_events(served: Any, execution_id: str, **kw: Any) -> tuple[list[dict[str, Any]], int]:
    """Every message of the execution's event socket, and the code it closed with."""
    url = f"{served.ws_url}/api/executions/{execution_id}/events"
    headers = kw.pop("headers", served.auth)
    events: list[dict[str, Any]] = []
    with connect(url, additional_headers=headers, open_timeout=10, **kw) as ws:
        try:
            for message in ws:
                events.append(json.loads(message))
        except ConnectionClosedError:
            pass
        assert ws.close_code is not None
        return events, ws.close_code


def start(http: httpx.Client, **body: Any) -> str:
    response = http.post("/api/executions", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/executions/{response.json()['executionId']}"
    return str(response.json()["executionId"])


def wait_finished(served: Any, http: httpx.Client, execution_id: str) -> dict[str, Any]:
    """The execution's final state: its event socket closes (1000) once the hub recorded it."""
    while read_events(served, execution_id)[1] != 1000:  # dropped as too slow: reconnect
        pass
    data: dict[str, Any] = http.get(f"/api/executions/{execution_id}").json()
    return data


# -- auth ------------------------------------------------------------------------------------
def test_health_needs_no_token(served: Any) -> None:
    response = httpx.get(f"{served.url}/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nodes"),
        ("GET", "/api/flows"),
        ("GET", "/api/flows/demo"),
        ("PUT", "/api/flows/demo"),
        ("DELETE", "/api/flows/demo"),
        ("POST", "/api/flows/validate"),
        ("POST", "/api/executions"),
        ("GET", "/api/executions"),
    ],
)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Basic dGVzdA==", "test-token"])
def test_api_refuses_requests_without_the_token(
    served: Any, method: str, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = httpx.request(method, served.url + path, headers=headers, json={"flowId": "demo"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_token_in_the_query_is_only_for_websockets(served: Any) -> None:
    response = httpx.get(f"{served.url}/api/flows", params={"token": served.token})
    assert response.status_code == 401


def test_websockets_refuse_a_missing_or_wrong_token(served: Any, http: httpx.Client) -> None:
    eid = start(http, flowId="demo")
    for url in (
        f"{served.ws_url}/api/executions/{eid}/events",
        f"{served.ws_url}/api/executions/{eid}/events?token=nope",
        f"{served.ws_url}/api/events",
    ):
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=10)
        assert info.value.response.status_code == 401
    # the query token works where browsers cannot send headers
    url = f"{served.ws_url}/api/executions/{eid}/events?token={served.token}"
    with connect(url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "execution.started"


def test_page_and_static_files_need_no_token(served: Any) -> None:
    page = httpx.get(served.url + "/")
    assert page.status_code == 200
    assert "Atomiton" in page.text and "/static/app.js" in page.text
    assert httpx.get(served.url + "/static/app.js").status_code == 200
    assert httpx.get(served.url + "/static/style.css").status_code == 200


# -- node types and flows -------------------------------------------------------------------
def test_nodes_lists_types_with_parameter_schemas_and_ports(http: httpx.Client) -> None:
    data = http.get("/api/nodes").json()
    by_id = {t["id"]: t for t in data["nodeTypes"]}
    assert {"edit-fields", "transform", "group", "test.sleep"} <= set(by_id)
    edit = by_id["edit-fields"]
    assert edit["parameters"]["type"] == "object"
    assert {"values", "keepOnlySet"} <= set(edit["parameters"]["properties"])
    assert [p["name"] for p in edit["outputs"]] == ["output"]
    assert [p["name"] for p in edit["inputs"]] == ["input"]
    assert data["disabled"] == []


def test_flows_crud_json_and_yaml(http: httpx.Client, demo_yaml: str) -> None:
    text = demo_yaml.replace("id: demo", "id: crud").replace("name: Demo", "name: Crud")
    created = http.put(
        "/api/flows/crud", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["report"]["valid"] is True
    listed = {f["id"]: f for f in http.get("/api/flows").json()["flows"]}
    assert listed["crud"]["name"] == "Crud"

    as_json = http.get("/api/flows/crud")
    assert as_json.headers["content-type"].startswith("application/json")
    data = as_json.json()
    assert data["id"] == "crud" and [n["id"] for n in data["nodes"]] == ["greet", "shout"]

    for response in (
        http.get("/api/flows/crud", params={"format": "yaml"}),
        http.get("/api/flows/crud", headers={"Accept": "application/yaml"}),
    ):
        assert response.headers["content-type"].startswith("application/yaml")
        assert response.text.startswith("# the demo flow of the issue")  # comments survive

    data["name"] = "Crud renamed"
    replaced = http.put("/api/flows/crud", json=data)
    assert replaced.status_code == 200
    assert http.get("/api/flows/crud").json()["name"] == "Crud renamed"

    assert http.delete("/api/flows/crud").status_code == 204
    missing = http.get("/api/flows/crud")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "FLOW_NOT_FOUND"
    assert http.delete("/api/flows/crud").status_code == 404


def test_put_takes_the_id_from_the_url_when_the_body_has_none(
    http: httpx.Client, demo_yaml: str
) -> None:
    text = demo_yaml.replace("id: demo\n", "")
    response = http.put("/api/flows/no-id", content=text)
    assert response.status_code == 201, response.text
    assert http.get("/api/flows/no-id").json()["id"] == "no-id"
    body = http.get("/api/flows/no-id").json()
    del body["id"]
    assert http.put("/api/flows/no-id-json", json=body).status_code == 201
    assert http.get("/api/flows/no-id-json").json()["id"] == "no-id-json"


def test_put_refuses_an_id_that_differs_from_the_url(http: httpx.Client, demo_yaml: str) -> None:
    response = http.put("/api/flows/other", content=demo_yaml)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "FLOW_ID_MISMATCH"
    response = http.put("/api/flows/other", json={"id": "demo", "name": "x"})
    assert response.status_code == 422


def test_put_refuses_ids_that_cannot_be_stored(http: httpx.Client) -> None:
    response = http.put("/api/flows/a..b", json={"name": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_FLOW_ID"


def test_malformed_flows_get_422_with_the_validation_report(
    http: httpx.Client, demo_yaml: str
) -> None:
    invalid = demo_yaml.replace("type: transform", "type: no-such-type")
    response = http.put("/api/flows/demo", content=invalid)
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_FAILED"
    assert body["report"]["valid"] is False
    problem = body["report"]["problems"][0]
    assert problem["code"] == "NODE_TYPE_NOT_FOUND" and problem["nodeId"] == "shout"
    assert problem["location"] == "nodes[1].type"
    # nothing was stored
    assert http.get("/api/flows/demo").json()["nodes"][1]["type"] == "transform"

    not_yaml = http.put("/api/flows/demo", content=b"id: [unclosed")
    assert not_yaml.status_code == 422
    assert not_yaml.json()["error"]["code"] == "FLOW_LOAD_FAILED"
    not_json = http.put(
        "/api/flows/demo", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    not_a_flow = http.put("/api/flows/demo", json={"id": "demo", "nodes": 3})
    assert not_a_flow.status_code == 422
    assert not_a_flow.json()["error"]["code"] == "FLOW_LOAD_FAILED"


def test_validate_returns_the_report(http: httpx.Client, demo_yaml: str) -> None:
    ok = http.post("/api/flows/validate", content=demo_yaml)
    assert ok.status_code == 200
    assert ok.json() == {"flowId": "demo", "valid": True, "problems": []}
    bad = demo_yaml.replace("sourceHandle: output", "sourceHandle: nowhere")
    report = http.post("/api/flows/validate", content=bad).json()
    assert report["valid"] is False
    assert report["problems"][0]["location"].startswith("edges[0]")
    as_json = http.post("/api/flows/validate", json={"id": "x", "name": "x", "nodes": []})
    assert as_json.json()["valid"] is True


# -- limits ----------------------------------------------------------------------------------
def test_bodies_over_the_limit_get_413(http: httpx.Client, demo_yaml: str) -> None:
    big = demo_yaml + "#" * (64 * 1024)
    declared = http.put("/api/flows/demo", content=big)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "BODY_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what arrives
        yield demo_yaml.encode()
        for _ in range(80):
            yield b"#" * 1024

    streamed = http.put("/api/flows/demo", content=chunks())
    assert streamed.status_code == 413
    huge_execution = http.post(
        "/api/executions", json={"flowId": "demo", "inputs": {"who": "x" * 70_000}}
    )
    assert huge_execution.status_code == 413
    assert http.get("/api/flows/demo").status_code == 200


def test_bad_execution_requests(http: httpx.Client, demo_yaml: str) -> None:
    assert http.post("/api/executions", json={}).status_code == 400
    both = http.post("/api/executions", json={"flowId": "demo", "flow": demo_yaml})
    assert both.status_code == 400
    assert http.post("/api/executions", json={"flowId": "demo", "inputs": [1]}).status_code == 400
    assert http.post("/api/executions", content=b"nope").status_code == 400
    missing = http.post("/api/executions", json={"flowId": "nope"})
    assert missing.status_code == 404
    invalid = http.post(
        "/api/executions", json={"flow": demo_yaml.replace("transform", "transfrom")}
    )
    assert invalid.status_code == 422
    problem = invalid.json()["report"]["problems"][0]
    assert problem["code"] == "NODE_TYPE_NOT_FOUND" and "transform" in problem["hint"]
    assert http.get("/api/executions/nope").status_code == 404
    assert http.post("/api/executions/nope/cancel").status_code == 404


# -- executions and events -------------------------------------------------------------------
def test_execute_over_rest_and_receive_every_event_in_order(
    served: Any, http: httpx.Client
) -> None:
    eid = start(http, flowId="demo", inputs={"who": "Ada"})
    events, code = read_events(served, eid)
    assert code == 1000
    types = [e["type"] for e in events]
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    assert types.count("node.started") == 2 and types.count("node.completed") == 2
    # exactly what the conductor emitted, in the same order
    assert events == served.recorded_for(eid)
    result = events[-1]["result"]
    assert result["outputs"] == {"shout": {"output": ["HELLO ADA"]}}

    got = http.get(f"/api/executions/{eid}").json()
    assert got["progress"] == 1.0
    assert {k: v for k, v in got.items() if k != "progress"} == result
    listed = {e["executionId"]: e for e in http.get("/api/executions").json()["executions"]}
    assert listed[eid]["status"] == "completed" and listed[eid]["flowId"] == "demo"


def test_an_inline_flow_runs_and_json_and_yaml_flows_agree(
    served: Any, http: httpx.Client, demo_yaml: str
) -> None:
    from_yaml = start(http, flow=demo_yaml)
    from_json = start(http, flow=http.get("/api/flows/demo").json())
    a, b = wait_finished(served, http, from_yaml), wait_finished(served, http, from_json)
    assert a["status"] == b["status"] == "completed"
    assert a["outputs"] == b["outputs"] == {"shout": {"output": ["HELLO WORLD"]}}


def test_a_late_subscriber_gets_the_whole_history(served: Any, http: httpx.Client) -> None:
    eid = start(http, flowId="demo")
    wait_finished(served, http, eid)
    late, code = read_events(served, eid)
    assert code == 1000
    assert late == served.recorded_for(eid)
    assert late[0]["type"] == "execution.started" and late[-1]["type"] == "execution.completed"
    again, _ = read_events(served, eid)
    assert again == late


def test_running_execution_reports_progress_and_a_snapshot(served: Any, http: httpx.Client) -> None:
    eid = start(http, flowId="sleepy")
    url = f"{served.ws_url}/api/executions/{eid}/events"
    with connect(url, additional_headers=served.auth, open_timeout=10) as ws:
        while json.loads(ws.recv(timeout=10))["type"] != "node.progress":
            pass
        running = http.get(f"/api/executions/{eid}").json()
        assert running["status"] == "running"
        assert 0 < running["progress"] < 1
        assert running["nodes"]["first"]["status"] == "completed"
        assert running["nodes"]["nap"]["status"] == "running"
        listed = {e["executionId"]: e for e in http.get("/api/executions").json()["executions"]}
        assert listed[eid]["status"] == "running"

        cancelled = http.post(f"/api/executions/{eid}/cancel")
        assert cancelled.status_code == 202
        rest = [json.loads(m) for m in ws]
    assert rest[-1]["type"] == "execution.cancelled"
    assert any(e["type"] == "node.cancelled" and e["nodeId"] == "nap" for e in rest)
    final = http.get(f"/api/executions/{eid}").json()
    assert final["status"] == "cancelled"
    assert final["nodes"]["nap"]["status"] == "cancelled"
    assert "after" not in final["nodes"] or final["nodes"]["after"]["status"] != "completed"
    again = http.post(f"/api/executions/{eid}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "EXECUTION_CONFLICT"
    assert "already finished (cancelled)" in again.json()["error"]["message"]


def test_cancel_right_after_start_still_ends_the_stream(served: Any, http: httpx.Client) -> None:
    eid = start(http, flowId="sleepy")
    assert http.post(f"/api/executions/{eid}/cancel").status_code in (202, 409)
    events, code = read_events(served, eid)
    assert code == 1000
    assert events[-1]["type"] == "execution.cancelled"
    assert wait_finished(served, http, eid)["status"] == "cancelled"


def test_the_global_stream_sees_executions_and_saved_flows(
    served: Any, http: httpx.Client, demo_yaml: str
) -> None:
    with connect(f"{served.ws_url}/api/events", additional_headers=served.auth) as ws:
        eid = start(http, flowId="demo")
        seen: list[dict[str, Any]] = []
        while not (seen and seen[-1]["type"] == "execution.completed"):
            event = json.loads(ws.recv(timeout=10))
            if event.get("executionId") == eid:
                seen.append(event)
        assert seen == served.recorded_for(eid)
        http.put("/api/flows/global", content=demo_yaml.replace("id: demo", "id: global"))
        while (event := json.loads(ws.recv(timeout=10)))["type"] != "flow.saved":
            pass
        assert event["flowId"] == "global"


def test_unknown_execution_socket_is_refused(served: Any) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(f"{served.ws_url}/api/executions/nope/events", additional_headers=served.auth)
    assert info.value.response.status_code == 404


# -- other configurations --------------------------------------------------------------------
def test_slow_subscribers_are_dropped_and_buffers_stay_bounded(start_server: Any) -> None:
    gate = asyncio.Event()
    served = start_server(
        conductor_kw={"config": {"gate": gate}}, max_events=20, subscriber_queue=5
    )
    flow = {
        "id": "flood",
        "name": "Flood",
        "nodes": [
            {"id": "wait", "type": "test.gate"},
            {"id": "burst", "type": "test.burst", "parameters": {"count": 100}},
        ],
        "edges": [
            {"source": "wait", "target": "burst", "sourceHandle": "output", "targetHandle": "input"}
        ],
    }
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=20) as http:
        eid = start(http, flow=flow)
        url = f"{served.ws_url}/api/executions/{eid}/events"
        with connect(url, additional_headers=served.auth, open_timeout=10) as ws:
            live = [json.loads(ws.recv(timeout=30))]  # subscribed while `wait` waits
            served.app.state.hub.loop.call_soon_threadsafe(gate.set)  # the burst overflows it
            with contextlib.suppress(ConnectionClosedError):
                live.extend(json.loads(m) for m in ws)
            code = ws.close_code
        assert code == 1013
        assert len(live) < 100
        assert wait_finished(served, http, eid)["status"] == "completed"
        late, code = read_events(served, eid)
    assert code == 1000
    assert late[0]["type"] == "events.dropped"
    assert late[0]["dropped"] == len(served.recorded_for(eid)) - 20
    assert late[1:] == served.recorded_for(eid)[-20:]
    assert late[-1]["type"] == "execution.completed"


def test_finished_executions_are_kept_in_a_bounded_lru(start_server: Any) -> None:
    served = start_server(max_executions=3)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=20) as http:
        ids = []
        for _ in range(5):
            ids.append(start(http, flowId="demo"))
            read_events(served, ids[-1])
        listed = [e["executionId"] for e in http.get("/api/executions").json()["executions"]]
        # the three the server keeps, newest first; then the others, from storage
        assert listed[:3] == ids[-1:-4:-1]
        assert sorted(listed[3:]) == sorted(ids[:2])
        # older ones still answer from the run records in storage, without their events
        assert http.get(f"/api/executions/{ids[0]}").json()["status"] == "completed"
        with pytest.raises(InvalidStatus):
            read_events(served, ids[0])


def test_too_many_running_executions_get_429(start_server: Any) -> None:
    served = start_server(max_running=1)
    flow = {
        "id": "nap",
        "name": "Nap",
        "nodes": [{"id": "nap", "type": "test.sleep", "parameters": {"seconds": 30}}],
    }
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=20) as http:
        first = start(http, flow=flow)
        refused = http.post("/api/executions", json={"flow": flow})
        assert refused.status_code == 429
        http.post(f"/api/executions/{first}/cancel")
        assert wait_finished(served, http, first)["status"] == "cancelled"
        start(http, flowId="demo")


def test_disabled_node_types_are_refused(start_server: Any, sleepy_yaml: str) -> None:
    served = start_server(conductor_kw={"disabled_types": ["test.sleep"]})
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=20) as http:
        nodes = http.get("/api/nodes").json()
        assert nodes["disabled"] == ["test.sleep"]
        assert "test.sleep" not in {t["id"] for t in nodes["nodeTypes"]}
        for response in (
            http.post("/api/executions", json={"flow": sleepy_yaml}),
            http.put("/api/flows/sleepy", content=sleepy_yaml),
        ):
            assert response.status_code == 422
            problem = response.json()["report"]["problems"][0]
            assert problem["code"] == "NODE_TYPE_NOT_FOUND" and problem["nodeId"] == "nap"
            assert "disabled" in problem["hint"]
        report = http.post("/api/flows/validate", content=sleepy_yaml).json()
        assert report["valid"] is False


def test_cors_is_off_unless_configured(served: Any, start_server: Any) -> None:
    preflight = {
        "Origin": "http://editor.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    off = httpx.options(f"{served.url}/api/executions", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    plain = httpx.get(
        f"{served.url}/api/flows", headers={**served.auth, "Origin": preflight["Origin"]}
    )
    assert "access-control-allow-origin" not in plain.headers

    allowed = start_server(cors_origins=["http://editor.example"])
    ok = httpx.options(f"{allowed.url}/api/executions", headers=preflight)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://editor.example"
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    other = httpx.options(
        f"{allowed.url}/api/executions", headers={**preflight, "Origin": "http://evil.example"}
    )
    assert other.status_code == 400
    get = httpx.get(
        f"{allowed.url}/api/flows", headers={**allowed.auth, "Origin": "http://editor.example"}
    )
    assert get.status_code == 200
    assert get.headers["access-control-allow-origin"] == "http://editor.example"
    no_token = httpx.get(f"{allowed.url}/api/flows", headers={"Origin": "http://editor.example"})
    assert no_token.status_code == 401


def test_create_app_needs_a_token(local_conductor: Any) -> None:
    from atomiton_core.server.app import create_app

    with pytest.raises(ValueError, match="token"):
        create_app(local_conductor, token="")


def test_executions_started_in_process_are_served_too(served: Any, http: httpx.Client) -> None:
    """The hub observes every execution of its conductor, not only those started over HTTP."""
    import asyncio

    from atomiton_core import loads_flow

    flow = loads_flow(
        "id: inproc\nname: In process\nnodes:\n"
        "  - {id: nap, type: test.sleep, parameters: {seconds: 30, steps: 300}}\n"
    )
    loop = served.app.state.hub.loop
    handle = asyncio.run_coroutine_threadsafe(_start_in_loop(served.conductor, flow), loop)
    eid = handle.result(10)
    url = f"{served.ws_url}/api/executions/{eid}/events"
    with connect(url, additional_headers=served.auth, open_timeout=10) as ws:
        while json.loads(ws.recv(timeout=10))["type"] != "node.progress":
            pass
        running = http.get(f"/api/executions/{eid}").json()
        assert running["status"] == "running" and running["nodes"]["nap"]["status"] == "running"
        assert http.post(f"/api/executions/{eid}/cancel").status_code == 202
        rest = [json.loads(m) for m in ws]
    assert rest[-1]["type"] == "execution.cancelled"


async def _start_in_loop(conductor: Any, flow: Any) -> str:
    return str(conductor.start(flow).execution_id)


def test_a_stopped_hub_leaves_no_receivers(start_server: Any) -> None:
    """After shutdown the conductor's signals cost nothing again (no receiver left behind)."""
    import asyncio
    import weakref

    from atomiton_core import signals

    served = start_server()
    hub = served.app.state.hub

    def connected() -> list[str]:
        names = []
        for sig in signals.ALL_SIGNALS:
            for receiver in sig.receivers.values():
                target = receiver() if isinstance(receiver, weakref.ref) else receiver
                if getattr(target, "__self__", None) is hub:
                    names.append(sig.name)
        return names

    assert sorted(connected()) == sorted(s.name for s in signals.ALL_SIGNALS)
    asyncio.run_coroutine_threadsafe(hub.stop(), hub.loop).result(10)
    assert connected() == []
