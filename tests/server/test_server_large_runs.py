"""Large runs over the API: every event reaches a WebSocket client that keeps up, the server
answers other requests meanwhile, and a result too large for one message is fetched by URL."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect


def chain(n: int, flow_id: str = "chain") -> dict[str, Any]:
    """A flow of ``n`` edit-fields nodes, each after the one before."""
    return {
        "id": flow_id,
        "name": flow_id,
        "nodes": [
            {"id": f"n{i}", "type": "edit-fields", "parameters": {"values": {"x": i}}}
            for i in range(n)
        ],
        "edges": [{"source": f"n{i - 1}", "target": f"n{i}"} for i in range(1, n)],
    }


def chain_yaml(n: int, flow_id: str) -> str:
    lines = [f"id: {flow_id}", f"name: {flow_id}", "nodes:"]
    lines += [f"  - {{id: n{i}, type: edit-fields}}" for i in range(n)]
    lines += ["edges:", *(f"  - {{source: n{i - 1}, target: n{i}}}" for i in range(1, n))]
    return "\n".join(lines) + "\n"


def test_a_client_that_keeps_up_gets_every_event_of_a_large_run(start_server: Any) -> None:
    """20,002 events, more than the 10,000 the server used to keep (it dropped half)."""
    n = 10_000
    served = start_server(max_body_bytes=4 * 1024 * 1024)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=60) as http:
        started = http.post("/api/executions", json={"flow": chain(n)})
        assert started.status_code == 202, started.text
        eid = started.json()["executionId"]
        url = f"{served.ws_url}/api/executions/{eid}/events"
        with connect(url, additional_headers=served.auth, open_timeout=10, max_size=None) as ws:
            events = [json.loads(m) for m in ws]
            assert ws.close_code == 1000
    types = [e["type"] for e in events]
    assert len(events) == 2 + 2 * n
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    assert types.count("node.started") == types.count("node.completed") == n
    recorded = served.recorded_for(eid)  # what the conductor emitted, in its order
    assert events[:-1] == recorded[:-1]
    # the result passes a message's 1 MiB: the final event says where to get it instead
    final = dict(recorded[-1])
    assert len(json.dumps(final.pop("result"))) > 1024 * 1024
    assert events[-1] == {
        **final,
        "resultUrl": f"/api/executions/{eid}",
        "resultBytes": events[-1]["resultBytes"],
    }


def test_health_is_answered_while_a_large_run_executes(tmp_path: Path, serve_cli: Any) -> None:
    """Every probe is answered within a quarter of a second (the benchmark holds the server to
    50 ms; the old one answered some after 150-190 ms here and held its loop for up to a second
    in a 10,000-node run)."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "big.flow.yaml").write_text(chain_yaml(10_000, "big"))
    with (
        serve_cli(tmp_path) as (url, token),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        host, port = url.removeprefix("http://").split(":")
        probe = socket.create_connection((host, int(port)))
        probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = f"GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()

        def health() -> float:
            t = time.perf_counter()
            probe.sendall(request)
            data = b""
            while not data.endswith(b'"}'):  # {"status":"ok","version":"..."}
                data += probe.recv(65536)
            return time.perf_counter() - t

        health()
        eid = http.post("/api/executions", json={"flowId": "big"}).json()["executionId"]
        finished = threading.Event()

        def follow() -> None:
            ws_url = f"ws://{host}:{port}/api/executions/{eid}/events?token={token}"
            with connect(ws_url, open_timeout=30, max_size=None) as ws:
                for message in ws:
                    if json.loads(message)["type"] == "execution.started":
                        running.set()
            finished.set()

        running = threading.Event()
        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert running.wait(60)
        took = []
        while not finished.is_set():
            took.append(health())
        reader.join(10)
        probe.close()
        assert http.get(f"/api/executions/{eid}").json()["status"] == "completed"
    assert len(took) >= 5, took
    assert max(took) < 0.25, sorted(took)[-5:]


def test_a_result_larger_than_a_message_is_fetched_by_url(start_server: Any) -> None:
    served = start_server(max_message_bytes=4096)
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as http:
        eid = http.post("/api/executions", json={"flow": chain(100)}).json()["executionId"]
        url = f"{served.ws_url}/api/executions/{eid}/events"
        with connect(url, additional_headers=served.auth, open_timeout=10) as ws:
            final = [json.loads(m) for m in ws][-1]
        assert final["type"] == "execution.completed" and "result" not in final
        assert final["resultUrl"] == f"/api/executions/{eid}"
        result = http.get(final["resultUrl"]).json()
    assert final["resultBytes"] > 4096
    assert len(result["nodes"]) == 100 and result["status"] == "completed"
