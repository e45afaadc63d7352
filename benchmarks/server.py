"""The server on the path a client takes, against its baselines, all measured in one run.

Two servers, each uvicorn on 127.0.0.1 in its own process: ``atomiton serve`` and a bare
starlette endpoint answering JSON. The clients are lean (raw HTTP/1.1 keep-alive over asyncio
streams, about 30 µs a request) so the numbers are the servers' own, not a client library's.
Each repeat measures, in turn:

- one client: bare ``POST /hello`` requests/s against ours, a 1-node stored flow started and
  waited for in one request (``POST /api/executions?wait=true``, answered with its result);
- ten clients, each with its own connection: p50/p99 of each (the bare endpoint's as baseline);
- a 10,000-node chain started over the API (``POST /api/executions``) while a WebSocket client
  reads ``/api/executions/{id}/events`` as fast as it can: the events it received against those
  the run emitted (its stored run log, ``GET /api/runs/{id}/events``) and ``2 + 2 * nodes``;
- meanwhile a prober in its own process sends ``GET /api/health`` every millisecond: the
  latencies' p99 and max while that run executes, against the same prober on the idle server.

A third server, the same app with the run record off (``record_runs=False``), is measured on
the first two as a diagnosis: what recording every run costs a tiny execution. The flows and
the run records live in a temporary folder (``TMPDIR``; its file system is in the results).

    python -m benchmarks.server                    # 3 s per measurement, 3 repeats
    python -m benchmarks.server --n 1 --repeats 1  # (n: seconds per measurement)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

from benchmarks.isolation import run_main

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
#: Nodes of the large run.
BIG = 10_000
#: What each target asks of the server (issue 15).
TARGETS = {"ratio": 1 / 3, "p99_ms": 10.0, "lost": 0, "health_max_ms": 50.0}

BARE = """
import socket, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"executionId": "x", "status": "completed"})

async def health(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"]),
                        Route("/api/health", health)])
config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="off")
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0)); sock.listen(128)
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
uvicorn.Server(config).run(sockets=[sock])
"""

#: The app ``atomiton serve`` runs, with the run record off (a diagnosis, not a target).
NO_RECORD = """
import gc, socket, sys, uvicorn
from atomiton_core import create_conductor
from atomiton_core.server.app import create_app, uvicorn_settings
conductor = create_conductor(sys.argv[1], record_runs=False)
app = create_app(conductor, token=sys.argv[2])
config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_settings())
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0)); sock.listen(2048)
gc.collect(); gc.freeze()
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
uvicorn.Server(config).run(sockets=[sock])
"""
NO_RECORD_TOKEN = "diagnosis-token"

#: Probes ``GET /api/health`` on one keep-alive connection, a millisecond apart, until a line
#: comes on stdin; then prints the latencies (ms) as JSON. Its own process, so neither the
#: benchmark's WebSocket reader nor its GIL delays a probe.
PROBER = r"""
import json, socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
request = f"GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()

def probe():
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)

probe()
print("ready", flush=True)
took = []
while not stop.is_set():
    t = time.perf_counter()
    probe()
    took.append((time.perf_counter() - t) * 1000)
    time.sleep(0.001)
