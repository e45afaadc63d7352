"""``migrate``: flows written for the original Atomiton (github.com/Develonaut/atomiton) rewritten
to run here, comments and layout kept, every change reported.

What the original did, from its source (the commit is that of the stored version read):

- its three example flows are ``tests/fixtures/atomiton-flows/`` (commit 723faa4b);
- a loop's per-item work is wired from the ports ``item`` / ``index`` its example flow
  declares (``image-processor.flow.yaml``), and a parallel's from ``output``; its loop and
  parallel executables (``src/executables/loop/index.ts``, 259a5052;
  ``src/executables/parallel/index.ts``, 02cda488) ran nothing nested;
- a loop's ``condition`` is JavaScript over ``iteration`` and ``lastResult``
  (``src/executables/loop/loopUtils.ts``, 259a5052: ``new Function(...keys, "return " +
  condition)``);
- ``csv-reader`` and ``image-composite`` are in its registry (``src/definitions/
  registry.ts``, 259a5052), later named ``spreadsheet`` and ``image``;
- its transform functions take ``(item, index)``, and reduce's ``(acc, item, index)``, as
  atomiton-lang-js calls them.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from atomiton_core import (
    Conductor,
    Flow,
    NodeContext,
    Parameters,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
)
from atomiton_core.errors import FlowLoadError
from atomiton_core.flow.migrate import (
    Migration,
    NotTranslated,
    migrate,
    translate_expression,
    translate_function,
)
from atomiton_core.flow.yaml_io import dumps_flow, to_plain
from atomiton_core.nodes.definition import accepts_original_names
from atomiton_core.nodes.expressions import compile_expression
from atomiton_core.testing.strategies import flows

ROOT = Path(__file__).resolve().parent.parent
ORIGINALS = sorted((ROOT / "tests" / "fixtures" / "atomiton-flows").glob("*.flow.yaml"))
HAS_JS = importlib.util.find_spec("atomiton_lang_js") is not None


@pytest.fixture(scope="module")
def installed() -> Iterator[Conductor]:
    """A conductor with every installed node type, as ``atomiton migrate`` has."""
    c = create_conductor("memory://test-migrate", record_runs=False)
    yield c
    c.close()


def nodes_by_id(nodes: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for n in nodes:
        found[n["id"]] = n
        found.update(nodes_by_id(n.get("nodes") or []))
    return found


def data_of(text: str) -> Any:
    return to_plain(loads_flow(text).to_data())


# -- JavaScript -> Jinja2 -------------------------------------------------------------------

RECORD = {
    "price": 3,
    "active": "true",
    "a": 1,
    "b": 0,
    "name": " Ada ",
    "tags": ["x", "y"],
    "amount": "2.5",
    "items": [1, 2],
    "keys": "k",
    "v": 2.5,
    "nothing": None,
}


@pytest.mark.parametrize(
    ("js", "jinja", "value"),
    [
        # the examples
        ("item => item.price * 2", "item.price * 2", 6),
        ("row => row.active === 'true'", "item.active == 'true'", True),
        ("x => x.a && !x.b", "item.a and not item.b", True),
        ("(item) => item.name.toUpperCase()", "item.name.upper()", " ADA "),
        # a block body, a template literal
        (
            "x => { return `${x.name.trim()}: ${x.price}`; }",
            "item.name.strip() ~ ': ' ~ item.price",
            "Ada: 3",
        ),
        ("function (r) { return r.price + 1; }", "item.price + 1", 4),
        (
            "x => x.items.length > 1 ? 'many' : 'one'",
            "'many' if item['items'] | length > 1 else 'one'",
            "many",
        ),
        (
            "x => ({name: x.name, twice: x.price * 2})",
            "{'name': item.name, 'twice': item.price * 2}",
            {"name": " Ada ", "twice": 6},
        ),
        ("x => x.tags.includes('y') || x.b", "'y' in item.tags or item.b", True),
        ("x => x.nothing === null", "item.nothing is none", True),
        ("x => x.missing === undefined", "item.missing is undefined", True),
        ("x => x.missing == null", "item.missing is undefined or item.missing is none", True),
        ("x => x.nothing ?? 'n/a'", "item.nothing if item.nothing is not none else 'n/a'", "n/a"),
        ("x => Math.round(x.v)", "(item.v + 0.5) | round(0, 'floor') | int", 3),  # half up
        (
            "x => Math.max(x.a, x.price) - Math.floor(x.v)",
            "max(item.a, item.price) - item.v | round(0, 'floor') | int",
            1,
        ),
        ("x => parseFloat(x.amount || 0) * 2", "float(item.amount or 0) * 2", 5.0),
        ("x => 'n' + x.a + 1", "'n' ~ item.a ~ 1", "n11"),
        ("x => 1 + 2 + 'n'", "(1 + 2) ~ 'n'", "3n"),
        ("x => (x.price - 1) * (x.a + 1)", "(item.price - 1) * (item.a + 1)", 4),
        ("x => !(x.a > 0 && x.b > 0)", "not (item.a > 0 and item.b > 0)", True),
        ("x => x.keys", "item['keys']", "k"),  # a mapping's own .keys would win over x.keys
        ("x => x.tags.join('+')", "item.tags | join('+')", "x+y"),
        ("x => x.name.slice(1, -1)", "item.name[1:-1]", "Ada"),
        ("x => x.v.toFixed(2)", "'%.2f' | format(item.v)", "2.50"),
        ("x => x.name.startsWith(' A')", "item.name.startswith(' A')", True),
        ("x => x.name.replace('a', '$')", "item.name.replace('a', '\\x24', 1)", " Ad$ "),
        ("(x, i) => i", "index", 7),
    ],
)
def test_simple_functions_become_jinja2(js: str, jinja: str, value: Any) -> None:
    done = translate_function(js)
    assert done.expression == jinja
    assert compile_expression(done.expression)(item=RECORD, index=7) == value


def test_reduce_functions_take_acc_item_index() -> None:
    done = translate_function("(sum, row) => sum + row.price", ("acc", "item", "index"))
    assert done.expression == "acc + item.price"
    assert compile_expression(done.expression)(acc=10, item=RECORD) == 13


def test_conditions_are_expressions_over_their_names() -> None:
    done = translate_expression("iteration < 3 && lastResult !== null", ("iteration", "lastResult"))
    assert done.expression == "iteration < 3 and lastResult is not none"
    with pytest.raises(NotTranslated, match="'limit'"):
        translate_expression("iteration < limit", ("iteration", "lastResult"))


def test_where_the_translation_may_differ_it_says_so() -> None:
    assert "converts types" in translate_function("x => x.a == '1'").notes[0]
    assert translate_function("x => x.a === 1").notes == ()


@pytest.mark.parametrize(
    ("js", "reason"),
    [
        (
            "// Filter only active records\nreturn data.filter(row => row.active === 'true');",
            "not a function",
        ),
        ("data => data.filter(row => row.active)", "callback"),
        ("x => { const y = x * 2; return y; }", "statements"),
        ("x => { if (x) { return 1; } }", "statements"),
        ("x => y", "the name 'y'"),
        ("x => x?.a", "optional chaining"),
        ("x => /a+/.test(x.name)", "regular expression"),
        ("x => typeof x === 'string'", "typeof"),
        ("x => new Date(x.when)", "new"),
        ("async x => x", "async"),
        ("({price}) => price", "destructuring"),
        ("x => x.a = 1", "assignment"),
        ("x => x.tags[-1]", "negative index"),
        ("x => x.name.padStart(3)", ".padStart()"),
        ("x => JSON.stringify(x)", "JSON.stringify"),
        ("(a, b, c) => a", "3 arguments"),
        ("item.price * 2", "not a function"),
    ],
)
def test_anything_else_is_not_translated_and_says_why(js: str, reason: str) -> None:
    with pytest.raises(NotTranslated) as info:
        translate_function(js)
    assert reason in str(info.value)


JS_CASES = [
    ("item => item.price * 2", "map"),
    ("row => row.active === 'true'", "filter"),
    ("x => `${x.name}: ${x.price}`", "map"),
    ("x => ({n: x.name.toUpperCase(), cheap: x.price < 3})", "map"),
    ("x => Math.round(x.price * 1.5)", "map"),
    ("x => x.tags.includes('b') && !x.sold", "filter"),
    ("x => x.price >= 2 ? 'high' : 'low'", "map"),
    ("(acc, x) => acc + x.price", "reduce"),
]


@pytest.mark.skipif(not HAS_JS, reason="atomiton-lang-js runs the JavaScript to compare with")
@pytest.mark.parametrize(("js", "operation"), JS_CASES)
def test_the_translation_gives_what_the_javascript_gives(
    installed: Conductor, js: str, operation: str
) -> None:
    """The same records through the function run as JavaScript (atomiton-lang-js) and through
    its translation."""
    records = [
        {"name": "pear", "price": 3, "active": "true", "tags": ["a", "b"], "sold": False},
        {"name": "fig", "price": 1.5, "active": "false", "tags": ["b"], "sold": True},
        {"name": "kiwi", "price": 2, "active": "true", "tags": ["b"], "sold": False},
    ]
    names = ("acc", "item", "index") if operation == "reduce" else ("item", "index")
    key = {"reduce": "reduceFunction", "filter": "filterCondition"}.get(
        operation, "transformFunction"
    )
    flow = Flow.from_data(
        {
            "id": "js",
            "name": "JS",
            "nodes": [
                {"id": "src", "type": "const", "parameters": {"value": records}},
                {"id": "js", "type": "transform", "parameters": {"operation": operation, key: js}},
                {
                    "id": "jinja",
                    "type": "transform",
                    "parameters": {
                        "operation": operation,
                        "expression": translate_function(js, names).expression,
                    },
                },
            ],
            "edges": [{"source": "src", "target": "js"}, {"source": "src", "target": "jinja"}],
        }
    )
    result = installed.run(flow)
    assert result.ok, result.error
    assert result.outputs["jinja"]["output"] == result.outputs["js"]["output"]


# -- the original's flows -------------------------------------------------------------------


@pytest.mark.parametrize("path", ORIGINALS, ids=lambda p: p.name)
def test_the_originals_migrate_to_flows_with_fewer_problems(
    installed: Conductor, path: Path
) -> None:
    text = path.read_text()
    done = migrate(text, installed.catalogue, source=str(path))
    assert done.changes
    for change in done.changes:
        assert change.node_id or change.edge_id
        assert change.line is not None and change.message
    before = installed.validate(loads_flow(text)).errors
    after = installed.validate(done.flow()).errors
    assert len(after) <= len(before)
    # nothing left to do: migrating the result changes nothing
    again = migrate(done.text, installed.catalogue)
    assert again.text == done.text
    assert [c for c in again.changes if c.translated] == []


def test_the_originals_together_have_fewer_problems(installed: Conductor) -> None:
    before = after = 0
    for path in ORIGINALS:
        text = path.read_text()
        before += len(installed.validate(loads_flow(text)).problems)
        after += len(installed.validate(migrate(text, installed.catalogue).flow()).problems)
    assert after < before


@pytest.mark.parametrize("path", ORIGINALS, ids=lambda p: p.name)
def test_parameters_become_what_each_node_type_makes_of_them(
    installed: Conductor, path: Path
) -> None:
    """Whatever the node types declare (``original_names``, ``from_original``) at the time:
    each node's migrated parameters are its ``from_original`` of the original's."""
    original = nodes_by_id(to_plain(loads_flow(path.read_text()).to_data())["nodes"])
    migrated = nodes_by_id(data_of(migrate(path.read_text(), installed.catalogue).text)["nodes"])
    folded = {"parallel-processor"} if path.name == "image-processor.flow.yaml" else set()
    assert set(migrated) == set(original) - folded  # see test_the_image_processors_loop_...
    for node_id, spec in original.items():
        if node_id in folded:
            continue
        params = dict(spec.get("parameters") or {})
        nt = installed.catalogue.get(spec["type"])
        if nt is not None and not params.keys().isdisjoint(nt.params.original_names):
            params = nt.params.from_original(params)
        got = migrated[node_id].get("parameters") or {}
        if "transformFunction" in params and "expression" in got:  # translated, tested below
            params["expression"] = got["expression"]
            del params["transformFunction"]
        if spec["type"] == "spreadsheet":  # the original's text cells: tested below
            got = {k: v for k, v in got.items() if k != "inferTypes"}
        if (path.name, node_id) == ("image-processor.flow.yaml", "image-loop"):
            assert got.pop("concurrency") == 4  # the folded parallel's
        if (path.name, node_id) == ("image-processor.flow.yaml", "save-processed"):
            assert got.pop("path") == params.pop("path") + "/{{ item.name }}"
        if (path.name, node_id) == ("data-transform.flow.yaml", "filter-transform"):
            continue  # what its transform never read: test_data_transform_migrates_to_what_...
        assert got == params, node_id


def test_hello_worlds_function_becomes_an_expression_that_gives_the_same_text(
    installed: Conductor,
) -> None:
    path = ORIGINALS[1]
    assert path.name == "hello-world.flow.yaml"
    done = migrate(path.read_text(), installed.catalogue)
    change = next(c for c in done.changes if c.parameter == "transformFunction")
    assert change.node_id == "format-content" and change.action == "translated"
    params = nodes_by_id(data_of(done.text)["nodes"])["format-content"]["parameters"]
    assert "transformFunction" not in params
    item = {"message": "Hi", "description": "D", "author": "A", "timestamp": "T"}
    assert compile_expression(params["expression"])(item=item) == (
        "Hi\n\nD\n\nCreated by: A\nGenerated at: T"
    )
    # everything else is the text as it was, line for line
    changed = _lines_changed(path.read_text(), done.text)
    assert 72 in changed and changed <= set(range(72, 81))  # the function's block


def _lines_changed(old: str, new: str) -> set[int]:
    import difflib

    changed: set[int] = set()
    a, b = old.splitlines(), new.splitlines()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b).get_opcodes():
        if tag != "equal":
            changed.update(range(i1 + 1, max(i2, i1 + 1) + 1))
    return changed


def test_the_image_processors_loop_and_parallel_get_their_per_item_work_nested(
    installed: Conductor,
) -> None:
    path = ORIGINALS[2]
    assert path.name == "image-processor.flow.yaml"
    done = migrate(path.read_text(), installed.catalogue)
    data = data_of(done.text)
    assert [n["id"] for n in data["nodes"]] == ["image-source", "image-loop"]
    loop = data["nodes"][1]
    # the parallel ran each item through its nodes: folded into the loop, at its concurrency
    assert [n["id"] for n in loop["nodes"]] == ["image-resize", "image-watermark", "save-processed"]
    assert loop["parameters"]["concurrency"] == 4
    edges = {e["id"]: e for e in data["edges"]}
    assert list(edges) == ["source-to-loop"]
    assert [(e["source"], e["sourceHandle"], e["target"]) for e in loop["edges"]] == [
        ("image-loop", "item", "image-resize"),  # the original's parallel `output`
        ("image-resize", "output", "image-watermark"),
        ("image-watermark", "result", "save-processed"),  # the image itself
    ]
    assert loop["nodes"][2]["parameters"]["path"] == "/images/output/{{ item.name }}"
    nested = [c for c in done.changes if c.action == "nested"]
    assert [c.node_id for c in nested] == ["image-loop", "parallel-processor"]
    (folded,) = [c for c in done.changes if c.action == "folded"]
    assert folded.node_id == "parallel-processor" and "4 items at once" in folded.message
    codes = {p.code for p in installed.validate(done.flow()).problems}
    assert not codes & {"PORT_NOT_FOUND", "EMPTY_CONTAINER"}


def test_comments_and_layout_survive(installed: Conductor) -> None:
    text = ORIGINALS[2].read_text()
    text = "# migrated from the original\n" + text
    text = text.replace("preserveOrder: true", "preserveOrder: true  # results in order")
    text = text.replace("      width: 800\n", "      # the web size\n      width: 800\n")
    text = text.replace(
        '  - id: "image-source"', '  # where the images are\n  - id: "image-source"'
    )
    done = migrate(text, installed.catalogue)
    assert done.text.startswith("# migrated from the original\n")
    # (the parallel's preserveOrder goes with it: folded into its loop, see above)
    assert "# results in order" not in done.text
    assert "# the web size\n" in done.text and "# where the images are\n" in done.text
    # the nodes that stayed keep their lines as written (a long value wrapped onto the next)
    assert 'description:\n  "Batch process images with parallel operations' in done.text


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((ROOT / "examples").glob("*.flow.yaml")) if p.name != "mistakes.flow.yaml"],
    ids=lambda p: p.name,
)
def test_a_flow_that_needs_no_change_comes_back_byte_for_byte(
    installed: Conductor, path: Path
) -> None:
    text = path.read_text()
    done = migrate(text, installed.catalogue)
    assert done.text == text and not done.changed and done.changes == () and done.ok


def test_a_loaded_flow_migrates_too(installed: Conductor) -> None:
    flow = loads_flow(ORIGINALS[1].read_text(), source="hello.yaml")
    done = migrate(flow, installed.catalogue)
    assert done.source == "hello.yaml" and done.changed
    assert "expression" in nodes_by_id(data_of(done.text)["nodes"])["format-content"]["parameters"]


def test_text_that_is_not_a_flow_is_refused(installed: Conductor) -> None:
    with pytest.raises(FlowLoadError, match="not a flow"):
        migrate("- a\n- b\n", installed.catalogue)
    with pytest.raises(FlowLoadError, match=r"x\.yaml:2:1: not valid YAML"):
        migrate("id: [\n", installed.catalogue, source="x.yaml")


# -- what is kept and flagged ---------------------------------------------------------------


def test_data_transform_migrates_to_what_it_promises(installed: Conductor) -> None:
    """The original's data-transform (commit 723faa4b) puts JavaScript its transform never
    read on two transforms: ``expression: return data.filter(...)`` becomes operation: filter
    with the function in Jinja2, the ``code`` node a javascript node; inputType / outputType
    go. (Before, both were kept and flagged and the flow had 7 validation errors.)"""
    path = ORIGINALS[0]
    assert path.name == "data-transform.flow.yaml"
    done = migrate(path.read_text(), installed.catalogue)
    assert done.ok, done.report()
    nodes = nodes_by_id(data_of(done.text)["nodes"])
    assert nodes["filter-transform"]["parameters"] == {
        "operation": "filter",
        "expression": "item.active == 'true'",
    }
    aggregate = nodes["aggregate-code"]
    assert aggregate["type"] == "javascript"
    assert set(aggregate["parameters"]) == {"code", "inputParams", "returnType", "async"}
    changes = {(c.node_id, c.parameter): c for c in done.changes}
    assert str(changes["filter-transform", "expression"]).startswith(
        "translated node 'filter-transform', parameter 'expression' (line 89): JavaScript"
    )
    assert "operation: filter, expression: item.active == 'true'" in str(
        changes["filter-transform", "expression"]
    )
    for key in ("inputType", "outputType"):
        assert changes["filter-transform", key].action == "removed"
    assert nodes["csv-source"]["parameters"]["inferTypes"] is False  # csvParser.ts: text
    rewired = next(c for c in done.changes if c.edge_id == "csv-to-filter")
    assert rewired.action == "rewired" and "'output' -> 'records'" in rewired.message
    assert data_of(done.text)["edges"][0]["sourceHandle"] == "records"
    retyped = changes["aggregate-code", "code"]
    assert retyped.action == "retyped" and "atomiton-lang-js" in retyped.message
    assert installed.validate(done.flow()).errors == []


@pytest.mark.skipif(not HAS_JS, reason="the migrated flow's javascript node needs atomiton-lang-js")
def test_the_migrated_data_transform_gives_the_active_records_and_their_totals(
    tmp_path: Path,
) -> None:
    csv = tmp_path / "sample.csv"
    csv.write_text("name,active,amount\na,true,10\nb,false,99\nc,true,2.5\nd,true,\n")
    out = tmp_path / "out" / "results.json"
    with create_conductor(
        f"memory://test-migrate-dt-{tmp_path.name}",
        record_runs=False,
        config={"allowedRoots": [str(tmp_path)]},
    ) as c:
        done = migrate(ORIGINALS[0].read_text(), c.catalogue)
        text = done.text.replace("/data/sample.csv", str(csv))
        text = text.replace("/output/results.json", str(out))
        result = c.run(loads_flow(text))
    assert result.ok, result.error
    active = [
        {"name": "a", "active": "true", "amount": "10"},
        {"name": "c", "active": "true", "amount": "2.5"},
        {"name": "d", "active": "true", "amount": ""},
    ]
    assert result.nodes["filter-transform"].outputs["output"] == active
    totals = {"total": 12.5, "count": 3, "average": 12.5 / 3}
    assert result.nodes["aggregate-code"].outputs["output"] == totals
    assert json.loads(out.read_text()) == totals


@pytest.mark.parametrize(
    ("expression", "operation", "jinja"),
    [
        ("data.filter(row => row.active === 'true')", "filter", "item.active == 'true'"),
        ("return data.map(r => r.price * 2);", "map", "item.price * 2"),
        (
            "/* keep */ return data.map(function (r) { return r.price; }); // the prices",
            "map",
            "item.price",
        ),
        ("// the names (of them)\ninput.map((r, i) => r.name)", "map", "item.name"),
    ],
)
def test_a_javascript_collection_call_in_expression_becomes_the_operation(
    own: Conductor, expression: str, operation: str, jinja: str
) -> None:
    done = migrate(_transform(expression), own.catalogue)
    assert done.ok, done.report()
    assert nodes_by_id(data_of(done.text)["nodes"])["t"]["parameters"] == {
        "operation": operation,
        "expression": jinja,
    }


def test_a_collection_call_whose_function_is_not_simple_runs_as_javascript(
    own: Conductor,
) -> None:
    done = migrate(
        _transform("return data.filter(r => r.tags.some(t => t === 'x'));"), own.catalogue
    )
    params = nodes_by_id(data_of(done.text)["nodes"])["t"]["parameters"]
    assert params == {
        "operation": "filter",
        "transformFunction": "r => r.tags.some(t => t === 'x')",
    }
    (flagged,) = done.flagged
    assert flagged.parameter == "expression" and "atomiton-lang-js" in flagged.message


@pytest.mark.parametrize(
    "expression",
    [
        "data.filter(r => r.a).map(r => r.b)",  # a chain
        "const x = 1; return data.filter(r => r.a === x);",  # a statement before
        "rows.filter(r => r.a)",  # not the input
        "data.filter(isActive)",  # not a function: Jinja2 reads it
        "data.reduce((a, r) => a + r.n, 0)",
    ],
)
def test_other_javascript_in_expression_is_kept(own: Conductor, expression: str) -> None:
    done = migrate(_transform(expression), own.catalogue)
    params = nodes_by_id(data_of(done.text)["nodes"])["t"]["parameters"]
    assert params == {"expression": expression}


def test_a_collection_call_against_the_given_operation_is_kept(own: Conductor) -> None:
    text = _transform("data.filter(r => r.a)", before="operation: sort")
    done = migrate(text, own.catalogue)
    params = nodes_by_id(data_of(done.text)["nodes"])["t"]["parameters"]
    assert params == {"operation": "sort", "expression": "data.filter(r => r.a)"}
    assert [c.parameter for c in done.flagged] == ["expression"]


def test_a_transform_with_code_stays_flagged_without_a_javascript_type(own: Conductor) -> None:
    assert own.catalogue.get("javascript") is None
    text = _transform("return data.length;", key="code", before="inputType: array")
    done = migrate(text, own.catalogue)
    node = nodes_by_id(data_of(done.text)["nodes"])["t"]
    assert node["type"] == "transform" and node["parameters"] == {"code": "return data.length;"}
    assert [c.parameter for c in done.flagged] == ["code"]
    assert [(c.parameter, c.action) for c in done.changes if c.translated] == [
        ("inputType", "removed")
    ]


def test_a_transform_with_code_and_a_transform_parameter_stays_a_transform(
    installed: Conductor,
) -> None:
    text = _transform("return data.length;", key="code", before="operation: sort")
    done = migrate(text, installed.catalogue)
    assert nodes_by_id(data_of(done.text)["nodes"])["t"]["type"] == "transform"
    assert [c.parameter for c in done.flagged] == ["code"]


def _transform(text: str, key: str = "expression", before: str = "") -> str:
    """A flow whose transform ``t`` has ``key: text`` (after the line ``before``)."""
    lines = f"      {before}\n" if before else ""
    return (
        "id: t\nname: T\nnodes:\n  - id: src\n    type: const\n"
        "    parameters: {value: [{a: 1}]}\n  - id: t\n    type: transform\n"
        f"    parameters:\n{lines}      {key}: {json.dumps(text)}\n"
        "edges:\n  - {source: src, target: t}\n"
    )


FLOW_WITH_JS = """\
id: js
name: JS
nodes:
  - id: src
    type: const
    parameters: {value: [{price: 1}, {price: 5}]}
  - id: big
    type: transform
    parameters:
      operation: filter
      filterCondition: "x => x.price > 2"   # the original's name
      transformFunction: "x => false"       # filter ignored it: filterCondition won
  - id: statements
    type: transform
    parameters:
      operation: map
      transformFunction: |
        item => { const p = item.price; return p * 2; }
  - id: again
    type: loop
    parameters:
      loopType: while
      condition: "iteration < 2 && lastResult !== undefined || iteration === 0"
