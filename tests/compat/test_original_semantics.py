"""The original Atomiton's run-time semantics, where ours lacked them (docs: the
"semantics" part of the compatibility document).

Where each comes from, in the original (github.com/Develonaut/atomiton; the commit is that of
the stored version read):

- a child with no incoming data gets its parent's whole input: ``packages/@atomiton/
  conductor/src/execution/inputBuilder.ts`` (06a1c506) and ``executeGraph.ts`` (c01ba279:
  "Edge data completely replaces parent input"; "No edges: use parent input");
- templates see the input's fields by name, and ``$now``: ``packages/@atomiton/nodes/src/
  executables/edit-fields/index.ts`` (861bcd16: Handlebars over the input data, helper
  ``$now`` = ``new Date().toISOString()``; 2cf8a99b: squirrelly with ``useWith``, the input's
  fields plus ``$now``); the variables were never in that context;
- ``{{$input}}``: ``tests/fixtures/atomiton-flows/hello-world.flow.yaml`` (723faa4b), whose
  file-system node writes ``content: "{{$input}}"``;
- stamps on save: ``packages/@atomiton/storage/src/engines/FilesystemStorage.ts`` (15546195,
  5ebf4f82: ``metadata.updated`` = now on every save, ``metadata.created`` kept, else now;
  both ``toISOString()``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    Conductor,
    Flow,
    NodeSpec,
    create_conductor,
    create_storage,
    load_flow,
    loads_flow,
    signals,
)

ORIGINALS = Path(__file__).parents[1] / "fixtures" / "atomiton-flows"
#: JavaScript's ``toISOString()``: UTC, milliseconds, ``Z``.
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HAS_IO = importlib.util.find_spec("atomiton_nodes_io") is not None


def _run(conductor: Conductor, text: str, inputs: dict[str, Any] | None = None) -> Any:
    result = conductor.run(loads_flow(text), inputs)
    assert result.ok, result.error
    return result


def _near_now(stamp: str) -> bool:
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - when) < timedelta(minutes=5)


# -- 1. a container's children that no edge feeds get its inputs ----------------------------

GROUP = """
id: g
name: G
nodes:
  - {id: src, type: test.sleep, parameters: {value: {who: Ada}}}
  - id: grp
    type: group
    nodes:
      - {id: free, type: test.sleep}
      - {id: fed, type: test.sleep, parameters: {value: own}}
      - {id: after, type: test.sleep}
      - {id: adder, type: test.add}
    edges:
      - {source: fed, target: after}
edges:
  - {source: src, target: grp}
"""


def test_a_child_no_edge_feeds_gets_the_groups_input(conductor: Conductor) -> None:
    """inputBuilder.ts: no edge data, the parent's input; edge data replaces it. A child is
    given only the ports it takes (test.add has a and b, no input)."""
    result = _run(conductor, GROUP)
    nodes = result.nodes
    assert nodes["grp/free"].outputs["output"] == {"who": "Ada"}
    assert nodes["grp/after"].outputs["output"] == "own"  # its edge's data, not the group's
    assert nodes["grp/adder"].outputs["output"] == 0


def test_the_groups_inputs_go_down_by_port_and_through_nested_groups(
    conductor: Conductor,
) -> None:
    result = _run(
        conductor,
        """
id: g2
name: G2
nodes:
  - {id: two, type: test.sleep, parameters: {value: 2}}
  - {id: three, type: test.sleep, parameters: {value: 3}}
  - id: outer
    type: group
    nodes:
      - id: inner
        type: group
        nodes:
          - {id: add, type: test.add}
edges:
  - {source: two, target: outer, targetHandle: a}
  - {source: three, target: outer, targetHandle: b}
""",
    )
    assert result.nodes["outer/inner/add"].outputs["output"] == 5


def test_a_required_input_of_a_group_child_may_come_from_the_group(
    conductor: Conductor,
) -> None:
    """A transform's ``input`` is required; in a group, with no edge, the group gives it."""
    flow = loads_flow(
        "id: g3\nname: G3\nnodes:\n  - {id: xs, type: const, parameters: {value: [2, 1]}}\n"
        "  - id: grp\n    type: group\n    nodes:\n"
        "      - {id: sorted, type: transform, parameters: {operation: sort}}\n"
        "edges:\n  - {source: xs, target: grp, targetHandle: input}\n"
    )
    assert conductor.validate(flow).problems == []
    assert conductor.run(flow).nodes["grp/sorted"].outputs["output"] == [1, 2]
    loop = loads_flow(
        "id: l3\nname: L3\nnodes:\n  - id: each\n    type: loop\n"
        "    parameters: {array: [1]}\n    nodes:\n"
        "      - {id: sorted, type: transform, parameters: {operation: sort}}\n"
    )
    (problem,) = conductor.validate(loop).errors  # a loop gives its children nothing so
    assert problem.code == "MISSING_REQUIRED_INPUT" and problem.node_id == "sorted"