print(json.dumps(took), flush=True)
"""

ONE_YAML = (
    "id: one\nname: one\nnodes:\n  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}\n"
)


def big_yaml(n: int) -> str:
    """A chain of ``n`` edit-fields nodes (each sets ``x`` on its input)."""
    lines = ["id: big", "name: big", "nodes:"]
    lines += [
        f"  - {{id: n{i}, type: edit-fields, parameters: {{values: {{x: 1}}}}}}" for i in range(n)
    ]
    lines.append("edges:")
    lines += [f"  - {{source: n{i - 1}, target: n{i}}}" for i in range(1, n)]
    return "\n".join(lines) + "\n"


class Http:
    """One keep-alive HTTP/1.1 connection: requests written whole, answers read by length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Http:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    def encode(self, method: str, path: str, body: bytes = b"", token: str = "") -> bytes:
        """A request's bytes, to send many times."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body or method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send an encoded request; its status and body."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert found is not None, head
        return status, await self.reader.readexactly(int(found.group(1)))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def _fs_type(path: str) -> str:
    """The file system ``path`` is on (Linux: from /proc/mounts), or "unknown"."""
    try:
        with open("/proc/mounts") as fh:
            mounts = [line.split()[1:3] for line in fh]
    except OSError:
        return "unknown"
    real = os.path.realpath(path)
    best = max(
        (m for m in mounts if real == m[0] or real.startswith(m[0].rstrip("/") + "/")),
        key=lambda m: len(m[0]),
        default=["", "unknown"],
    )
    return best[1]


@contextmanager
def _script(source: str, *args: str) -> Iterator[str]:
    """A server script in its own process: the URL it prints; stopped on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-c", source, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def _store_flows(folder: str, big: int) -> None:
    os.makedirs(f"{folder}/flows", exist_ok=True)
    for name, text in (("one", ONE_YAML), ("big", big_yaml(big))):
        path = f"{folder}/flows/{name}.flow.yaml"
        with open(path, "w") as fh:
            fh.write(text)
        # saved a while ago, as the flows a user runs usually are: the server keeps the plan
        # of a file only once it is older than a file system's clock tick (server/plans.py)
        old = time.time() - 60
        os.utime(path, (old, old))


@contextmanager
def _ours(folder: str) -> Iterator[tuple[str, str]]:
    proc = subprocess.Popen(
        [*ATOMITON, "serve", "--port", "0", "--storage", folder, "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ATOMITON_TOKEN": ""},
    )
    assert proc.stdout is not None
    url = token = None
    while url is None or token is None:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("atomiton serve did not start")
        if m := re.search(r"Atomiton server on (http://127\.0\.0\.1:\d+)/", line):
            url = m.group(1)
        if m := re.match(r"token: (\S+)", line):
            token = m.group(1)
    # what it prints from now on is read and dropped, so a full pipe never blocks it
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    try:
        yield url, token
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


Call = Callable[[Http], Awaitable[None]]


def _bare_call(http: Http) -> Callable[[], Awaitable[None]]:
    request = http.encode("POST", "/hello")

    async def call() -> None:
        status, _ = await http.send(request)
        assert status == 200, status

    return call


def _ours_call(http: Http, token: str) -> Callable[[], Awaitable[None]]:
    request = http.encode("POST", "/api/executions?wait=true", b'{"flowId":"one"}', token)

    async def call() -> None:
        status, body = await http.send(request)
        assert status == 200 and b'"status":"completed"' in body, (status, body[:300])

    return call


async def _rate(
    seconds: float, url: str, make: Callable[[Http], Callable[[], Awaitable[None]]]
) -> float:
    """Calls per second of one client, one after the other."""
    http = await Http.open(url)
    call = make(http)
    try:
        for _ in range(20):  # warm
            await call()
        done, clock = 0, time.perf_counter
        t0 = clock()
        while clock() - t0 < seconds:
            await call()
            done += 1
        return done / (clock() - t0)
    finally:
        await http.close()


async def _latencies(
    seconds: float, url: str, make: Callable[[Http], Callable[[], Awaitable[None]]], clients: int
) -> list[float]:
    """Every call's latency (ms, sorted) of ``clients`` concurrent clients."""
    conns = [await Http.open(url) for _ in range(clients)]
    took: list[float] = []
    clock = time.perf_counter

    async def client(http: Http) -> None:
        call = make(http)
        for _ in range(5):
            await call()
        await started.wait()
        while clock() < stop:
            t = clock()
            await call()
            took.append((clock() - t) * 1000)

    started = asyncio.Event()
    stop = clock() + seconds + 0.5
    tasks = [asyncio.create_task(client(h)) for h in conns]
    await asyncio.sleep(0.5)  # everyone warm
    started.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        for h in conns:
            await h.close()
    return sorted(took)