edges:
  - {source: src, target: big}
  - {source: src, target: statements}
"""


def test_a_function_it_cannot_translate_is_kept_for_atomiton_lang_js(installed: Conductor) -> None:
    done = migrate(FLOW_WITH_JS, installed.catalogue)
    by = {(c.node_id, c.parameter): c for c in done.changes}
    assert not by["statements", "transformFunction"].translated
    assert "statements" in by["statements", "transformFunction"].message
    assert by["big", "filterCondition"].translated
    assert by["big", "transformFunction"].action == "removed"
    assert by["again", "condition"].translated
    nodes = nodes_by_id(data_of(done.text)["nodes"])
    assert nodes["big"]["parameters"] == {"operation": "filter", "expression": "item.price > 2"}
    assert nodes["statements"]["parameters"]["transformFunction"].startswith("item => {")
    assert nodes["again"]["parameters"]["condition"] == (
        "iteration < 2 and lastResult is defined or iteration == 0"
    )
    assert 'expression: "item.price > 2"   # the original\'s name\n' in done.text  # as far
    assert not done.ok


def test_a_condition_already_jinja2_is_left_alone(installed: Conductor) -> None:
    text = FLOW_WITH_JS.replace(
        "iteration < 2 && lastResult !== undefined || iteration === 0", "iteration < 2"
    )
    done = migrate(text, installed.catalogue)
    assert not [c for c in done.changes if c.parameter == "condition"]


# -- per-item work, run -------------------------------------------------------------------


@node("test.pair", outputs={"output": Any}, blocking=False)
def pair(ctx: NodeContext, params: Parameters, a: Any = None, b: Any = None) -> dict[str, Any]:
    return {"output": {"a": a, "b": b}}


class LegacyParams(Parameters):
    """A node type of this test's own, with names from an original."""

    original_names: ClassVar[dict[str, str]] = {"sortDirection": "order", "maxItems": "limit"}
    _original = accepts_original_names()

    order: str = Field("asc", pattern="^(asc|desc)$")
    limit: int = 10


