"""The graph layout (atomiton_core.server.graph): boxes inside their containers, no two boxes of
one graph overlapping, every edge from an existing port to an existing port; and the graph
routes of the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from atomiton_core import Catalogue, Flow, load_flow, loads_flow
from atomiton_core.server.graph import flow_graph, skeleton_flow
from atomiton_core.testing import flows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CATALOGUE = Catalogue.load(autoload=True)  # the io plugin too: spreadsheet, file-system

NESTED = """\
id: nested
name: Nested
nodes:
  - id: start
    type: edit-fields
    parameters: {values: {items: [1, 2, 3]}}
  - id: outer
    type: group
    nodes:
      - id: prepare
        type: edit-fields
        parameters: {values: {x: 1}}
      - id: each
        type: loop
        parameters: {loopType: forEach}
        nodes:
          - id: inner
            type: group
            nodes:
              - {id: deep, type: edit-fields, parameters: {values: {y: 2}}}
            edges:
              - {source: inner, sourceHandle: input, target: deep, targetHandle: input}
              - {source: deep, sourceHandle: output, target: inner, targetHandle: result}
        edges:
          - {source: each, sourceHandle: item, target: inner, targetHandle: input}
          - {source: inner, sourceHandle: result, target: each, targetHandle: results}
    edges:
      - {source: outer, sourceHandle: input, target: prepare, targetHandle: input}
      - {source: prepare, sourceHandle: output, target: each, targetHandle: items}
      - {source: each, sourceHandle: results, target: outer, targetHandle: done}
  - id: after
    type: transform
    parameters: {operation: flatten}
edges:
  - {source: start, sourceHandle: output, target: outer, targetHandle: input}
  - {source: outer, sourceHandle: done, target: after, targetHandle: input}
"""

LONG_EDGE = """\
id: long-edge
name: Long edge
nodes:
  - {id: a, type: edit-fields, parameters: {values: {n: 1}}}
  - {id: b, type: edit-fields, parameters: {values: {n: 2}}}
  - {id: c, type: edit-fields, parameters: {values: {n: 3}}}
  - {id: d, type: merge, parameters: {mode: append}}
edges:
  - {source: a, target: b}
  - {source: b, target: c}
  - {source: c, target: d, targetHandle: data}
  - {source: a, target: d, targetHandle: data}
"""


def _inside(child: dict[str, Any], parent: dict[str, Any]) -> bool:
    return (
        parent["x"] <= child["x"]
        and child["x"] + child["w"] <= parent["x"] + parent["w"]
        and parent["y"] <= child["y"]
        and child["y"] + child["h"] <= parent["y"] + parent["h"]
    )


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def check_layout(graph: dict[str, Any]) -> None:
    """The layout's contract, for any flow."""
    boxes = {n["path"]: n for n in graph["nodes"]}
    assert len(boxes) == len(graph["nodes"]), "a path is drawn twice"
    for box in boxes.values():
        assert box["w"] > 0 and box["h"] > 0
        assert box["x"] >= 0 and box["x"] + box["w"] <= graph["width"]
        assert box["y"] >= 0 and box["y"] + box["h"] <= graph["height"]
        if box["parent"] is not None:
            parent = boxes[box["parent"]]
            assert parent["container"] and not parent["collapsed"]
            assert _inside(box, parent), (box["path"], "outside", parent["path"])
    siblings: dict[str | None, list[dict[str, Any]]] = {}
    for box in boxes.values():
        siblings.setdefault(box["parent"], []).append(box)
    for group in siblings.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                assert not _overlap(a, b), (a["path"], "overlaps", b["path"])
    for edge in graph["edges"]:
        source, target = boxes[edge["source"]], boxes[edge["target"]]
        # an edge inside a container may start at the container's own (left border) port
        # or end at its own (right border) port
        out_side = "inputs" if edge["source"] == edge["parent"] else "outputs"
        in_side = "outputs" if edge["target"] == edge["parent"] else "inputs"
        ports = {p["name"]: p for p in source[out_side]}
        assert edge["sourceHandle"] in ports, (edge, source[out_side])
        start = ports[edge["sourceHandle"]]
        ports = {p["name"]: p for p in target[in_side]}
        assert edge["targetHandle"] in ports, (edge, target[in_side])
        end = ports[edge["targetHandle"]]
        assert edge["points"][0] == [start["x"], start["y"]]
        assert edge["points"][-1] == [end["x"], end["y"]]
        assert len(edge["points"]) >= 4
        assert start["x"] in (source["x"], source["x"] + source["w"])  # on the border
        assert end["x"] in (target["x"], target["x"] + target["w"])


