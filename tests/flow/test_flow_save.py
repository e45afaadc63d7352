"""Saving fast and losslessly: the C emitter and the splicer held to ruamel's round trip.

``fastdump.dumps`` writes a flow built in Python; ``fastdump.splice`` edits the text a flow
was loaded from. Both are checked against ruamel's round-trip save (what saving used before):
whatever either writes must read back as the data it was given, by every reader a flow file
meets - ruamel (round-trip and safe, YAML 1.2, and safe under ``%YAML 1.1``), our loader and
PyYAML (YAML 1.1, C and pure) - and as ruamel's own output reads back.
"""

from __future__ import annotations

import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from atomiton_core import Edge, Flow, FlowLoadError, NodeSpec, dumps_flow, loads_flow, save_flow
from atomiton_core.flow import fastdump
from atomiton_core.flow.yaml_io import _merge, _yaml, read_plain, to_plain

pytestmark = pytest.mark.skipif(not fastdump.available(), reason="PyYAML without libyaml")

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

#: Strings some YAML reader takes for something else, or that need quoting or escaping.
AWKWARD = [
    *("yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "true", "False", "TRUE"),
    *("~", "null", "Null", "", " ", "\t", "<<", "=", "?", ":", "-", ",", "|", ">"),
    *("1e3", "1E3", "0o17", "017", "08", "0x1F", "0b101", "1_000", "+5", "-.5", ".5e-3"),
    *(".inf", "-.inf", "+.INF", ".nan", ".NaN", "1.0", "1.", "3", "-0", "1:20", "190:20:30"),
    *("0o12", "0x_1", "0b", "1__0", "1.5e+3", "6.8523015e+5", "685.230_15e+03", "-1_0.5"),
    *("2024-01-01", "2025-01-15 10:20:30", "2001-12-14t21:59:43.10-05:00", "2002-1-1"),
    *(" lead", "trail ", "a: b", "a:b", "#x", "x #y", "- y", "? q", "@a", "`b", "%c"),
    *("!t", "&a", "*b", "'q'", '"d"', "{{ x }}", "[a]", "{a: 1}", "a, b"),
    *("multi\nline\n", "a\n\nb", "\nlead", "end\n\n", "no end\nx", " \n", "a \nb"),
    *("é", "日本", "\U0001f600", "\u2028", "a\u2029b", "\x85", "a\rb", "\ufeff", "\x7f"),
    *("k" * 130, "long key " * 20),
]
text = st.sampled_from(AWKWARD) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e300, 5e-324])
    | st.integers(-(10**30), 10**30)
    | text
)
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(text, plain, min_size=1, max_size=5)


def ruamel_text(data: Any) -> str:
    """Data as ruamel's round-trip save wrote it."""
    buf = io.StringIO()
    _yaml().dump(_merge(CommentedMap(), copy.deepcopy(data)), buf)
    return buf.getvalue()


def by_ruamel(text: str) -> Any:
    return to_plain(YAML(typ="rt").load(text))


def by_pyyaml(text: str) -> Any:
    return to_plain(yaml.load(text, Loader=yaml.CSafeLoader))


#: Every reader a saved flow file may meet, and the YAML version it reads.
READERS = {
    "ruamel round-trip (1.2)": by_ruamel,
    "ruamel safe (1.2)": lambda text: to_plain(YAML(typ="safe").load(text)),
    "ruamel safe, pure (1.2)": lambda text: to_plain(YAML(typ="safe", pure=True).load(text)),
    "ruamel safe, %YAML 1.1": lambda text: to_plain(
        YAML(typ="safe", pure=True).load("%YAML 1.1\n---\n" + text)
    ),
    "atomiton (1.2)": read_plain,
    "PyYAML CSafeLoader (1.1)": by_pyyaml,
    "PyYAML SafeLoader (1.1)": lambda text: to_plain(yaml.load(text, Loader=yaml.SafeLoader)),
}