@node("test.legacy", params=LegacyParams, outputs={"output": Any}, blocking=False)
def legacy(ctx: NodeContext, params: LegacyParams, input: Any = None) -> dict[str, Any]:
    return {"output": {"order": params.order, "limit": params.limit}}


class ThisTestsNodes:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [pair, legacy]


@pytest.fixture
def own() -> Iterator[Conductor]:
    c = create_conductor(
        "memory://test-migrate-own", plugins=[ThisTestsNodes()], autoload=False, record_runs=False
    )
    yield c
    c.close()


PER_ITEM = """\
# written for the original: the loop's `item` port feeds the per-item work
id: per-item
name: Per item
nodes:
  - id: numbers
    type: const
    parameters: {value: [1, 2, 3]}
  - id: each
    type: loop
    parameters: {continueOnError: true}  # the original's name
  - id: double  # per item
    type: edit-fields
    parameters: {values: {n: "{{ input * 2 }}"}, keepOnlySet: true}
  - id: label
    type: edit-fields
    parameters: {values: {text: "n={{ input.n }}"}, keepOnlySet: true}
  - id: offset
    type: const
    parameters: {value: 100}
  - id: both
    type: test.pair
  - id: after
    type: test.pair
edges:
  - {id: in, source: numbers, target: each, targetHandle: items}
  - {id: feed, source: each, sourceHandle: item, target: double}
  - {id: d-l, source: double, target: label}
  - {id: l-both, source: label, target: both, targetHandle: a}
  - {id: o-both, source: offset, target: both, targetHandle: b}
  - {id: both-after, source: both, target: after, targetHandle: a}
"""


