"""The server on the path a client takes: a 1-node flow started with ``POST /api/executions``
and waited for (``GET /api/executions/{id}`` until it is done), against a bare starlette
endpoint answering JSON, both served by uvicorn on 127.0.0.1 in their own processes, measured
in turn in the same run. One client for the rate; ten clients for the latency percentiles.

    python -m benchmarks.server                    # 3 s per measurement, 3 repeats
    python -m benchmarks.server --n 1 --repeats 1  # (n: seconds per measurement)
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from benchmarks.isolation import run_main

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
BARE = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"executionId": "x", "status": "completed"})

app = Starlette(routes=[Route("/hello", hello, methods=["GET", "POST"])])
config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
server = uvicorn.Server(config)
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0)); sock.listen(128)
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
server.run(sockets=[sock])
"""


@contextmanager
def _bare() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", BARE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def _ours(folder: str) -> Iterator[tuple[str, str]]:
    os.makedirs(f"{folder}/flows", exist_ok=True)
    with open(f"{folder}/flows/one.flow.yaml", "w") as fh:
        fh.write(
            "id: one\nname: one\nnodes:\n  - {id: a, type: edit-fields, "
            "parameters: {values: {x: 1}}}\n"
        )
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
    try:
        yield url, token
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _rate(seconds: float, call: Callable[[], None]) -> float:
    call()  # warm
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call()
        done += 1
    return done / (time.perf_counter() - t0)


def _latencies(seconds: float, make: Callable[[], Callable[[], None]], clients: int) -> list[float]:
    took: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        call = make()
        call()
        mine = []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t)
        with lock:
            took.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(took)


def _execute(url: str, token: str, clients: list[httpx.Client]) -> Callable[[], None]:
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
    clients.append(http)  # closed by the caller

    def call() -> None:
        eid = http.post("/api/executions", json={"flowId": "one"}).json()["executionId"]
        while http.get(f"/api/executions/{eid}").json()["status"] == "running":
            pass

    return call


async def measure(n: int = 3, repeats: int = 3) -> dict[str, Any]:
    seconds = float(n)
    rows = []
    clients: list[httpx.Client] = []
    with tempfile.TemporaryDirectory() as folder, _bare() as bare, _ours(folder) as (url, token):
        bare_http = httpx.Client(base_url=bare)
        clients.append(bare_http)
        for _ in range(repeats):
            bare_rate = _rate(seconds, lambda: bare_http.post("/hello").json() and None)
            ours_rate = _rate(seconds, _execute(url, token, clients))
            lat = _latencies(seconds, lambda: _execute(url, token, clients), 10)
            rows.append(
                {
                    "bare": bare_rate,
                    "ours": ours_rate,
                    "p50_ms": lat[len(lat) // 2] * 1000,
                    "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
                }
            )
        for http in clients:
            http.close()
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {"n": n, "repeats": repeats, **med, "ratio": med["ours"] / med["bare"], "rows": rows}


def markdown(res: dict[str, Any]) -> str:
    return (
        f"{res['n']} s per measurement, {res['repeats']} repeats, medians\n\n"
        "| bare starlette req/s | ours: executions/s (POST + wait) | ours / bare "
        "| p50 at 10 clients | p99 at 10 clients |\n|---|---|---|---|---|\n"
        f"| {res['bare']:.0f} | {res['ours']:.0f} | {res['ratio']:.2f} | "
        f"{res['p50_ms']:.1f} ms | {res['p99_ms']:.1f} ms |\n"
    )


def main() -> None:
    run_main(__doc__, 3, 3, "server", measure, markdown)


if __name__ == "__main__":
    main()
