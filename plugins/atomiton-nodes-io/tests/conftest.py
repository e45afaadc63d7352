"""Shared fixtures: a conductor with the installed plugin, memory roots, a real HTTP server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from atomiton_core import Conductor, ExecutionResult, create_conductor, loads_flow


@pytest.fixture
def conductor() -> Iterator[Conductor]:
    with create_conductor(f"memory://t-{uuid.uuid4().hex}", record_runs=False) as c:
        yield c


@pytest.fixture
def mem_root() -> Iterator[str]:
    import fsspec

    root = f"memory://io-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


RunNode = Callable[..., ExecutionResult]


@pytest.fixture
def run_node(conductor: Conductor) -> RunNode:
    """``run_node(type, parameters, input=..., conductor=...)`` runs a one-node flow."""

    def run(
        node_type: str,
        parameters: dict[str, Any],
        *,
        conductor: Conductor = conductor,
        **extra: Any,
    ) -> ExecutionResult:
        return _run_node(conductor, node_type, parameters, **extra)

    return run


def _run_node(
    conductor: Conductor, node_type: str, parameters: dict[str, Any], **extra: Any
) -> ExecutionResult:
    """Run a one-node flow (plus optional upstream `source` edit-fields feeding `input`)."""
    nodes: list[dict[str, Any]] = [{"id": "n", "type": node_type, "parameters": parameters}]
    edges: list[dict[str, Any]] = []
    if "input" in extra:
        nodes.insert(
            0,
            {
                "id": "source",
                "type": "edit-fields",
                "parameters": {"values": {"v": extra["input"]}, "keepOnlySet": True},
            },
        )
        nodes.insert(
            1,
            {
                "id": "pick",
                "type": "transform",
                "parameters": {"operation": "reduce", "expression": "item.v"},
            },
        )
        edges = [
            {
                "id": "e0",
                "source": "source",
                "target": "pick",
                "sourceHandle": "output",
                "targetHandle": "input",
            },
            {
                "id": "e1",
                "source": "pick",
                "target": "n",
                "sourceHandle": "output",
                "targetHandle": "input",
            },
        ]
    flow = loads_flow(json.dumps({"id": "t", "name": "t", "nodes": nodes, "edges": edges}))
    return conductor.run(flow)


# -- a real HTTP server on loopback ----------------------------------------------------------
class _State:
    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def hit(self, key: str) -> int:
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1
            self.times.setdefault(key, []).append(time.monotonic())
            return self.counters[key]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, **headers: str) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", **headers)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seg = parts.path.strip("/").split("/")
        state = self.server.state
        route = seg[0]
        if route == "json":
            self._json(200, {"hello": "world", "n": 1})
        elif route == "text":
            self._send(200, "plain text ✓".encode(), "text/plain; charset=utf-8")
        elif route == "binary":
            self._send(200, bytes(range(256)), "application/octet-stream")
        elif route == "echo":
            self._json(
                200,
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                },
            )
        elif route == "redirect":
            self.send_response(302)
            self.send_header("Location", "/json")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "status":
            self._json(int(seg[1]), {"error": "as requested"})
        elif route == "flaky":  # /flaky/<key>/<failures>/<status>
            n = state.hit(seg[1])
            if n <= int(seg[2]):
                self._json(int(seg[3]), {"attempt": n})
            else:
                self._json(200, {"attempt": n})
        elif route == "ratelimit":  # /ratelimit/<key>/<seconds>
            n = state.hit(seg[1])
            if n == 1:
                self._json(429, {"slow": "down"}, Retry_After=seg[2])
            else:
                self._json(200, {"attempt": n})
        elif route == "slow":
            state.stop.wait(float(seg[1]))
            self._json(200, {"late": True})
        elif route == "big":
            size = int(seg[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if len(seg) < 3:  # /big/<n>/chunked: no Content-Length, the node must count
                self.send_header("Content-Length", str(size))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 65536
            sent = 0
            try:
                while sent < size:
                    piece = chunk[: size - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        else:
            self._json(404, {"error": "no route"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = _State()


@pytest.fixture(scope="session")
def http_server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.state.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def base_url(http_server: _Server) -> str:
    host, port = http_server.server_address[:2]
    return f"http://{host!s}:{port}"