def test_per_item_work_moves_into_the_loop_and_runs_once_per_item(own: Conductor) -> None:
    """``double`` and ``label`` did the per-item work; ``both`` also takes ``offset``, which
    runs once, so it stays outside (and ``after``, downstream of it) and gets the loop's list
    of ``label``'s values."""
    done = migrate(PER_ITEM, own.catalogue)
    assert done.ok, done.report()
    data = data_of(done.text)
    assert [n["id"] for n in data["nodes"]] == ["numbers", "each", "offset", "both", "after"]
    loop = data["nodes"][1]
    assert [n["id"] for n in loop["nodes"]] == ["double", "label"]
    assert loop["parameters"] == {"breakOnError": False}
    assert [e["id"] for e in loop["edges"]] == ["feed", "d-l", "l-both-collect"]
    assert loop["edges"][2] == {
        "id": "l-both-collect",
        "source": "label",
        "sourceHandle": "output",
        "target": "each",
        "targetHandle": "label",
    }
    outer = {e["id"]: e for e in data["edges"]}
    assert outer["l-both"]["source"] == "each" and outer["l-both"]["sourceHandle"] == "label"
    assert "# per item" in done.text and "# the original's name" in done.text
    assert done.text.startswith("# written for the original")
    result = own.run(done.flow())
    assert result.ok, result.error
    assert result.outputs["after"]["output"]["a"] == {
        "a": [{"text": "n=2"}, {"text": "n=4"}, {"text": "n=6"}],
        "b": 100,
    }
    rewired = next(c for c in done.changes if c.edge_id == "l-both")
    assert rewired.action == "rewired" and "the list of what 'label' gives" in rewired.message


