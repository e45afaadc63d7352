"""``atomiton triggers list|pause|resume|fire`` against a real ``atomiton serve`` process, and
``list --storage`` reading what the server left in storage; ``--safe`` and the token on
webhooks. Runs are waited for with ``GET /api/executions/{id}?wait=``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from atomiton_core import loads_flow
from atomiton_core.storage.flows import create_storage

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]

REPORT = """\
id: report
name: Report
variables: {who: {type: string, defaultValue: world}}
triggers:
  # every morning at six, Paris time
  - {id: daily, type: schedule, cron: '0 6 * * *', timezone: Europe/Paris}
  - {id: hook, type: webhook, path: report}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}, keepOnlySet: true}
"""


def atomiton(*args: str, server: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATOMITON_SERVER": "", "ATOMITON_TOKEN": ""}
    if server is not None:
        env["ATOMITON_SERVER"], env["ATOMITON_TOKEN"] = server
    return subprocess.run(
        [*ATOMITON, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def finished(url: str, token: str, execution_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{url}/api/executions/{execution_id}?wait=30",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.slow
def test_the_cli_lists_pauses_and_fires_triggers(
    serve_cli: Callable[..., Any], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    create_storage(str(store)).save(loads_flow(REPORT))
    with serve_cli(store) as (url, token):
        listed = atomiton("triggers", "list", server=(url, token))
        assert listed.returncode == 0, listed.stderr
        assert "report/daily" in listed.stdout and "report/hook" in listed.stdout
        assert "active" in listed.stdout

        paused = atomiton("triggers", "pause", "report", "daily", server=(url, token))
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.strip() == "paused report/daily (paused)"

        fired = atomiton(
            "triggers", "fire", "report", "hook", "-i", "who=Ada", "--json", server=(url, token)
        )
        assert fired.returncode == 0, fired.stderr
        answer = json.loads(fired.stdout)
        assert answer["status"] == "running"
        result = finished(url, token, answer["executionId"])
        assert result["outputs"]["greet"]["output"] == {"message": "Hello Ada"}

        which = atomiton("triggers", "fire", "report", server=(url, token))
        assert which.returncode == 2 and "name one of daily, hook" in which.stderr

        state = json.loads(atomiton("triggers", "list", "--json", server=(url, token)).stdout)
        by_key = {t["key"]: t for t in state["triggers"]}
        assert by_key["report/daily"]["paused"] is True
        assert by_key["report/hook"]["lastRun"]["executionId"] == answer["executionId"]

        refused = atomiton("triggers", "list", server=(url, "wrong-token"))
        assert refused.returncode == 1 and "token" in refused.stderr
    # the server is gone: its triggers and their saved state are read from storage
    stored = atomiton("triggers", "list", "--storage", str(store), "--json")
    assert stored.returncode == 0, stored.stderr
    by_key = {t["key"]: t for t in json.loads(stored.stdout)["triggers"]}
    assert by_key["report/daily"]["status"] == "paused"
    assert by_key["report/daily"]["nextFireAt"] is not None
    assert by_key["report/hook"]["lastRun"]["status"] == "completed"
    table = atomiton("triggers", "list", "--storage", str(store))
    assert "report/daily" in table.stdout and "paused" in table.stdout
    gone = atomiton("triggers", "list", server=("http://127.0.0.1:9", "x"))
    assert gone.returncode == 1 and "no server answers at http://127.0.0.1:9" in gone.stderr


SAFE = """\
id: guarded
name: Guarded
variables: {path: {type: string}}
triggers:
  - {id: hook, type: webhook, path: guarded}
  - {id: open, type: webhook, path: guarded/open, public: true, secret: shared-secret}
  - {id: outside, type: watch, folder: FOLDER}
nodes:
  - {id: note, type: edit-fields, parameters: {values: {seen: "{{ path }}"}}}
"""


def test_safe_mode_and_the_token_hold_for_webhooks(
    serve_cli: Callable[..., Any], tmp_path: Path
) -> None:
    store, allowed, outside = tmp_path / "store", tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    create_storage(str(store)).save(loads_flow(SAFE.replace("FOLDER", str(outside))))
    with serve_cli(store, "--safe", "--allow-root", str(allowed)) as (url, token):
        hook = f"{url}/api/hooks/guarded"
        assert httpx.post(hook, json={}).status_code == 401  # no token
        started = httpx.post(hook, json={}, headers={"Authorization": f"Bearer {token}"})
        assert started.status_code == 202, started.text
        assert finished(url, token, started.json()["executionId"])["status"] == "completed"
        assert httpx.post(f"{hook}/open", json={}).status_code == 401  # public, unsigned
        triggers = httpx.get(
            f"{url}/api/triggers?flowId=guarded", headers={"Authorization": f"Bearer {token}"}
        ).json()["triggers"]
        watch = next(t for t in triggers if t["id"] == "outside")
        assert watch["status"] == "error" and "outside the allowed roots" in watch["problem"]