def test_the_order_report_example() -> None:
    graph = flow_graph(load_flow(EXAMPLES / "order-report.flow.yaml"), CATALOGUE)
    check_layout(graph)
    boxes = {n["path"]: n for n in graph["nodes"]}
    assert {"tag/is-big", "tag/big", "tag/small", "tag/tagged", "summarise/summary"} <= set(boxes)
    assert boxes["tag"]["container"] and boxes["tag"]["children"] == 4
    assert boxes["read"]["name"] == "Read orders" and boxes["read"]["type"] == "spreadsheet"
    # layers run left to right: each node after the ones it reads from
    assert boxes["read"]["x"] < boxes["valid"]["x"] < boxes["priced"]["x"] < boxes["tag"]["x"]
    assert boxes["tag/is-big"]["x"] < boxes["tag/big"]["x"] < boxes["tag/tagged"]["x"]
    # the container's ports: the loop offers `item` inside, `orders` is its output
    assert [p["name"] for p in boxes["tag"]["inputs"]] == ["items", "item"]
    assert [p["name"] for p in boxes["tag"]["outputs"]] == ["orders"]
    assert graph["problems"] == []


def test_nested_containers_sit_inside_their_parents() -> None:
    graph = flow_graph(loads_flow(NESTED), CATALOGUE)
    check_layout(graph)
    boxes = {n["path"]: n for n in graph["nodes"]}
    deep = boxes["outer/each/inner/deep"]
    for parent in ("outer/each/inner", "outer/each", "outer"):
        assert _inside(deep, boxes[parent])
    # a box is as large as what it holds: each level wider than the one inside it
    assert boxes["outer"]["w"] > boxes["outer/each"]["w"] > boxes["outer/each/inner"]["w"]
    inner_edges = [e for e in graph["edges"] if e["parent"] == "outer/each/inner"]
    assert {(e["source"], e["target"]) for e in inner_edges} == {
        ("outer/each/inner", "outer/each/inner/deep"),
        ("outer/each/inner/deep", "outer/each/inner"),
    }


def test_a_collapsed_container_is_one_box() -> None:
    flow = loads_flow(NESTED)
    whole = {n["path"]: n for n in flow_graph(flow, CATALOGUE)["nodes"]}
    graph = flow_graph(flow, CATALOGUE, collapsed=["outer/each"])
    check_layout(graph)
    boxes = {n["path"]: n for n in graph["nodes"]}
    assert "outer/each/inner" not in boxes and "outer/each/inner/deep" not in boxes
    assert boxes["outer/each"]["collapsed"] and boxes["outer/each"]["children"] == 1
    assert boxes["outer/each"]["w"] < whole["outer/each"]["w"]
    assert boxes["outer"]["w"] < whole["outer"]["w"]
    assert not any(e["parent"] == "outer/each" for e in graph["edges"])


def test_a_long_edge_bends_around_the_layers_between() -> None:
    graph = flow_graph(loads_flow(LONG_EDGE), CATALOGUE)
    check_layout(graph)
    boxes = {n["path"]: n for n in graph["nodes"]}
    (edge,) = [e for e in graph["edges"] if e["source"] == "a" and e["target"] == "d"]
    assert len(edge["points"]) > 4  # through dummy points in the layers of b and c
    for x, y in edge["points"]:
        for node_id in ("b", "c"):
            box = boxes[node_id]
            inside = box["x"] < x < box["x"] + box["w"] and box["y"] < y < box["y"] + box["h"]
            assert not inside, (edge["points"], node_id)


def test_an_unknown_type_and_a_dangling_edge_are_reported_not_fatal() -> None:
    flow = Flow.from_data(
        {
            "id": "odd",
            "name": "Odd",
            "nodes": [
                {"id": "x", "type": "no.such-type"},
                {"id": "y", "type": "edit-fields"},
                {"id": "y", "type": "transform"},
            ],
            "edges": [
                {"source": "x", "sourceHandle": "made-up", "target": "y"},
                {"source": "y", "target": "ghost"},
            ],
        }
    )
    graph = flow_graph(flow, CATALOGUE)
    check_layout(graph)
    boxes = {n["path"]: n for n in graph["nodes"]}
    assert not boxes["x"]["known"]
    assert [p["name"] for p in boxes["x"]["outputs"]] == ["made-up"]
    assert len(graph["edges"]) == 1
    assert any("no.such-type" in p for p in graph["problems"])
    assert any("ghost" in p for p in graph["problems"])
    assert any("a second node of that id" in p for p in graph["problems"])
    assert boxes["y"]["type"] == "edit-fields"


