"""Runs through the server: listed from storage, so a restarted server still has them; read,
resumed and deleted through the API and the client (a real ``atomiton serve`` process)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from atomiton_core import ExecutionResult
from atomiton_core.server.client import RemoteConductor

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
FLOW = """
id: twice
name: Twice
variables: {d: {defaultValue: 0}}
nodes:
  - {id: make, type: edit-fields, parameters: {values: {n: 6}}}
  - {id: split, type: transform, parameters: {operation: map, expression: "item.n / d"}}
edges:
  - {source: make, target: split}
"""


@contextlib.contextmanager
def serve(storage: Path) -> Iterator[tuple[str, str]]:
    proc = subprocess.Popen(
        [*ATOMITON, "serve", "--port", "0", "--storage", str(storage), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ATOMITON_TOKEN": ""},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    url = token = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (url is None or token is None):
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if m := re.search(r"Atomiton server on (http://127\.0\.0\.1:\d+)/", line):
            url = m.group(1)
        if m := re.match(r"token: (\S+)", line):
            token = m.group(1)
    try:
        assert url and token, "".join(seen)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_a_restarted_server_still_lists_and_reads_past_runs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "flows").mkdir(parents=True)
    (store / "flows" / "twice.flow.yaml").write_text(FLOW)
    with serve(store) as (url, token), RemoteConductor(url, token) as client:
        failed = client.run("twice")  # divides by zero
        assert failed.status == "failed"
    with serve(store) as (url, token), RemoteConductor(url, token) as client:
        fixed = client.run("twice", {"d": 2}, resume=failed.execution_id)
        assert fixed.ok, fixed.error
        assert fixed.outputs == {"split": {"output": [3.0]}}
        runs = client.runs()
        assert [r["executionId"] for r in runs] == [fixed.execution_id, failed.execution_id]
        assert [r["status"] for r in runs] == ["completed", "failed"]
        assert client.runs(status="failed")[0]["executionId"] == failed.execution_id
        # the earlier server's run: its record, its log, its result
        record = client.run_record(failed.execution_id)
        assert record["nodes"]["split"]["status"] == "failed"
        kinds = [e["type"] for e in client.run_events(failed.execution_id)]
        assert kinds[0] == "execution.started" and kinds[-1] == "execution.failed"
        past = client.get(failed.execution_id)
        assert type(past) is ExecutionResult and past.status == "failed"
        listed = {e["executionId"] for e in client.executions()}
        assert {failed.execution_id, fixed.execution_id} <= listed
        # changed variables: every node re-ran (they see the variables)
        assert client.run_record(fixed.execution_id)["resumedFrom"] == failed.execution_id
        auth = {"Authorization": f"Bearer {token}"}
        missing = httpx.get(f"{url}/api/runs/nope", headers=auth)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "RUN_NOT_FOUND"
        bad = httpx.post(
            f"{url}/api/executions", json={"flowId": "twice", "resume": "nope"}, headers=auth
        )
        assert bad.status_code == 404, bad.text
        client.delete_run(failed.execution_id)
        assert [r["executionId"] for r in client.runs()] == [fixed.execution_id]


def test_keep_alive_requests_are_answered_without_a_nagle_delay(tmp_path: Path) -> None:
    """Twenty health probes on one connection: each used to wait ~40 ms for a delayed ACK."""
    with serve(tmp_path / "store") as (url, _token), httpx.Client(base_url=url) as http:
        http.get("/api/health")  # the connection is open
        took = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert http.get("/api/health").status_code == 200
            took.append(time.perf_counter() - t0)
    took.sort()
    assert took[len(took) // 2] < 0.02, [f"{t * 1000:.1f} ms" for t in took]