def assert_every_reader_reads(text: str, data: Any) -> None:
    for reader, read in READERS.items():
        reading = read(text)
        assert fastdump.same(reading, data), (reader, reading)


def ruamel_saved(source: str, new: Any) -> Any:
    """What ruamel's round-trip save of ``new`` over ``source`` reads back as, when that is
    ``new``; else None (its emitter garbles some comments: a comment after an empty list
    item, say, can end up inside the next item)."""
    buf = io.StringIO()
    try:
        _yaml().dump(_merge(YAML(typ="rt").load(source), copy.deepcopy(new)), buf)
        reading = by_ruamel(buf.getvalue())
    except Exception:
        return None
    return reading if fastdump.same(reading, new) else None


def ruamel_reads_back(data: Any) -> bool:
    """ruamel's own output of ``data`` reads back as ``data``: it does not for a NEL
    (U+0085), which it writes raw in single quotes (a key "\x85" even reads as " ")."""
    try:
        return fastdump.same(read_plain(ruamel_text(data)), data)
    except FlowLoadError:
        return False


def key_order_kept(old: Any, new: Any, where: str = "") -> None:
    """Keys ``new`` shares with ``old`` come in ``old``'s order, all the way down (list items
    with ids paired by id)."""
    if isinstance(old, dict) and isinstance(new, dict):
        kept = [k for k in old if k in new]
        assert [k for k in new if k in old] == kept, where
        for k in kept:
            key_order_kept(old[k], new[k], f"{where}.{k}")
    elif isinstance(old, list) and isinstance(new, list) and _ids_of(old) and _ids_of(new):
        by_id = {x["id"]: x for x in old}
        for x in new:
            if x["id"] in by_id:
                key_order_kept(by_id[x["id"]], x, f"{where}[{x['id']}]")


def _ids_of(items: list[Any]) -> bool:
    """Every item a mapping with an id of its own (items the savers pair by id)."""
    ids = [x["id"] for x in items if isinstance(x, dict) and isinstance(x.get("id"), str)]
    return len(ids) == len(items) and len(set(ids)) == len(ids)


# -- a flow made in Python: the C emitter ---------------------------------------------------


@SETTINGS
@given(documents)
def test_emitter_reads_back_like_ruamel(data: dict[str, Any]) -> None:
    """The differential test: what the C emitter writes, every reader (YAML 1.1 and 1.2)
    reads as the data, of the same types; and as ruamel's own save of it reads."""
    fast = fastdump.dumps(data)
    note(fast)
    assert_every_reader_reads(fast, data)
    if ruamel_reads_back(data):
        old = ruamel_text(data)
        assert fastdump.same(by_ruamel(old), by_ruamel(fast))
        assert fastdump.same(read_plain(old), read_plain(fast))


@pytest.mark.parametrize("value", [s for s in AWKWARD if s])
def test_awkward_strings_stay_strings(value: str) -> None:
    data = {value: value, "list": [value], "nested": {"k": value}, "flow": [[value], {}]}
    assert_every_reader_reads(fastdump.dumps(data), data)


def test_strings_that_read_as_other_types_are_quoted() -> None:
    fast = fastdump.dumps({"v": ["yes", "on", "0o12", "1e3", "~", "null", ".inf", "2024-01-01"]})
    assert fast == (
        "v:\n- 'yes'\n- 'on'\n- '0o12'\n- '1e3'\n- '~'\n- 'null'\n- '.inf'\n- '2024-01-01'\n"
    )


def test_values_keep_their_types_and_key_order() -> None:
    data = {
        "z": 1,
        "a": 1.0,
        "m": True,
        "b": None,
        "big": 10**30,
        "neg": -0.0,
        "e": 1e-7,
        "inf": float("-inf"),
        "s": "1",
        "empty": {},
        "none": [],
        "nan": float("nan"),
    }
    fast = fastdump.dumps(data)
    assert list(by_ruamel(fast)) == list(data)
    assert_every_reader_reads(fast, data)