def test_a_per_item_node_fed_from_outside_is_flagged(own: Conductor) -> None:
    text = PER_ITEM.replace(
        "target: both, targetHandle: a}",
        "target: both, targetHandle: a}\n"
        "  - {id: direct, source: each, sourceHandle: item, target: both, "
        "targetHandle: a}",
    )
    done = migrate(text, own.catalogue)
    flagged = [c for c in done.flagged if c.edge_id == "direct"]
    assert flagged and "'offset'" in flagged[0].message


def test_a_node_type_of_ones_own_gets_its_original_names(own: Conductor) -> None:
    text = (
        "id: f\nname: F\nnodes:\n"
        "  - id: n\n    type: test.legacy\n    parameters:\n"
        "      sortDirection: desc  # newest first\n"
        "      timeout: 5000\n"
        "      maxItems: 3\n"
    )
    done = migrate(text, own.catalogue)
    assert done.text == (
        "id: f\nname: F\nnodes:\n"
        "  - id: n\n    type: test.legacy\n    parameters:\n"
        "      order: desc  # newest first\n"
        "      timeout: 5000\n"
        "      limit: 3\n"
    )
    assert [(c.parameter, c.message, c.line) for c in done.changes] == [
        ("sortDirection", "-> 'order'", 7),
        ("maxItems", "-> 'limit'", 9),
    ]
    result = own.run(done.flow())
    assert result.outputs["n"]["output"] == {"order": "desc", "limit": 3}
    both = migrate(text.replace("timeout: 5000", "order: asc"), own.catalogue)
    assert [c.translated for c in both.changes] == [False]
    assert "give one of them" in both.changes[0].message