def test_a_top_level_node_and_a_loops_children_get_nothing_implicitly(
    conductor: Conductor,
) -> None:
    """A loop gives its children ``item`` and ``index`` by name (and by edges from its id);
    its own inputs are not handed to every child, or a nested loop would walk the outer
    list again."""
    result = _run(
        conductor,
        """
id: l
name: L
nodes:
  - {id: alone, type: test.sleep}
  - id: each
    type: loop
    parameters: {array: [1, 2]}
    nodes:
      - {id: body, type: test.sleep}
      - {id: named, type: edit-fields, parameters: {values: {seen: "{{ item }}"}, keepOnlySet: true}}
""",
    )
    assert result.nodes["alone"].outputs["output"] is None
    assert result.nodes["each/iteration 0/body"].outputs["output"] is None
    assert result.nodes["each/iteration 1/named"].outputs["output"] == {"seen": 2}


def test_what_a_child_is_given_by_its_group_is_part_of_its_cache_key(
    conductor: Conductor,
) -> None:
    flow = loads_flow(
        """
id: c
name: C
variables:
  n: {type: number, defaultValue: 1}
nodes:
  - {id: src, type: edit-fields, parameters: {values: {v: "{{ n }}"}, keepOnlySet: true}}
  - id: grp
    type: group
    nodes:
      - {id: kept, type: test.sleep, parameters: {cache: true}}
edges:
  - {source: src, target: grp}
"""
    )
    runs = [conductor.run(flow, {"n": n}) for n in (1, 2, 2)]
    assert [r.nodes["grp/kept"].outputs["output"] for r in runs] == [{"v": 1}, {"v": 2}, {"v": 2}]
    assert [str(r.nodes["grp/kept"].status) for r in runs] == ["completed", "completed", "cached"]


# -- 2. templates see the input's fields by name ----------------------------------------------

FIELDS = """
id: f
name: F
variables:
  who: {type: string, defaultValue: variable}
  greeting: {type: string, defaultValue: Hello}
nodes:
  - {id: src, type: test.sleep, parameters: {value: {who: field, n: 2, now: not the time}}}
  - id: greet
    type: edit-fields
    parameters:
      keepOnlySet: true
      values:
        text: "{{ greeting }} {{ who }} ({{ vars.who }}, {{ input.who }})"
        twice: "{{ n * 2 }}"
        now: "{{ $now }}"
edges:
  - {source: src, target: greet}
"""


def test_input_fields_are_names_and_win_over_variables(conductor: Conductor) -> None:
    """edit-fields/index.ts rendered over the input's fields alone: a field wins over a
    variable of the same name here; ``vars.x`` always reaches the variable, ``input.x`` the
    field; a field named ``now`` leaves ``$now`` the time (the original set ``$now`` after
    the fields)."""
    out = _run(conductor, FIELDS).outputs["greet"]["output"]
    assert out["text"] == "Hello field (variable, field)"
    assert out["twice"] == 4
    assert ISO.match(out["now"]) and _near_now(out["now"])


def test_validation_reports_unknown_names_only_where_no_input_can_hold_them(
    conductor: Conductor,
) -> None:
    flow = loads_flow(
        """
id: v
name: V
variables:
  who: {type: string, defaultValue: w}
nodes:
  - {id: top, type: edit-fields, parameters: {values: {a: "{{ field }}"}}}
  - {id: fed, type: edit-fields, parameters: {values: {a: "{{ field }} {{ whoo }}"}}}
  - {id: counted, type: transform, parameters: {operation: limit, count: "{{ field }}"}}
  - id: grp
    type: group
    nodes:
      - {id: child, type: edit-fields, parameters: {values: {a: "{{ field }}"}}}
  - id: each
    type: loop
    parameters: {array: [1]}
    nodes:
      - {id: body, type: edit-fields, parameters: {values: {a: "{{ field }}"}}}
edges:
  - {source: top, target: fed}
  - {source: top, target: counted}
  - {source: top, target: grp}
"""
    )
    found = {(p.node_id, p.severity, p.code) for p in conductor.validate(flow).problems}
    assert ("top", "error", "UNDEFINED_NAME") in found  # nothing reaches it: a variable
    assert ("body", "error", "UNDEFINED_NAME") in found  # a loop's child: item, index...
    assert ("fed", "warning", "UNDEFINED_NAME") in found  # 'whoo': close to 'who'
    assert not any(n == "fed" and s == "error" for n, s, _ in found)  # 'field': an input field
    assert not any(n == "child" for n, _, _ in found)  # given the group's input
    # a parameter that is not text renders as the run starts, over the variables alone
    assert ("counted", "error", "UNDEFINED_NAME") in found