def test_multi_line_strings_are_literal_blocks() -> None:
    fast = fastdump.dumps({"code": "def f():\n    return 1\n"})
    assert fast == "code: |\n  def f():\n      return 1\n"


def test_a_built_flow_is_saved_by_the_c_emitter() -> None:
    flow = Flow(
        id="built",
        name="yes",
        nodes=[NodeSpec(id="a", type="t", parameters={"on": "off", "n": "1e3"})],
        edges=[Edge(source="a", target="a")],
    )
    text = dumps_flow(flow)
    assert flow._document is None  # ruamel took no part
    assert "name: 'yes'" in text
    assert loads_flow(text) == flow


def test_values_the_c_emitter_leaves_to_ruamel() -> None:
    import datetime

    for odd in (datetime.date(2025, 1, 15), b"raw", {1, 2}):
        with pytest.raises(fastdump.Unsupported):
            fastdump.dumps({"v": odd})
    flow = Flow(id="d", name="d", metadata={"when": datetime.date(2025, 1, 15)})
    text = dumps_flow(flow)
    assert flow._document is not None  # written by ruamel, as before
    assert loads_flow(text).metadata == {"when": datetime.date(2025, 1, 15)}


# -- a loaded flow: the splicer --------------------------------------------------------------


@st.composite
def edited(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some entries kept, some changed, removed, added, a list reordered."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            op = draw(st.sampled_from(["keep", "keep", "drop", "edit", "replace"]))
            if op == "keep":
                out[k] = v
            elif op == "edit":
                out[k] = draw(edited(v))
            elif op == "replace":
                out[k] = draw(plain)
        for k, v in draw(st.dictionaries(text, plain, max_size=2)).items():
            out.setdefault(k, v)
        return out
    if isinstance(value, list):
        items = []
        for v in value:
            op = draw(st.sampled_from(["keep", "keep", "drop", "edit", "replace"]))
            if op == "keep":
                items.append(v)
            elif op == "edit":
                items.append(draw(edited(v)))
            elif op == "replace":
                items.append(draw(plain))
        items += draw(st.lists(plain, max_size=2))
        return draw(st.permutations(items)) if draw(st.booleans()) else items
    return draw(plain) if draw(st.booleans()) else value


@st.composite
def with_ids(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.sampled_from("abcdef"), unique=True, max_size=6))
    return {"nodes": [{"id": i, "v": draw(plain)} for i in ids], "x": draw(plain)}


def commented(text: str, draw: st.DrawFn) -> str:
    """Comment lines and end-of-line comments added to ruamel's block output (where every
    scalar is on one line, so any line may take them)."""
    lines = []
    for line in text.split("\n"):
        if draw(st.integers(0, 3)) == 0:
            lines.append(" " * draw(st.integers(0, 6)) + "# a comment")
        if line and draw(st.integers(0, 3)) == 0:
            line += "  # about this"
        lines.append(line)
    return "\n".join(lines)


@st.composite
def splices(draw: st.DrawFn) -> tuple[str, Any, str]:
    old = draw(documents | with_ids())
    style = draw(st.sampled_from(["fast", "ruamel", "commented", "flow", "json", "crlf", "doc"]))
    if style == "fast":
        source = fastdump.dumps(old)
    elif style == "ruamel":
        source = ruamel_text(old)
    elif style == "commented":
        source = commented(ruamel_text(old), draw)
    elif style == "crlf":
        source = commented(ruamel_text(old), draw).replace("\n", "\r\n")
    elif style == "flow":
        width = draw(st.sampled_from([20, 4096]))
        source = yaml.dump(old, Dumper=yaml.CSafeDumper, default_flow_style=True, width=width)
    elif style == "json":
        source = json.dumps(old, indent=draw(st.sampled_from([None, 2])))
    else:
        body = fastdump.dumps(old).removesuffix("...\n")
        source = "\ufeff%YAML 1.2\n---\n" + body + "...\n# the end\n"
    return source, old, draw(edited(old))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(splices())
