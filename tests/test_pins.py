"""Pinned data: a pinned node does not run, its pinned outputs flow on, it is reported pinned;
pins are written from a past run by the CLI, kept through the round trip, and validated."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import create_conductor, dumps_flow, loads_flow

pytest.importorskip("atomiton_nodes_io")


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = json.dumps({"answer": 42, "hit": type(self).hits}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _Counting.hits = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    finally:
        httpd.shutdown()
        httpd.server_close()


FLOW = """# a flow that asks a server
id: ask
name: Ask
nodes:
  - id: fetch        # the request a pin spares
    type: http-request
    parameters: {{url: "{url}"}}
  - id: answer
    type: transform
    parameters: {{operation: map, expression: "item.answer * 2"}}
edges:
  - {{source: fetch, sourceHandle: result, target: answer, targetHandle: input}}
"""


def atomiton(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atomiton_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_pinned_http_node_makes_no_request(server: str, tmp_path: Path) -> None:
    flow_file = tmp_path / "ask.flow.yaml"
    flow_file.write_text(FLOW.format(url=server))
    store = str(tmp_path / "store")
    first = atomiton("run", str(flow_file), "--json", "--storage", store)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert _Counting.hits == 1
    assert data["outputs"] == {"answer": {"output": [84]}}
    pinned = atomiton(
        "run",
        str(flow_file),
        "--pin-from",
        data["executionId"],
        "fetch",
        "--json",
        "--storage",
        store,
    )
    assert pinned.returncode == 0, pinned.stderr
    again = json.loads(pinned.stdout)
    assert _Counting.hits == 1  # no request: the pin answered
    assert again["nodes"]["fetch"]["status"] == "pinned"
    assert again["nodes"]["answer"]["status"] == "completed"
    assert again["outputs"] == data["outputs"]
    text = flow_file.read_text()
    assert "# the request a pin spares" in text and "pins:" in text  # comments kept
    third = json.loads(atomiton("run", str(flow_file), "--json", "--storage", store).stdout)
    assert third["nodes"]["fetch"]["status"] == "pinned" and _Counting.hits == 1
    wrong = atomiton("run", str(flow_file), "fetch", "--storage", store)
    assert wrong.returncode == 2 and "--pin-from" in wrong.stderr
    missing = atomiton(
        "run", str(flow_file), "--pin-from", data["executionId"], "nope", "--storage", store
    )
    assert (
        missing.returncode == 1 and "'nope'" in missing.stderr and "Traceback" not in missing.stderr
    )


def test_pins_are_kept_through_the_round_trip_and_validated(tmp_path: Path) -> None:
    text = (
        "id: p\nname: p\nnodes:\n  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}\n"
        "  - {id: b, type: transform, parameters: {operation: map, expression: item.x}}\n"
        "edges:\n  - {source: a, target: b}\n"
        "pins:\n  a:  # from yesterday's run\n    output: {x: 5}\n"
    )
    flow = loads_flow(text)
    assert flow.pins == {"a": {"output": {"x": 5}}}
    assert "# from yesterday's run" in dumps_flow(flow)
    with create_conductor(tmp_path / "s") as c:
        result = c.run(flow)
        assert result.ok and str(result.nodes["a"].status) == "pinned"
        assert result.outputs == {"b": {"output": [5]}}
        bad = loads_flow(
            text.replace("  a:  # from", "  ghost:  # from").replace(
                "pins:", "pins:\n  b: {nope: 1}"
            )
        )
        problems = {(p.code, p.location) for p in c.validate(bad).errors}
    assert ("PIN_NODE_NOT_FOUND", "pins.ghost") in problems
    assert ("PIN_PORT_NOT_FOUND", "pins.b.nope") in problems