def test_the_originals_renamed_node_types_get_their_names(installed: Conductor) -> None:
    text = (
        "id: f\nname: F\nnodes:\n"
        "  - {id: read, type: csv-reader, parameters: {hasHeaders: true}}\n"
        "  - {id: show, type: edit-fields}\n"
        "edges:\n"
        "  - {id: e, source: read, sourceHandle: records, target: show}\n"
        "  - {id: bad, source: show, target: read, targetHandle: content}\n"
    )
    done = migrate(text, installed.catalogue)
    assert "{id: read, type: spreadsheet, parameters: {hasHeaders: true}}" in done.text
    retyped = next(c for c in done.changes if c.action == "retyped")
    assert retyped.node_id == "read" and "'csv-reader' -> 'spreadsheet'" in retyped.message
    if "spreadsheet" in installed.catalogue:
        assert [c.edge_id for c in done.flagged] == ["bad"]  # spreadsheet has no `content`


def test_a_code_node_holding_javascript_becomes_a_javascript_node(installed: Conductor) -> None:
    text = (
        "id: f\nname: F\nnodes:\n"
        "  - id: sum\n    type: code\n    parameters:\n"
        '      code: "return data.reduce((a, b) => a + b, 0);"\n'
        '  - id: py\n    type: code\n    parameters:\n      code: "return 1"\n'
    )
    done = migrate(text, installed.catalogue)
    nodes = nodes_by_id(data_of(done.text)["nodes"])
    assert nodes["sum"]["type"] == "javascript" and nodes["py"]["type"] == "code"
    assert [c.node_id for c in done.changes] == ["sum"]