# -- 3. $now and $input ---------------------------------------------------------------------


def test_now_renders_as_javascripts_to_iso_string(conductor: Conductor) -> None:
    """The hello-world flow's create-message node, as the file gives it."""
    original = load_flow(ORIGINALS / "hello-world.flow.yaml")
    (node,) = [n for n in original.nodes if n.id == "create-message"]
    assert node.parameters["values"]["timestamp"] == "{{$now}}"
    flow = Flow(
        id="now",
        name="Now",
        nodes=[NodeSpec(id="m", type="edit-fields", parameters=node.parameters)],
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    stamp = result.outputs["m"]["output"]["timestamp"]
    assert ISO.match(stamp), stamp
    assert _near_now(stamp)


def test_an_object_input_prints_as_json_and_alone_keeps_its_type(conductor: Conductor) -> None:
    out = _run(
        conductor,
        """
id: i
name: I
nodes:
  - {id: src, type: test.sleep, parameters: {value: {a: 1, ok: true, none: null, xs: [x]}}}
  - id: show
    type: edit-fields
    parameters:
      keepOnlySet: true
      values: {alone: "{{$input}}", inside: "got {{$input}}", xs: "{{ xs }}!"}
edges:
  - {source: src, target: show}
""",
    ).outputs["show"]["output"]
    assert out["alone"] == {"a": 1, "ok": True, "none": None, "xs": ["x"]}
    assert out["inside"] == 'got {"a": 1, "ok": true, "none": null, "xs": ["x"]}'
    assert json.loads(out["inside"][4:]) == out["alone"]
    assert out["xs"] == '["x"]!'


@pytest.mark.skipif(not HAS_IO, reason="atomiton-nodes-io is not installed")
def test_the_hello_world_file_system_node_writes_its_input() -> None:
    """``content: "{{$input}}"`` as hello-world.flow.yaml gives it: the input, as JSON."""
    import fsspec

    original = load_flow(ORIGINALS / "hello-world.flow.yaml")
    (write,) = [n for n in original.nodes if n.id == "write-to-file"]
    root = f"memory://semantics-{uuid.uuid4().hex}"
    parameters = {**write.parameters, "path": f"{root}/out.txt"}
    flow = Flow.from_data(
        {
            "id": "w",
            "name": "W",
            "nodes": [
                {
                    "id": "src",
                    "type": "edit-fields",
                    "parameters": {"values": {"message": "hi"}, "keepOnlySet": True},
                },
                {"id": "write", "type": "file-system", "parameters": parameters},
            ],
            "edges": [
                {
                    "source": "src",
                    "target": "write",
                    "sourceHandle": "output",
                    "targetHandle": "input",
                }
            ],
        }
    )
    with create_conductor(
        f"memory://c-{uuid.uuid4().hex}", record_runs=False, config={"allowedRoots": [root]}
    ) as c:
        result = c.run(flow)
    assert result.ok, result.error
    with fsspec.open(f"{root}/out.txt", "r") as fh:
        assert json.loads(fh.read()) == {"message": "hi"}


# -- 4. storage stamps created / updated; a round trip rewrites nothing ---------------------


def test_the_first_save_stamps_created_and_updated(tmp_path: Path) -> None:
    storage = create_storage(tmp_path)
    source = (ORIGINALS / "hello-world.flow.yaml").read_text()
    location = storage.save(load_flow(ORIGINALS / "hello-world.flow.yaml"))
    saved = Path(location).read_text()
    metadata = storage.load("550e8400-e29b-41d4-a716-446655440001").metadata or {}
    assert ISO.match(metadata["created"]) and metadata["updated"] == metadata["created"]
    assert _near_now(metadata["created"])
    # comments, order, quoting: the file is the original's with the two stamps added
    added = [line for line in saved.splitlines() if line not in source.splitlines()]
    assert [line.split(":")[0].strip() for line in added] == ["created", "updated"]
    assert saved.replace("".join(f"{line}\n" for line in added), "") == source


def test_a_save_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    storage = create_storage(tmp_path)
    location = storage.save(load_flow(ORIGINALS / "data-transform.flow.yaml"))
    before = Path(location).read_bytes()
    inode = os.stat(location).st_ino
    flow_id = storage.list()[0].id
    storage.save(storage.load(flow_id))
    flow = storage.load(flow_id)
    storage.save(flow)
    storage.save(flow)
    assert Path(location).read_bytes() == before
    assert os.stat(location).st_ino == inode  # never replaced (a save writes a new file)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_change_moves_updated_and_keeps_created(tmp_path: Path, where: str) -> None:
    storage = create_storage(tmp_path if where == "local" else f"memory://s-{uuid.uuid4().hex}")
    old = "2020-01-02T03:04:05.678Z"
    text = (
        "# a comment\nid: st\nname: First\nmetadata:\n  author: me  # kept\n"
        f"  created: '{old}'\n  updated: '{old}'\nnodes: []\n"
    )
    storage.fs.makedirs(storage.flow_location("st").rsplit("/", 1)[0], exist_ok=True)
    storage.fs.pipe(storage.flow_location("st"), text.encode())  # a file stamped in 2020
    flow = storage.load("st")
    storage.save(flow)  # a round trip: nothing changes, the stamps neither
    assert flow.metadata == {"author": "me", "created": old, "updated": old}
    assert storage.fs.cat(storage.flow_location("st")) == text.encode()
    flow.name = "Second"
    storage.save(flow)
    again = storage.load("st")
    assert again.metadata is not None and again.metadata["created"] == old
    assert again.metadata["updated"] != old and _near_now(again.metadata["updated"])
    assert flow.metadata == again.metadata  # the flow given is stamped too
    # a flow built anew under the same id keeps the stored file's created
    storage.save(Flow(id="st", name="Third"))
    third = storage.load("st").metadata or {}
    assert third["created"] == old and list(third) == ["created", "updated"]


def test_a_failing_receiver_of_flow_saved_does_not_fail_the_save(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = create_storage(tmp_path)
    heard: list[str] = []

    def broken(sender: Any, event: Any) -> None:
        raise RuntimeError("receiver broke")

    with (
        caplog.at_level(logging.ERROR, logger="atomiton.signals"),
        signals.flow_saved.connected_to(broken, sender=storage),
        signals.flow_saved.connected_to(
            lambda s, event: heard.append(event.flow_id), sender=storage
        ),
    ):
        storage.save(Flow(id="saved", name="Saved"))
    assert heard == ["saved"] and storage.exists("saved")
    assert any("receiver broke" in str(r.exc_info) for r in caplog.records)


# -- 5. a receiver that raises never fails the run -------------------------------------------


def test_a_raising_receiver_is_logged_once_per_run_and_the_others_still_hear(
    conductor: Conductor, caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"broken": 0}
    heard: list[tuple[str, str]] = []

    def broken(sender: Any, event: Any) -> None:
        calls["broken"] += 1
        raise ValueError("observer bug")

    async def wrongly_async(sender: Any, event: Any) -> None:  # blinker refuses these too
        pass

    flow = loads_flow(GROUP)
    with (
        caplog.at_level(logging.ERROR, logger="atomiton.signals"),
        signals.node_started.connected_to(broken, sender=conductor),
        signals.node_completed.connected_to(broken, sender=conductor),
        signals.node_completed.connected_to(wrongly_async, sender=conductor),
        signals.node_completed.connected_to(lambda s, event: heard.append((s, event.path))),
    ):
        results = [conductor.run(flow) for _ in range(2)]
    assert all(r.ok for r in results), [r.error for r in results]
    assert len(heard) == 2 * len(results[0].nodes)  # every event, both runs
    firsts = [r for r in caplog.records if "observer bug" in r.getMessage()]
    assert len(firsts) == 2  # once per run
    assert {
        results[0].execution_id in firsts[0].getMessage(),
        results[1].execution_id in firsts[1].getMessage(),
    } == {True}
    assert all(r.exc_info is not None for r in firsts)
    counted = [
        r.getMessage()
        for r in caplog.records
        if "raised" in r.getMessage() and "times" in r.getMessage()
    ]
    assert any(f"raised {calls['broken'] // 2} times" in m for m in counted)
    assert any("coroutine function" in r.getMessage() for r in caplog.records)


def test_a_receiver_of_a_finishing_event_that_raises_leaves_the_result(
    conductor: Conductor,
) -> None:
    def broken(sender: Any, event: Any) -> None:
        raise RuntimeError("late observer bug")

    with signals.execution_completed.connected_to(broken, sender=conductor):
        result = asyncio.run(conductor.execute(loads_flow(GROUP)))
    assert result.ok
