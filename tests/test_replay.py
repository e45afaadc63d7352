"""Replay: a recorded run replayed answers its nodes that are not pure from the recording, runs
the rest, and names exactly the nodes whose outputs now differ (a real file written by the
original run is not written again)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atomiton_core import create_conductor, loads_flow
from atomiton_core.testing import assert_replays

pytest.importorskip("atomiton_nodes_io")
ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]

FLOW = """
id: report
name: Report
variables: {out: {defaultValue: ""}}
nodes:
  - {id: src, type: edit-fields, parameters: {values: {x: 3, y: 4}}}
  - {id: double, type: transform, parameters: {operation: map, expression: "item.x * 2"}}
  - {id: plus, type: transform, parameters: {operation: map, expression: "item + 1"}}
  - {id: other, type: transform, parameters: {operation: map, expression: "item.y"}}
  - {id: write, type: file-system, parameters: {operation: write, path: "{{ out }}"}}
edges:
  - {source: src, target: double}
  - {source: double, target: plus}
  - {source: src, target: other}
  - {source: plus, target: write, targetHandle: content}
"""


def test_a_recorded_run_replays_with_no_difference_and_names_what_changed(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    out = tmp_path / "written.txt"
    with create_conductor(store) as c:
        first = c.run(loads_flow(FLOW), {"out": str(out)})
        assert first.ok, first.error
        assert out.exists()
        out.unlink()  # a replay must not write it again
        same = c.replay(first.execution_id, loads_flow(FLOW))
        assert same.ok, same.summary()
        assert "write" in same.answered and "src" in same.answered  # not pure: answered
        assert not out.exists()
        changed = c.replay(first.execution_id, loads_flow(FLOW.replace("item.x * 2", "item.x * 3")))
    assert not changed.ok
    assert [d.path for d in changed.differences] == ["double", "plus"]  # not `other`
    assert "double (output)" in changed.summary()
    assert not out.exists()
    report = assert_replays(store, first.execution_id, loads_flow(FLOW))
    assert report.ok
    with pytest.raises(AssertionError, match="double"):
        assert_replays(store, first.execution_id, loads_flow(FLOW.replace("* 2", "* 5")))
    flow_file = tmp_path / "changed.flow.yaml"
    flow_file.write_text(FLOW.replace("item + 1", "item + 2"))
    done = subprocess.run(
        [
            *ATOMITON,
            "replay",
            first.execution_id,
            "--flow",
            str(flow_file),
            "--json",
            "--storage",
            str(store),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert [d["path"] for d in json.loads(done.stdout)["differences"]] == ["plus"]


def test_a_node_added_since_that_is_not_pure_is_not_run(tmp_path: Path) -> None:
    with create_conductor(tmp_path / "store") as c:
        first = c.run(loads_flow(FLOW), {"out": str(tmp_path / "a.txt")})
        extra = "  - {id: extra, type: file-system, parameters: {operation: write, path: x, content: hi}}\n"
        more = FLOW.replace("edges:\n", extra + "edges:\n")
        report = c.replay(first.execution_id, loads_flow(more))
    extra = report.result.nodes["extra"]
    assert str(extra.status) == "failed" and "not in the recording" in str(extra.error)
    assert not (tmp_path / "x").exists()
