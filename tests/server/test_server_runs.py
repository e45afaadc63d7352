"""Runs through the server: listed from storage, so a restarted server still has them; read,
resumed and deleted through the API and the client (a real ``atomiton serve`` process)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from atomiton_core import ExecutionResult
from atomiton_core.server.client import RemoteConductor

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


def test_a_restarted_server_still_lists_and_reads_past_runs(tmp_path: Path, serve_cli: Any) -> None:
    store = tmp_path / "store"
    (store / "flows").mkdir(parents=True)
    (store / "flows" / "twice.flow.yaml").write_text(FLOW)
    with serve_cli(store) as (url, token), RemoteConductor(url, token) as client:
        failed = client.run("twice")  # divides by zero
        assert failed.status == "failed"
    with serve_cli(store) as (url, token), RemoteConductor(url, token) as client:
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
        log = client.run_events(failed.execution_id)
        kinds = [e["type"] for e in log]
        assert kinds[0] == "execution.started" and kinds[-1] == "execution.failed"
        assert client.run_events(failed.execution_id, after=2) == log[2:]
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
        # pages: the newest first, then those before the last of a page; a gone one is a 404
        third = client.run("twice", {"d": 3})
        newest = [third.execution_id, fixed.execution_id, failed.execution_id]
        assert [r["executionId"] for r in client.runs(limit=2)] == newest[:2]
        after = client.runs(limit=2, before=fixed.execution_id)
        assert [r["executionId"] for r in after] == newest[2:]
        gone = httpx.get(f"{url}/api/runs", params={"before": "nope"}, headers=auth)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "RUN_NOT_FOUND"
        bad_limit = httpx.get(f"{url}/api/runs", params={"limit": "-1"}, headers=auth)
        assert bad_limit.status_code == 400, bad_limit.text
        events_url = f"{url}/api/runs/{fixed.execution_id}/events"
        page = httpx.get(events_url, params={"after": "1"}, headers=auth).json()
        assert page["next"] == len(client.run_events(fixed.execution_id))
        assert page["events"] == client.run_events(fixed.execution_id)[1:]
        bad_after = httpx.get(events_url, params={"after": "x"}, headers=auth)
        assert bad_after.status_code == 400 and "`after`" in bad_after.text
        client.delete_run(failed.execution_id)
        client.delete_run(third.execution_id)
        assert [r["executionId"] for r in client.runs()] == [fixed.execution_id]


def test_keep_alive_requests_are_answered_without_a_nagle_delay(
    tmp_path: Path, serve_cli: Any
) -> None:
    """Twenty health probes on one connection: each used to wait ~40 ms for a delayed ACK."""
    with serve_cli(tmp_path / "store") as (url, _token), httpx.Client(base_url=url) as http:
        http.get("/api/health")  # the connection is open
        took = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert http.get("/api/health").status_code == 200
            took.append(time.perf_counter() - t0)
    took.sort()
    assert took[len(took) // 2] < 0.02, [f"{t * 1000:.1f} ms" for t in took]
