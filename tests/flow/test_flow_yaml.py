"""Lossless YAML: the original flows, comments, key order, edits, and a hypothesis round trip."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from atomiton_core import (
    Conductor,
    Edge,
    Flow,
    FlowLoadError,
    NodeSpec,
    dumps_flow,
    load_flow,
    loads_flow,
    save_flow,
)
from atomiton_core.flow import fastyaml
from atomiton_core.flow.yaml_io import to_plain

ROOT = Path(__file__).parents[2]
ORIGINALS = sorted((Path(__file__).parents[1] / "fixtures" / "atomiton-flows").glob("*.flow.yaml"))


def _key_paths(value: Any, prefix: str = "") -> list[str]:
    """Every key path in document order: equal lists mean equal keys in equal order."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(f"{prefix}/{k}")
            out.extend(_key_paths(v, f"{prefix}/{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_key_paths(v, f"{prefix}[{i}]"))
    return out


def test_originals_are_present() -> None:
    assert len(ORIGINALS) == 3


@pytest.mark.parametrize("path", ORIGINALS, ids=lambda p: p.name)
def test_original_flows_round_trip(path: Path, tmp_path: Path) -> None:
    flow = load_flow(path)
    text = dumps_flow(flow)
    again = loads_flow(text)
    assert again == flow
    original = YAML(typ="safe").load(path.read_text())
    reloaded = YAML(typ="safe").load(text)
    assert reloaded == original  # every key, UI data included
    assert _key_paths(reloaded) == _key_paths(original)  # and in the same order
    out = tmp_path / path.name
    save_flow(flow, out)
    assert YAML(typ="safe").load(out.read_text()) == original


COMMENTED = """\
# A flow with comments everywhere
id: commented   # the id
name: Commented flow
# variables come next
variables:
  who: {type: string, defaultValue: world}   # flow style kept
nodes:
  # the first node
  - id: greet
    type: edit-fields
    position: {x: 10, y: 20}
    parameters:
      values:
        message: 'Hello {{ who }}'   # single quotes kept
      keepOnlySet: true
  - id: shout
    type: transform
    parameters:
      operation: map
      expression: item.message | upper
edges:
  - id: e1
    source: greet
    target: shout
    style: {stroke: red}   # editor styling survives
"""


def test_comments_order_and_unknown_keys_survive_edits() -> None:
    flow = loads_flow(COMMENTED)
    assert flow.nodes[0].model_extra == {"position": {"x": 10, "y": 20}}
    assert flow.edges[0].model_extra == {"style": {"stroke": "red"}}
    flow.name = "Renamed flow"
    flow.nodes[1].parameters["operation"] = "filter"
    flow.nodes.append(NodeSpec(id="extra", type="transform", parameters={"operation": "reverse"}))
    flow.edges.append(Edge(id="e2", source="shout", target="extra"))
    text = dumps_flow(flow)
    for comment in (
        "# A flow with comments everywhere",
        "# the id",
        "# variables come next",
        "# flow style kept",
        "# the first node",
        "# single quotes kept",
        "# editor styling survives",
    ):
        assert comment in text
    assert "'Hello {{ who }}'" in text
    assert "name: Renamed flow" in text
    again = loads_flow(text)
    assert again == flow
    assert [n.id for n in again.nodes] == ["greet", "shout", "extra"]
    assert again.nodes[1].parameters["operation"] == "filter"
    assert list(YAML(typ="safe").load(text)) == ["id", "name", "variables", "nodes", "edges"]


def test_removed_keys_disappear_and_reordered_nodes_keep_their_comments() -> None:
    flow = loads_flow(COMMENTED)
    del flow.nodes[0].parameters["keepOnlySet"]
    flow.nodes.reverse()
    text = dumps_flow(flow)
    assert "keepOnlySet" not in text
    assert loads_flow(text) == flow
    assert "# single quotes kept" in text


def test_bad_yaml_names_file_and_line() -> None:
    with pytest.raises(FlowLoadError) as info:
        loads_flow("id: x\nname: [unclosed\nnodes: []\n", source="broken.flow.yaml")
    assert "broken.flow.yaml:" in str(info.value)
    assert info.value.code == "FLOW_LOAD_FAILED"


def test_structural_errors_name_every_key_path() -> None:
    with pytest.raises(FlowLoadError) as info:
        loads_flow("id: x\nnodes:\n  - {id: a}\n  - {type: b}\n", source="f.yaml")
    message = str(info.value)
    assert "f.yaml" in message
    assert "name" in message
    assert "nodes[0].type" in message
    assert "nodes[1].id" in message


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="no such flow file"):
        load_flow(tmp_path / "nope.flow.yaml")


def test_not_a_mapping() -> None:
    with pytest.raises(FlowLoadError, match=r"a flow is a mapping of keys .*, not a list"):
        loads_flow("- 1\n- 2\n")
    with pytest.raises(FlowLoadError, match="the flow is empty") as empty:
        loads_flow("# nothing yet\n", source="new.flow.yaml")
    assert "NoneType" not in str(empty.value) and "new.flow.yaml" in str(empty.value)


def test_load_problems_name_the_line_and_no_internals() -> None:
    with pytest.raises(FlowLoadError) as exc:
        loads_flow(
            "nodes:\n  - {type: x}\n  - id: b\n    type: c\n    parameters: [1]\n",
            source="f.flow.yaml",
        )
    text = str(exc.value)
    assert "  - id: required, and missing" in text and "(got {" not in text
    assert "nodes[0].id (line 2): required, and missing" in text
    assert "nodes[1].parameters (line 5): Input should be a valid dictionary" in text


def test_an_empty_section_or_item_is_named_as_empty() -> None:
    """``edges:`` with nothing after it, or a lone ``-``: said so, not "got None"."""
    with pytest.raises(FlowLoadError) as exc:
        loads_flow("id: f\nname:\nnodes:\n  -\nedges:\n")
    text = str(exc.value)
    assert "None" not in text
    assert "name (line 2): is empty; give a text" in text
    assert "nodes[0] (line 4): is empty; give a mapping of keys, or remove the empty item" in text
    assert "edges (line 5): is empty; give a list (`[]` for none)" in text


def test_validation_problems_name_the_line_of_the_file(conductor: Conductor) -> None:
    text = (ROOT / "examples" / "order-report.flow.yaml").read_text()
    broken = text.replace("operation: map", "operation: mapp", 1)
    report = conductor.validate(loads_flow(broken, source="order.flow.yaml"))
    (problem,) = [p for p in report.errors if p.code == "INVALID_PARAMETER"]
    line = broken.splitlines()[problem.line - 1]  # type: ignore[operator]
    assert "operation: mapp" in line and f"line {problem.line}, node 'priced'" in str(problem)


def test_a_flow_edited_in_python_keeps_the_lines_of_the_nodes_from_its_file(
    conductor: Conductor,
) -> None:
    """Problems are matched to the file by node id and edge ends, not by position: a node
    removed or added in Python moves no other node's line, and a new node has none."""
    text = (ROOT / "examples" / "order-report.flow.yaml").read_text()
    broken = text.replace("operation: map", "operation: mapp", 1)
    broken = broken.replace("mode: first", "mode: firstt", 1)  # a child of the group 'tag'
    lines = broken.splitlines()
    edited = loads_flow(broken, source="order.flow.yaml")
    first = edited.nodes.pop(0)  # every later node moves up one place in the list
    edited.nodes.append(first)
    edited.nodes.insert(0, NodeSpec(id="added", type="transform", parameters={"operation": "x"}))
    report = conductor.validate(edited)
    by_node = {p.node_id: p for p in report.errors if p.code == "INVALID_PARAMETER"}
    priced = by_node["priced"]
    assert priced.line is not None and "operation: mapp" in lines[priced.line - 1]
    tagged = by_node["tagged"]
    assert tagged.line is not None and "mode: firstt" in lines[tagged.line - 1]
    assert by_node["added"].line is None  # not in the file: no line rather than a wrong one
    assert "line" not in str(by_node["added"]).split(":")[0]


def test_snake_case_in_python_camel_case_in_files() -> None:
    flow = loads_flow(COMMENTED)
    assert flow.variables["who"].default_value == "world"
    assert flow.edges[0].source_handle == "output"
    assert "defaultValue" in dumps_flow(flow)


# -- hypothesis: load(save(x)) == x -------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"),
    max_size=12,
) | st.sampled_from(
    [
        "yes",
        "no",
        "null",
        "~",
        "1.0",
        "0x1F",
        "true",
        "",
        " lead",
        "a: b",
        "#x",
        "{{ x }}",
        "- y",
        "multi\nline\n",
    ]
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_ids = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=8)


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    ids = draw(st.lists(_ids, min_size=0, max_size=5, unique=True))
    nodes = [
        {
            "id": node_id,
            "type": draw(st.sampled_from(["edit-fields", "transform", "acme.thing"])),
            "parameters": draw(st.dictionaries(_text, _json, max_size=3)),
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "position": st.fixed_dictionaries({"x": st.integers(), "y": st.integers()}),
                        "name": _text,
                        "uiColour": _json,
                    },
                )
            ),
        }
        for node_id in ids
    ]
    edges = []
    if len(ids) >= 2:
        for j in range(draw(st.integers(0, 4))):
            a, b = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
            edges.append(
                {
                    "id": f"e{j}",
                    "source": a,
                    "target": b,
                    "sourceHandle": draw(_ids),
                    "targetHandle": draw(_ids),
                }
            )
    data: dict[str, Any] = {"id": draw(_ids), "name": draw(_text), "nodes": nodes, "edges": edges}
    data.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "description": _text,
                    "version": st.sampled_from(["1.0.0", "2"]),
                    "metadata": st.dictionaries(_text, _json, max_size=3),
                    "variables": st.dictionaries(
                        _ids,
                        st.fixed_dictionaries(
                            {"type": st.sampled_from(["string", "number"]), "defaultValue": _json}
                        ),
                        max_size=2,
                    ),
                    "settings": st.fixed_dictionaries(
                        {
                            "runtime": st.fixed_dictionaries(
                                {},
                                optional={
                                    "timeout": st.integers(1, 10**6),
                                    "parallel": st.booleans(),
                                    "concurrency": st.integers(1, 64),
                                },
                            )
                        }
                    ),
                    "editorState": _json,
                },
            )
        )
    )
    return Flow.model_validate(data)


