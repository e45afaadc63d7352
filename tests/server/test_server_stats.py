"""``GET /api/flows/{id}/stats`` and ``RemoteConductor.flow_stats``: a flow's per-node
figures over its last runs, from the real app under uvicorn, runs started through the API."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from atomiton_core import NodeContext, create_conductor, hookimpl, loads_flow, node, wire
from atomiton_core.errors import FlowNotFound
from atomiton_core.server.app import create_app
from atomiton_core.server.client import RemoteConductor
from atomiton_core.storage.stats import FlowStats

TOKEN = "stats-token-0123456789"
FLOW = """
id: served-stats
name: Served stats
variables: {fail: {type: boolean, defaultValue: false}}
nodes:
  - {id: start, type: edit-fields, parameters: {values: {n: 1}}}
  - {id: flaky, type: served-stats.flaky}
edges:
  - {source: start, target: flaky}
"""


@node("served-stats.flaky", outputs={"output": object}, blocking=False)
def flaky(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    """Fails when the run's variable ``fail`` is true."""
    if ctx.variables.get("fail"):
        raise RuntimeError("asked to fail")
    return {"output": input}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [flaky]


def test_stats_over_http_and_through_the_client(
    tmp_path: Path, serve_app: Callable[..., contextlib.AbstractContextManager[Any]]
) -> None:
    conductor = create_conductor(
        str(tmp_path / f"store-{uuid.uuid4().hex}"), plugins=[Plugin()], autoload=False
    )
    storage = conductor.storage
    assert storage is not None
    storage.save(loads_flow(FLOW))
    with (
        serve_app(create_app(conductor, token=TOKEN), conductor, TOKEN) as served,
        RemoteConductor(served.url, TOKEN) as remote,
    ):
        empty = remote.flow_stats("served-stats")  # stored, never run: no figures, no error
        assert type(empty) is FlowStats and empty.runs == 0 and empty.nodes == []
        started = [remote.run("served-stats", {"fail": f}) for f in (False, True) * 2 + (False,)]
        assert [str(r.status) for r in started] == ["completed", "failed"] * 2 + ["completed"]

        stats = remote.flow_stats("served-stats")
        assert type(stats) is FlowStats
        assert wire.dump(stats) == wire.dump(storage.stats("served-stats"))  # as locally
        assert stats.runs == 5 and stats.statuses == {"completed": 3, "failed": 2}
        assert stats.node("flaky").failure_rate == 0.4
        durations = sorted(r.nodes["flaky"].duration_ms or 0.0 for r in started)
        assert stats.node("flaky").p50_ms == durations[2]  # nearest rank: the 3rd of 5

        auth = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.get(f"{served.url}/api/flows/served-stats/stats?last=2", headers=auth)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["runs"] == 2 and body["statuses"] == {"completed": 1, "failed": 1}
        assert {n["node"]: n["failureRate"] for n in body["nodes"]} == {"start": 0.0, "flaky": 0.5}
        assert remote.flow_stats("served-stats", last=2).runs == 2

        for bad in ("0", "-1", "two", "1" * 40):
            refused = httpx.get(
                f"{served.url}/api/flows/served-stats/stats?last={bad}", headers=auth
            )
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"]["code"] == "BAD_REQUEST"
        missing = httpx.get(f"{served.url}/api/flows/nope/stats", headers=auth)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "FLOW_NOT_FOUND"
        with pytest.raises(FlowNotFound, match="no flow 'nope'"):
            remote.flow_stats("nope")
        assert httpx.get(f"{served.url}/api/flows/served-stats/stats").status_code == 401