def test_migration_is_a_value(installed: Conductor) -> None:
    done = migrate(ORIGINALS[1].read_text(), installed.catalogue)
    assert isinstance(done, Migration)
    assert done.report().splitlines() == [str(c) for c in done.changes]


def test_another_layout_is_kept_and_new_lines_follow_it(installed: Conductor) -> None:
    text = (
        "---\n"
        "# top\n"
        "id: f\n"
        "name: F\n"
        "description:\n"
        '  "a long description, wrapped as written"\n'
        "nodes:\n"
        "- id: t   # sequences not indented\n"
        "  type: transform\n"
        "  parameters:\n"
        "    operation: map\n"
        '    transformFunction: "x => x.a"\n'
        "...\n"
    )
    done = migrate(text, installed.catalogue)
    assert done.text == text.replace('transformFunction: "x => x.a"', 'expression: "item.a"')


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_valid_flow_of_ours_is_left_as_it_is(installed: Conductor, data: st.DataObject) -> None:
    """Flows drawn by the testing kit (containers with their children nested, as ours are)."""
    types = ["const", "edit-fields", "merge", "if", "group", "loop", "parallel"]
    flow = data.draw(flows(installed.catalogue, types, nested=2, max_nodes=5))
    text = dumps_flow(flow)
    done = migrate(text, installed.catalogue)
    assert done.text == text
    assert done.changes == ()