def _ruamel_data(text: str) -> Any:
    return to_plain(YAML(typ="rt").load(text))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows())
def test_fast_reader_reads_what_ruamel_reads(flow: Flow) -> None:
    """Loading uses libyaml with YAML 1.2 rules; saving uses ruamel: they must agree."""
    text = dumps_flow(flow)
    assert to_plain(fastyaml.load(text)) == _ruamel_data(text)


@pytest.mark.parametrize(
    "scalar",
    [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "true",
        "TRUE",
        "null",
        "~",
        "",
        "017",
        "0o17",
        "0x1F",
        "0b101",
        "1_000",
        "+5",
        "1.",
        "-.5",
        ".5e-3",
        "1e5",
        ".inf",
        "-.inf",
        "1:20",
        "2025-01-15",
        "08",
        "3.",
        "'quoted'",
        '"esc\\n"',
        "[1, yes]",
        "{a: on}",
    ],
)
def test_fast_reader_resolves_scalars_like_ruamel(scalar: str) -> None:
    text = f"v: {scalar}\n"
    expected = _ruamel_data(text)
    try:
        fast = to_plain(fastyaml.load(text))
    except fastyaml.Unsupported:  # left to ruamel: loading still gives ruamel's reading
        fast = None
    else:
        assert fast == expected and type(fast["v"]) is type(expected["v"])
    flow = loads_flow(f"id: a\nname: b\nmetadata:\n  v: {scalar}\n")
    assert flow.metadata == expected