@contextmanager
def _prober(url: str) -> Iterator[Callable[[], list[float]]]:
    """A health prober in its own process; calling what it yields stops it: its latencies."""
    parts = urlsplit(url)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBER, str(parts.hostname), str(parts.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    out: list[float] = []

    def stop() -> list[float]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        out.extend(json.loads(proc.stdout.readline()))
        return sorted(out)

    try:
        yield stop
    finally:
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()


def _health(took: list[float]) -> dict[str, float]:
    return {
        "probes": len(took),
        "p50_ms": _percentile(took, 0.5),
        "p99_ms": _percentile(took, 0.99),
        "max_ms": took[-1],
    }


async def _big_run(url: str, token: str, nodes: int) -> dict[str, Any]:
    """The large run with a WebSocket reader and a health prober (and the prober idle first)."""
    with _prober(url) as stop:
        await asyncio.sleep(0.5)
        idle = stop()
    http = await Http.open(url)
    try:
        with _prober(url) as stop:
            t0 = time.perf_counter()
            status, body = await http.send(
                http.encode("POST", "/api/executions", b'{"flowId":"big"}', token)
            )
            assert status == 202, (status, body[:300])
            eid = json.loads(body)["executionId"]
            ws_url = "ws" + url.removeprefix("http") + f"/api/executions/{eid}/events"
            counts: dict[str, int] = {}
            async with connect(
                ws_url,
                additional_headers={"Authorization": f"Bearer {token}"},
                max_size=None,
                compression=None,
            ) as ws:
                async for message in ws:
                    kind = json.loads(message)["type"]
                    counts[kind] = counts.get(kind, 0) + 1
                close_code = ws.close_code
            run_s = time.perf_counter() - t0
            during = stop()
        status, body = await http.send(http.encode("GET", f"/api/runs/{eid}/events", token=token))
        assert status == 200, (status, body[:300])
        emitted = len(json.loads(body)["events"])
        status, body = await http.send(http.encode("GET", f"/api/executions/{eid}", token=token))
        result = json.loads(body)
    finally:
        await http.close()
    received = sum(counts.values())
    expected = 2 + 2 * nodes
    return {
        "status": result["status"],
        "nodes_completed": sum(1 for r in result["nodes"].values() if r["status"] == "completed"),
        "run_s": run_s,
        "events_expected": expected,
        "events_logged": emitted,
        "events_received": received,
        "lost": max(expected, emitted) - received,
        "close_code": close_code,
        "counts": counts,
        "health_idle": _health(idle),
        "health_during": _health(during),
    }


async def measure(n: int = 3, repeats: int = 3, nodes: int = BIG) -> dict[str, Any]:
    """``n`` seconds per rate or latency measurement, ``repeats`` interleaved repeats; the
    large run has ``nodes`` nodes."""
    seconds = float(n)
    rows = []
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        plain = stack.enter_context(tempfile.TemporaryDirectory())
        _store_flows(folder, nodes)
        _store_flows(plain, 1)
        bare = stack.enter_context(_script(BARE))
        url, token = stack.enter_context(_ours(folder))
        diag = stack.enter_context(_script(NO_RECORD, plain, NO_RECORD_TOKEN))
        ours = lambda http: _ours_call(http, token)  # noqa: E731
        unrecorded = lambda http: _ours_call(http, NO_RECORD_TOKEN)  # noqa: E731
        for _ in range(repeats):
            row: dict[str, Any] = {}
            row["bare"] = await _rate(seconds, bare, _bare_call)
            row["ours"] = await _rate(seconds, url, ours)
            row["no_record"] = await _rate(seconds, diag, unrecorded)
            lat = await _latencies(seconds, bare, _bare_call, 10)
            row["bare_p50_ms"], row["bare_p99_ms"] = _percentile(lat, 0.5), _percentile(lat, 0.99)
            lat = await _latencies(seconds, url, ours, 10)
            row["p50_ms"], row["p99_ms"] = _percentile(lat, 0.5), _percentile(lat, 0.99)
            lat = await _latencies(seconds, diag, unrecorded, 10)
            row["no_record_p99_ms"] = _percentile(lat, 0.99)
            row["ratio"] = row["ours"] / row["bare"]
            row["no_record_ratio"] = row["no_record"] / row["bare"]
            row["big"] = await _big_run(url, token, nodes)
            rows.append(row)
        storage = _fs_type(folder)
    flat = [{k: v for k, v in r.items() if k != "big"} for r in rows]
    for r, f in zip(rows, flat, strict=True):
        big = r["big"]
        f["lost"] = big["lost"]
        f["run_s"] = big["run_s"]
        for key in ("p99_ms", "max_ms"):
            f[f"health_idle_{key}"] = big["health_idle"][key]
            f[f"health_{key}"] = big["health_during"][key]
    stats = {
        k: {
            "median": statistics.median(f[k] for f in flat),
            "min": min(f[k] for f in flat),
            "max": max(f[k] for f in flat),
        }
        for k in flat[0]
    }
    return {
        "n": n,
        "repeats": repeats,
        "nodes": nodes,
        "events": 2 + 2 * nodes,
        "storage": storage,
        **{k: v["median"] for k, v in stats.items()},
        "met": {
            "ratio": stats["ratio"]["median"] >= TARGETS["ratio"],
            "p99_ms": stats["p99_ms"]["median"] <= TARGETS["p99_ms"],
            "lost": stats["lost"]["max"] <= TARGETS["lost"],
            "health_max_ms": stats["health_max_ms"]["max"] <= TARGETS["health_max_ms"],
        },
        "stats": stats,
        "rows": rows,
    }


def _cell(stats: dict[str, dict[str, float]], key: str, fmt: str, unit: str = "") -> str:
    s = stats[key]
    return f"{s['median']:{fmt}}{unit} ({s['min']:{fmt}}-{s['max']:{fmt}})"


def markdown(res: dict[str, Any]) -> str:
    st, met = res["stats"], res["met"]
    yes = {True: "met", False: "**not met**"}
    ms = " ms"
    return (
        f"{res['n']} s per measurement, {res['repeats']} interleaved repeats, median (min-max); "
        f"ratio and p99 judged on the median, the other two on the worst repeat. Large run: a "
        f"{res['nodes']:,}-node chain of edit-fields ({res['events']:,} events). Storage on "
        f"{res['storage']}.\n\n"
        "| target | baseline | ours | target | |\n|---|---|---|---|---|\n"
        f"| one client, 1-node flow, POST ?wait=true | bare starlette {_cell(st, 'bare', '.0f')} "
        f"req/s | {_cell(st, 'ours', '.0f')} executions/s, ratio "
        f"**{_cell(st, 'ratio', '.2f')}** | >= 0.33 | {yes[met['ratio']]} |\n"
        f"| ten clients, p99 | bare {_cell(st, 'bare_p99_ms', '.1f', ms)} | "
        f"**{_cell(st, 'p99_ms', '.1f', ms)}** (p50 {_cell(st, 'p50_ms', '.1f', ms)}) "
        f"| <= 10 ms | {yes[met['p99_ms']]} |\n"
        f"| events a WebSocket reader of the large run lost | {res['events']:,} emitted | "
        f"**{_cell(st, 'lost', '.0f')}** (run and stream {_cell(st, 'run_s', '.2f', ' s')}) "
        f"| 0 | {yes[met['lost']]} |\n"
        f"| health probe during the large run, max | idle server "
        f"{_cell(st, 'health_idle_max_ms', '.1f', ms)} | **{_cell(st, 'health_max_ms', '.1f', ms)}**"
        f" (p99 {_cell(st, 'health_p99_ms', '.1f', ms)}) | <= 50 ms | "
        f"{yes[met['health_max_ms']]} |\n"
        f"| diagnosis: ours with the run record off | | {_cell(st, 'no_record', '.0f')} "
        f"executions/s, ratio {_cell(st, 'no_record_ratio', '.2f')}; ten clients' p99 "
        f"{_cell(st, 'no_record_p99_ms', '.1f', ms)} | | |\n"
    )


def main() -> None:
    run_main(__doc__, 3, 3, "server", measure, markdown)


if __name__ == "__main__":
    main()