def test_containers_side_by_side_and_inside_a_group_are_each_nested(own: Conductor) -> None:
    text = """\
id: side
name: Side by side
nodes:
  - id: box
    type: group
    nodes:
      - {id: xs, type: const, parameters: {value: [1, 2]}}
      - {id: one, type: loop}
      - {id: two, type: parallel}
      - {id: a, type: edit-fields, parameters: {values: {v: "{{ input }}"}}}
      - {id: b, type: edit-fields, parameters: {values: {w: "{{ input }}"}}}
    edges:
      - {source: xs, target: one, targetHandle: items}
      - {source: xs, target: two, targetHandle: operations}
      - {source: one, sourceHandle: item, target: a}
      - {source: two, target: b}
      - {source: b, target: box, targetHandle: ws}
"""
    done = migrate(text, own.catalogue)
    assert done.ok, done.report()
    box = data_of(done.text)["nodes"][0]
    assert [n["id"] for n in box["nodes"]] == ["xs", "one", "two"]
    one, two = box["nodes"][1], box["nodes"][2]
    assert [n["id"] for n in one["nodes"]] == ["a"] and [n["id"] for n in two["nodes"]] == ["b"]
    assert {"source": "two", "sourceHandle": "b", "target": "box", "targetHandle": "ws"} in box[
        "edges"
    ]
    result = own.run(done.flow())
    assert result.ok, result.error
    assert result.outputs["box"]["ws"] == [{"w": 1}, {"w": 2}]