def test_splice_reads_back_like_ruamel(case: tuple[str, Any, str]) -> None:
    """The spliced text reads back (ruamel, ours) as the new data, as ruamel's round-trip
    save of the same edit does; an unchanged document comes back as it was."""
    source, old, new = case
    note(repr(source))
    note(repr(new))
    try:
        faithful = fastdump.same(read_plain(source), old)
    except FlowLoadError:
        faithful = False
    if not faithful:
        event("the source style lost something")  # a NEL through ruamel, 0o17 through PyYAML
        return
    try:
        out = fastdump.splice(source, new)
    except fastdump.Unsupported as exc:
        event(f"left to ruamel: {str(exc)[:40]}")
        return
    event("spliced")
    note(out)
    readings = {"ruamel": by_ruamel(out), "ours": read_plain(out)}
    for reader, reading in readings.items():
        assert fastdump.same(reading, new), reader
    key_order_kept(read_plain(source), readings["ours"])
    reference = ruamel_saved(source, new)
    if reference is not None:
        assert fastdump.same(readings["ruamel"], reference)
    if fastdump.same(old, new):
        assert out.removeprefix("\ufeff").rstrip("\n") == source.removeprefix("\ufeff").rstrip("\n")


_ids = st.text(alphabet="abcdefgh0123456789-_", min_size=1, max_size=6)
_BREAK_CHARS = frozenset("\n\r\x85\u2028\u2029")