def test_an_empty_flow() -> None:
    graph = flow_graph(Flow(id="empty", name="Empty"), CATALOGUE)
    assert graph["nodes"] == [] and graph["edges"] == []
    assert graph["width"] > 0 and graph["height"] > 0


def test_a_skeleton_from_a_run_record_nests_iterations_under_one_box() -> None:
    nodes = {
        "start": {"nodeId": "start", "nodeType": "edit-fields"},
        "tag": {"nodeId": "tag", "nodeType": "loop"},
        "tag/iteration 0/is-big": {"nodeId": "is-big", "nodeType": "if"},
        "tag/iteration 1/is-big": {"nodeId": "is-big", "nodeType": "if"},
        "tag/iteration 1/big": {"nodeId": "big", "nodeType": "edit-fields"},
    }
    flow = skeleton_flow("gone", nodes)
    graph = flow_graph(flow, CATALOGUE)
    check_layout(graph)
    assert sorted(n["path"] for n in graph["nodes"]) == ["start", "tag", "tag/big", "tag/is-big"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(CATALOGUE, ["edit-fields", "transform", "merge", "if", "group", "loop"], nested=2))
def test_any_valid_flow_lays_out_by_the_contract(flow: Flow) -> None:
    check_layout(flow_graph(flow, CATALOGUE))


# -- the routes ----------------------------------------------------------------------------------
def test_the_graph_of_a_stored_flow_and_of_its_runs(served: Any) -> None:
    url, auth = served.url, served.auth
    response = httpx.get(f"{url}/api/flows/demo/graph", headers=auth)
    assert response.status_code == 200, response.text
    graph = response.json()
    assert [n["path"] for n in graph["nodes"]] == ["greet", "shout"]
    check_layout(graph)

    ran = httpx.post(f"{url}/api/executions?wait=true", json={"flowId": "demo"}, headers=auth)
    assert ran.status_code == 200, ran.text
    run_id = ran.json()["executionId"]
    response = httpx.get(f"{url}/api/runs/{run_id}/graph", headers=auth)
    assert response.status_code == 200, response.text
    graph = response.json()
    assert graph["exact"] is True and graph["source"] == "run"  # the flow kept as it ran
    assert graph["executionId"] == run_id
    assert [n["path"] for n in graph["nodes"]] == ["greet", "shout"]

    missing = httpx.get(f"{url}/api/runs/no-such-run/graph", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "RUN_NOT_FOUND"
    missing = httpx.get(f"{url}/api/flows/no-such-flow/graph", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "FLOW_NOT_FOUND"
    assert httpx.get(f"{url}/api/flows/demo/graph").status_code == 401


def test_a_run_of_an_inline_flow_is_drawn_as_it_ran(served: Any) -> None:
    """The flow a run ran is kept with the runs by its digest: a flow given inline is drawn
    with its edges; without that file (a run recorded before), from the record's nodes."""
    url, auth = served.url, served.auth
    flow = loads_flow(NESTED.replace("id: nested", "id: never-stored")).to_data()
    ran = httpx.post(f"{url}/api/executions?wait=true", json={"flow": flow}, headers=auth)
    assert ran.status_code == 200, ran.text
    run_id = ran.json()["executionId"]
    graph = httpx.get(f"{url}/api/runs/{run_id}/graph", headers=auth).json()
    assert graph["exact"] is True and graph["source"] == "run" and graph["edges"]
    check_layout(graph)
    storage = served.conductor.storage
    digest = storage.record(run_id).data["flowHash"]
    storage.fs.rm(storage.run_flow_location(digest))
    graph = httpx.get(f"{url}/api/runs/{run_id}/graph", headers=auth).json()
    assert graph["exact"] is False and graph["source"] == "run record"
    assert "outer/each/inner/deep" in {n["path"] for n in graph["nodes"]}
    check_layout(graph)
    collapsed = httpx.get(
        f"{url}/api/runs/{run_id}/graph", params={"collapsed": "outer"}, headers=auth
    ).json()
    assert {n["path"] for n in collapsed["nodes"]} == {"start", "outer", "after"}


@pytest.mark.parametrize("name", ["order-report", "orders", "demo"])
def test_the_examples(name: str) -> None:
    check_layout(flow_graph(load_flow(EXAMPLES / f"{name}.flow.yaml"), CATALOGUE))