def test_fast_reader_refusals_fall_back_to_ruamel() -> None:
    with pytest.raises(FlowLoadError, match="duplicate"):
        loads_flow("id: a\nname: A\nid: b\n", source="dup.flow.yaml")
    flow = loads_flow("id: a\nname: &n A\ndescription: *n\n")  # anchors work either way
    assert flow.description == "A"


def test_large_flow_loads_fast() -> None:
    import time

    lines = ["# big", "id: big", "name: Big", "nodes:"]
    lines += [
        f"  - {{id: n{i}, type: transform, parameters: {{operation: reverse}}, position: {{x: {i}, y: 0}}}}"
        for i in range(10_000)
    ]
    lines += ["edges:"]
    lines += [f"  - {{id: e{i}, source: n{i}, target: n{i + 1}}}" for i in range(9_999)]
    text = "\n".join(lines) + "\n"
    t0 = time.perf_counter()
    flow = loads_flow(text)
    elapsed = time.perf_counter() - t0
    assert len(flow.nodes) == 10_000 and flow.nodes[-1].model_extra == {
        "position": {"x": 9999, "y": 0}
    }
    assert elapsed < 4, f"loading a 10,000-node flow took {elapsed:.1f} s"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows())
def test_round_trip_property(flow: Flow) -> None:
    text = dumps_flow(flow)
    again = loads_flow(text)
    assert again == flow
    assert loads_flow(dumps_flow(again)) == flow  # and a loaded flow saves back the same
