"""``atomiton runs stats FLOW``: per-node figures over a flow's last runs, read by real
subprocesses of the command from runs a real conductor recorded."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from atomiton_core import (
    Conductor,
    NodeContext,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
)

#: ``cli(*args)``: the finished ``atomiton`` process (tests/cli/conftest.py).
Cli = Callable[..., subprocess.CompletedProcess[str]]


class NapParams(BaseModel):
    ms: float = 1


@node("cli-stats.nap", params=NapParams, outputs={"output": object}, blocking=False)
async def nap(ctx: NodeContext, params: NapParams, input: Any = None) -> dict[str, Any]:
    """The slow node: ``ms`` milliseconds."""
    await asyncio.sleep(params.ms / 1000)
    return {"output": input}


@node("cli-stats.flaky", outputs={"output": object}, blocking=False)
def flaky(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    """Fails when the run's variable ``fail`` is true."""
    if ctx.variables.get("fail"):
        raise RuntimeError("asked to fail")
    return {"output": input}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [nap, flaky]


FLOW = """
id: profiled
name: Profiled
variables: {fail: {type: boolean, defaultValue: false}}
nodes:
  - {id: start, type: edit-fields, parameters: {values: {n: 1}}}
  - {id: slow, type: cli-stats.nap, parameters: {ms: 20}}
  - {id: flaky, type: cli-stats.flaky}
  - id: batch
    type: loop
    parameters: {loopType: times, count: 2}
    nodes:
      - {id: clean, type: edit-fields, parameters: {values: {c: 1}}}
edges:
  - {source: start, target: slow}
  - {source: slow, target: flaky}
"""


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


@pytest.fixture()
def recorded(tmp_path: Path) -> tuple[str, Conductor]:
    """Five runs, ``flaky`` failing in the second and the fourth."""
    url = str(tmp_path / "store")
    conductor = create_conductor(url, plugins=[Plugin()], autoload=False)
    flow = loads_flow(FLOW)
    for fail in (False, True, False, True, False):
        conductor.run(flow, {"fail": fail})
    return url, conductor


def test_stats_as_json_and_as_a_table(recorded: tuple[str, Conductor], cli: Cli) -> None:
    url, conductor = recorded
    assert conductor.storage is not None
    done = cli("runs", "stats", "profiled", "--json", "--storage", url)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["flowId"] == "profiled" and body["last"] == 50
    assert (body["runs"], body["finished"], body["unfinished"]) == (5, 5, 0)
    assert body["statuses"] == {"completed": 3, "failed": 2}
    nodes = {n["node"]: n for n in body["nodes"]}
    assert list(nodes) == ["start", "slow", "flaky", "batch", "batch/clean"]
    assert nodes["flaky"]["failureRate"] == 0.4
    assert (nodes["flaky"]["ran"], nodes["flaky"]["failed"]) == (5, 2)
    assert nodes["batch/clean"]["nodeType"] == "edit-fields"
    assert (nodes["batch/clean"]["runs"], nodes["batch/clean"]["ran"]) == (5, 10)
    results = [
        conductor.storage.record(r.execution_id).to_result()
        for r in conductor.storage.runs(flow_id="profiled")
    ]
    slow_ms = [r.nodes["slow"].duration_ms for r in results]
    assert all(d is not None and d >= 20 for d in slow_ms)
    assert nodes["slow"]["p50Ms"] == nearest_rank([d for d in slow_ms if d is not None], 50)
    assert nodes["slow"]["p95Ms"] == max(d for d in slow_ms if d is not None)
    run_ms = [r.duration_ms for r in results if r.duration_ms is not None]
    assert body["p50Ms"] == nearest_rank(run_ms, 50)

    table = cli("runs", "stats", "profiled", "--storage", url)
    assert table.returncode == 0, table.stderr
    for text in (
        "flow profiled: its last 5 run(s) (--last 50): 3 completed, 2 failed",
        "run duration: p50 ",
        "cli-stats.flaky",
        "40% (2/5)",
        "batch/clean",
        "nearest-rank",
    ):
        assert text in table.stdout, (text, table.stdout)

    newest = json.loads(
        cli("runs", "stats", "profiled", "--last", "2", "--json", "--storage", url).stdout
    )
    assert newest["runs"] == 2 and newest["statuses"] == {"completed": 1, "failed": 1}
    assert {n["node"]: n for n in newest["nodes"]}["flaky"]["failureRate"] == 0.5
    conductor.close()


def test_an_unknown_flow_or_one_without_runs_is_an_error(tmp_path: Path, cli: Cli) -> None:
    url = str(tmp_path / "store")
    missing = cli("runs", "stats", "nope", "--storage", url)
    assert missing.returncode == 1
    assert "error: no flow 'nope' in storage" in missing.stderr
    assert "and no runs of it" in missing.stderr and "Traceback" not in missing.stderr
    as_json = cli("runs", "stats", "nope", "--json", "--storage", url)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "FLOW_NOT_FOUND"
    conductor = create_conductor(url, autoload=False)
    assert conductor.storage is not None
    conductor.storage.save(loads_flow(FLOW))
    conductor.close()
    never = cli("runs", "stats", "profiled", "--storage", url)
    assert never.returncode == 1
    assert "flow 'profiled' has no runs in storage" in never.stderr
    assert "atomiton run profiled" in never.stderr  # the hint
    bad = cli("runs", "stats", "profiled", "--last", "0", "--storage", url)
    assert bad.returncode == 2 and "--last" in bad.stderr