@st.composite
def commented_flows(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A flow file as people keep one: keys in their own order, keys Atomiton does not know
    (an editor's layout, UI hints), a comment on or above every node, edge and top-level key.
    Returns the text, its data, and each comment's owner ("flow", or the node or edge id)."""
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        rest: dict[str, Any] = {
            "type": "transform",
            "parameters": draw(st.dictionaries(text, plain, max_size=3)),
        }
        if draw(st.booleans()):
            rest["position"] = {"x": draw(st.integers(-500, 500)), "y": 2}
        if draw(st.booleans()):
            rest["x-ui"] = draw(plain)
        nodes.append({"id": f"n{i}", **{k: rest[k] for k in draw(st.permutations(list(rest)))}})
    edges = [
        {
            "id": f"e{j}",
            "source": "n0",
            "target": node["id"],
            **({"style": {"dashed": True}} if draw(st.booleans()) else {}),
        }
        for j, node in enumerate(nodes)
    ]
    top = {
        "id": draw(_ids),
        "name": draw(text),
        "nodes": nodes,
        "edges": edges,
        "x-editor": {"zoom": draw(st.floats(0.1, 4)), "theme": draw(text)},
    }
    data = {k: top[k] for k in draw(st.permutations(list(top)))}
    owners = {"# header": "flow"}
    lines = ["# header"]
    node = None
    for line in ruamel_text(data).split("\n"):
        key = line.split(":", 1)[0]
        if line.startswith("  - id: n"):
            node = line.removeprefix("  - id: ")
            lines.append(f"  # above {node}")
            owners[f"# above {node}"] = owners[f"# node {node}"] = node
            line += f"  # node {node}"
        elif line.startswith("  - id: e"):
            edge = line.removeprefix("  - id: ")
            owners[f"# edge {edge}"] = edge
            line += f"  # edge {edge}"
        elif line.startswith("    parameters:") and node is not None:
            owners[f"# params {node}"] = node
            line += f"  # params {node}"
        elif key in top and (key != "name" or not _BREAK_CHARS & set(top["name"])):
            owners[f"# top {key}"] = "flow"  # a multi-line name may span lines: not that one
            line += f"  # top {key}"
            node = None
        lines.append(line)
    return "\n".join(lines), data, owners


_EDITS = st.sampled_from(
    [
        *("rename", "describe", "param-set", "param-add", "param-drop", "params-clear"),
        *("drop-node", "add-node", "move-node", "reverse", "edge-handle", "drop-edge"),
        *("add-edge", "ui-edit", "ui-drop", "editor-edit"),
    ]
)


def apply(flow: Flow, op: str, k: int, value: Any) -> str | None:
    """One edit through the Flow API (``k`` picks the node or edge); the id of a node whose
    unknown keys it changed, if any."""
    node = flow.nodes[k % len(flow.nodes)] if flow.nodes else None
    first = next(iter(node.parameters), None) if node else None
    if op == "rename":
        flow.name = str(value)
    elif op == "describe":
        flow.description = str(value)
    elif op == "param-set" and node and first is not None:
        node.parameters = {**node.parameters, first: value}  # assigned: to_data sees it
    elif op == "param-add" and node:
        key = str(value)
        while key in node.parameters:
            key += "+"
        node.parameters = {**node.parameters, key: [value, 1.5]}
    elif op == "param-drop" and node and first is not None:
        node.parameters = {p: v for p, v in node.parameters.items() if p != first}
    elif op == "params-clear" and node:
        node.parameters = {}
    elif op == "drop-node" and node:
        flow.nodes.remove(node)
        flow.edges = [e for e in flow.edges if node.id not in (e.source, e.target)]
    elif op == "add-node":
        flow.nodes.append(NodeSpec(id=f"new{len(flow.nodes)}", type="t", position={"x": value}))
    elif op == "move-node" and node:
        flow.nodes.remove(node)
        flow.nodes.insert(0, node)
    elif op == "reverse":
        flow.nodes.reverse()
    elif op == "edge-handle" and flow.edges:
        flow.edges[k % len(flow.edges)].target_handle = str(value) or "x"
    elif op == "drop-edge" and flow.edges:
        del flow.edges[k % len(flow.edges)]
    elif op == "add-edge" and node:
        flow.edges.append(Edge(id=f"new-e{len(flow.edges)}", source=node.id, target=node.id))
    elif op == "ui-edit" and node:
        assert node.model_extra is not None
        node.model_extra["position"] = {"x": value, "y": 0}
        return node.id
    elif op == "ui-drop" and node:
        assert node.model_extra is not None
        node.model_extra.pop("position", None)
        node.model_extra.pop("x-ui", None)
        return node.id
    elif op == "editor-edit":
        assert flow.model_extra is not None
        flow.model_extra["x-editor"] = {**flow.model_extra["x-editor"], "zoom": value}
    return None


@SETTINGS
@given(commented_flows(), st.lists(st.tuples(_EDITS, st.integers(0, 9), plain), max_size=5))
def test_edited_flows_save_by_splicing_keeping_comments(
    case: tuple[str, dict[str, Any], dict[str, str]], edits: list[tuple[str, int, Any]]
) -> None:
    """Edits through the Flow API (parameters, nodes, edges, unknown keys changed, added,
    removed, moved), saved: the text reads back as the flow's data, keys in the file's
    order, unknown keys there, and every comment of what is still there kept, once."""
    source, data, owners = case
    note(source)
    assume(ruamel_reads_back(data))  # a NEL written raw by ruamel reads as a space
    flow = loads_flow(source)
    assert fastdump.same(flow.to_data(), data)  # loading kept everything, unknown keys too
    touched = {apply(flow, *edit) for edit in edits}
    text = dumps_flow(flow)
    note(text)
    assert flow._document is None  # ruamel took no part
    reading = read_plain(text)
    assert fastdump.same(reading, flow.to_data())
    assert same_flow(loads_flow(text), flow)
    key_order_kept(data, reading)
    assert "x-editor" in reading
    now = {x["id"]: x for x in reading["nodes"]}
    for before in data["nodes"]:
        if before["id"] in now and before["id"] not in touched:
            for extra in ("position", "x-ui"):
                assert fastdump.same(now[before["id"]].get(extra), before.get(extra)), extra
    alive = {"flow"} | set(now) | {x["id"] for x in reading["edges"]}
    for comment, owner in owners.items():
        assert text.count(comment) == (owner in alive), comment
    reference = ruamel_saved(source, flow.to_data())  # the same edits, saved by ruamel
    if reference is not None:
        assert same_flow(Flow.from_data(reference), loads_flow(text))


def same_flow(a: Flow, b: Flow) -> bool:
    """``a == b``, but a NaN in a parameter is the same as a NaN."""
    return fastdump.same(a.model_dump(by_alias=True), b.model_dump(by_alias=True))


ANNOTATED = """\
# A flow with comments everywhere
id: commented   # the id
name: Commented flow
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
      keepOnlySet: yes
  # the second node
  - id: shout
    type: transform
    parameters:
      operation: map
      expression: |
        item.message
        | upper
edges:
  - {id: e1, source: greet, target: shout}   # one line
"""


def test_a_small_edit_changes_only_its_line() -> None:
    flow = loads_flow(ANNOTATED)
    flow.nodes[1].parameters = {**flow.nodes[1].parameters, "operation": "filter"}
    text = dumps_flow(flow)
    assert flow._document is None
    assert text == ANNOTATED.replace("operation: map", "operation: filter")


def test_edits_in_flow_style_stay_in_flow_style() -> None:
    flow = loads_flow(ANNOTATED)
    flow.variables["who"].default_value = "on"
    flow.edges[0].target_handle = "in"
    flow.nodes[0].model_extra["position"] = {"x": 10, "y": 30}
    text = dumps_flow(flow)
    assert "who: {type: string, defaultValue: 'on'}   # flow style kept" in text
    assert "- {id: e1, source: greet, target: shout, targetHandle: in}   # one line" in text
    assert "position: {x: 10, y: 30}" in text
    assert loads_flow(text) == flow


def test_removed_and_reordered_items_take_their_comments() -> None:
    flow = loads_flow(ANNOTATED)
    flow.nodes.reverse()
    text = dumps_flow(flow)
    assert flow._document is None
    assert text.index("# the second node") < text.index("- id: shout") < text.index("# the first")
    assert loads_flow(text) == flow
    del flow.nodes[0]
    text = dumps_flow(flow)
    assert "# the second node" not in text and "shout" not in text.split("edges:")[0]
    assert "# the first node" in text and "'Hello {{ who }}'   # single quotes kept" in text
    assert loads_flow(text) == flow


def test_a_block_value_replaced_keeps_the_comment_of_its_key() -> None:
    source = "id: a\nname: b\nmetadata:  # the key's comment\n  x: 1  # gone with x\n"
    flow = loads_flow(source)
    flow.metadata = {"x": 1}  # the same
    assert dumps_flow(flow) == source
    flow = loads_flow(source)
    flow.metadata = None
    text = dumps_flow(flow)
    assert text == "id: a\nname: b\nmetadata: null  # the key's comment\n"
    assert loads_flow(text) == flow


def test_a_value_made_multi_line_keeps_the_comment_of_its_line() -> None:
    flow = loads_flow(ANNOTATED)
    flow.nodes[0].parameters = {
        **flow.nodes[0].parameters,
        "values": {"message": {"text": "Hello", "lang": "en"}},
    }
    text = dumps_flow(flow)
    assert "# single quotes kept" in text
    assert loads_flow(text) == flow


def test_successive_saves_edit_the_last_text() -> None:
    flow = loads_flow(ANNOTATED)
    flow.name = "first"
    first = dumps_flow(flow)
    flow.description = "second"
    second = dumps_flow(flow)
    assert second == first + "description: second\n"  # a new key comes last
    assert dumps_flow(flow) == second


def test_text_the_splicer_leaves_alone_is_saved_by_ruamel() -> None:
    aliased = "id: a\nname: &n A\ndescription: *n  # an alias\nnodes: []\n"
    flow = loads_flow(aliased)
    flow.version = "2"
    text = dumps_flow(flow)
    assert flow._document is not None  # written by ruamel, as before
    assert "# an alias" in text
    assert loads_flow(text) == flow


def test_a_byte_order_mark_and_windows_line_ends_survive() -> None:
    source = "\ufeff" + ANNOTATED.replace("\n", "\r\n")
    flow = loads_flow(source)
    flow.name = "Renamed"
    text = dumps_flow(flow)
    assert flow._document is None
    assert text.startswith("\ufeff# A flow") and "# the first node\r\n" in text
    assert loads_flow(text) == flow


def test_save_flow_writes_the_spliced_text(tmp_path: Any) -> None:
    path = tmp_path / "f.flow.yaml"
    path.write_text(ANNOTATED)
    from atomiton_core import load_flow

    flow = load_flow(path)
    flow.name = "Saved"
    save_flow(flow, path)
    assert path.read_text() == ANNOTATED.replace("name: Commented flow", "name: Saved")


def test_a_failed_save_leaves_the_file_as_it_was(tmp_path: Any) -> None:
    from ruamel.yaml.representer import RepresenterError

    from atomiton_core import load_flow

    path = tmp_path / "f.flow.yaml"
    path.write_text(ANNOTATED)
    flow = load_flow(path)
    flow.name = "Changed"
    flow.metadata = {"not data": object()}  # neither fast path nor ruamel can write it
    with pytest.raises(RepresenterError):
        save_flow(flow, path)
    assert path.read_text() == ANNOTATED
    assert [p.name for p in tmp_path.iterdir()] == ["f.flow.yaml"]  # no temporary file left
    flow.metadata = None
    save_flow(flow, path)
    assert load_flow(path) == flow


def _chain(n: int) -> Flow:
    return Flow(
        id="big",
        name="Big",
        nodes=[NodeSpec(id=f"n{i}", type="transform") for i in range(n)],
        edges=[Edge(source=f"n{i}", target=f"n{i + 1}") for i in range(n - 1)],
    )


def test_large_flow_saves_fast() -> None:
    """10,000 nodes, built and then loaded and edited: the figures against PyYAML's C dumper
    are benchmarks/save.py's; this keeps them from falling back to ruamel's seconds."""
    flow = _chain(10_000)
    t0 = time.perf_counter()
    text = dumps_flow(flow)
    built_s = time.perf_counter() - t0
    loaded = loads_flow("# big\n" + text)
    loaded.nodes[5000].name = "the middle"
    del loaded.edges[10]
    t0 = time.perf_counter()
    edited_text = dumps_flow(loaded)
    edited_s = time.perf_counter() - t0
    assert loaded._document is None and edited_text.startswith("# big\n")
    assert loads_flow(edited_text) == loaded
    assert built_s < 4 and edited_s < 4, (built_s, edited_s)


def test_an_item_removed_from_a_list_rewrites_nothing_else() -> None:
    import difflib

    source = dumps_flow(_chain(50))
    flow = loads_flow(source)
    del flow.edges[10]
    flow.edges.append(Edge(source="n49", target="n0"))
    text = dumps_flow(flow)
    assert flow._document is None
    changed = [
        line
        for line in difflib.unified_diff(source.splitlines(), text.splitlines(), n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert len(changed) == 2 + 2, changed  # the removed edge's two lines, the new edge's
    assert loads_flow(text) == flow


_SHIPPED = sorted(
    [
        *(Path(__file__).parents[2] / "examples").glob("*.flow.yaml"),
        *(Path(__file__).parents[1] / "fixtures" / "atomiton-flows").glob("*.flow.yaml"),
    ]
)


@pytest.mark.parametrize("path", _SHIPPED, ids=lambda p: p.name)
def test_a_shipped_flow_saved_unchanged_is_its_file_byte_for_byte(path: Path) -> None:
    """A field typed float (``timeout``) holds the file's ``60000`` as ``60000.0``: the
    file's text still says it."""
    text = path.read_text()
    assert dumps_flow(loads_flow(text, source=str(path))) == text
