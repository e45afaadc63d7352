"""The server's plans of stored flows: kept while their file is unchanged, and never stale
(a file written in place, saved through the API, deleted, or too new to trust its stamp)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atomiton_core import create_conductor
from atomiton_core.server.app import create_app
from atomiton_core.server.plans import SETTLE_S

TOKEN = "plans-test-token"

FLOW = """\
id: calc
name: Calc
nodes:
  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}
"""


def _age(path: Path, seconds: float = 60.0) -> None:
    """Make the file look saved ``seconds`` ago (as a flow a user runs usually is)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def local(tmp_path: Path, serve_app: Any) -> Iterator[tuple[httpx.Client, Any, Path]]:
    """A server on a local folder (plans are kept for local storage only)."""
    conductor = create_conductor(str(tmp_path), autoload=False)
    app = create_app(conductor, token=TOKEN)
    with (
        serve_app(app, conductor, TOKEN) as served,
        httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as http,
    ):
        yield http, app.state.plans, tmp_path / "flows" / "calc.flow.yaml"


def _x(http: httpx.Client, flow_id: str = "calc") -> Any:
    response = http.post("/api/executions?wait=true", json={"flowId": flow_id})
    assert response.status_code == 200, response.text
    return response.json()["outputs"]["a"]["output"]["x"]


def test_an_unchanged_file_is_planned_once(local: Any) -> None:
    http, plans, path = local
    path.parent.mkdir(parents=True)
    path.write_text(FLOW)
    _age(path)
    assert [_x(http) for _ in range(3)] == [1, 1, 1]
    assert (plans.misses, plans.hits) == (1, 2)


def test_a_file_rewritten_in_place_runs_its_new_version(local: Any) -> None:
    http, plans, path = local
    path.parent.mkdir(parents=True)
    path.write_text(FLOW)
    _age(path, 120)
    assert _x(http) == 1 and _x(http) == 1
    inode = path.stat().st_ino
    with path.open("r+") as fh:  # same inode, same size: only the stamp says it changed
        fh.write(FLOW.replace("x: 1", "x: 2"))
    assert path.stat().st_ino == inode and path.stat().st_size == len(FLOW)
    _age(path, 60)
    assert _x(http) == 2 and _x(http) == 2
    assert plans.misses == 2


def test_a_file_written_just_now_is_planned_every_time(local: Any) -> None:
    """Within a clock tick of the file system two writes can leave the same stamp, so the
    plan of a file younger than SETTLE_S is not kept."""
    http, plans, path = local
    path.parent.mkdir(parents=True)
    path.write_text(FLOW)
    assert time.time() - path.stat().st_mtime < SETTLE_S
    assert _x(http) == 1 and _x(http) == 1
    assert plans.hits == 0 and plans.misses == 2


def test_saving_or_deleting_through_the_api_forgets_the_plans(local: Any) -> None:
    http, plans, path = local
    path.parent.mkdir(parents=True)
    path.write_text(FLOW)
    _age(path)
    assert _x(http) == 1 and plans.misses == 1
    saved = http.put("/api/flows/calc", content=FLOW.replace("x: 1", "x: 3"))
    assert saved.status_code == 200, saved.text
    assert _x(http) == 3
    assert http.delete("/api/flows/calc").status_code == 204
    gone = http.post("/api/executions?wait=true", json={"flowId": "calc"})
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "FLOW_NOT_FOUND"


def test_flows_that_run_stored_flows_are_never_kept(local: Any) -> None:
    """Their validity depends on other files, whose changes their own stamp does not show."""
    http, plans, path = local
    path.parent.mkdir(parents=True)
    path.write_text(FLOW)
    outer = path.parent / "outer.flow.yaml"
    outer.write_text(
        "id: outer\nname: Outer\nnodes:\n  - {id: sub, type: flow, parameters: {flowId: calc}}\n"
    )
    _age(path)
    _age(outer)
    for _ in range(2):
        response = http.post("/api/executions?wait=true", json={"flowId": "outer"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
    assert plans.hits == 0
