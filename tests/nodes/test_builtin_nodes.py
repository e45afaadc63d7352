"""Built-in nodes and the expression sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from atomiton_core import Conductor, Edge, ExpressionError, Flow, NodeSpec, loads_flow
from atomiton_core.nodes import expressions

RECORDS = [
    {"name": "pear", "price": 3, "tags": ["a", "b"]},
    {"name": "apple", "price": 1, "tags": ["b"]},
    {"name": "fig", "price": 2, "tags": []},
    {"name": "apple", "price": 5, "tags": ["c"]},
]


def run_transform(conductor: Conductor, data: Any, **params: Any) -> Any:
    flow = Flow(
        id="t",
        name="T",
        nodes=[
            NodeSpec(id="src", type="test.sleep", parameters={"value": data}),
            NodeSpec(id="t", type="transform", parameters=params),
        ],
        edges=[Edge(source="src", target="t")],
    )
    result = conductor.run(flow)
    if not result.ok:
        raise result.error  # type: ignore[misc]
    return result.outputs["t"]["output"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"operation": "map", "expression": "item.price * 2"}, [6, 2, 4, 10]),
        ({"operation": "filter", "expression": "item.price > 1"}, ["pear", "fig", "apple"]),
        ({"operation": "reduce", "expression": "acc + item.price", "initial": 0}, 11),
        ({"operation": "sort", "expression": "item.price"}, ["apple", "fig", "pear", "apple"]),
        (
            {"operation": "sort", "expression": "item.name", "order": "desc"},
            ["pear", "fig", "apple", "apple"],
        ),
        ({"operation": "unique", "expression": "item.name"}, ["pear", "apple", "fig"]),
        ({"operation": "reverse"}, ["apple", "fig", "apple", "pear"]),
        ({"operation": "limit", "count": 2}, ["pear", "apple"]),
        ({"operation": "skip", "count": 3}, ["apple"]),
        ({"operation": "slice", "start": 1, "end": -1}, ["apple", "fig"]),
    ],
)
def test_transform_operations(conductor: Conductor, params: dict[str, Any], expected: Any) -> None:
    out = run_transform(conductor, RECORDS, **params)
    if isinstance(out, list) and out and isinstance(out[0], dict):
        out = [r["name"] for r in out]
    assert out == expected


def test_transform_group_and_flatten(conductor: Conductor) -> None:
    groups = run_transform(conductor, RECORDS, operation="group", expression="item.name")
    assert {k: len(v) for k, v in groups.items()} == {"pear": 1, "apple": 2, "fig": 1}
    assert run_transform(conductor, [[1, [2]], [3], 4], operation="flatten") == [1, [2], 3, 4]
    assert run_transform(conductor, [[1, [2]], [3], 4], operation="flatten", depth=2) == [
        1,
        2,
        3,
        4,
    ]


def test_transform_error_names_node_and_item(conductor: Conductor) -> None:
    with pytest.raises(ExpressionError) as info:
        run_transform(conductor, [1, 2], operation="map", expression="item.price.nope")
    assert "'t'" in str(info.value)


def test_edit_fields_merges_or_replaces(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: ef
name: EF
variables: {suffix: {defaultValue: "!"}}
nodes:
  - {id: base, type: edit-fields, parameters: {values: {a: 1, b: two}, keepOnlySet: true}}
  - {id: merge, type: edit-fields, parameters: {values: {c: "{{ input.b }}{{ suffix }}", when: "{{$now}}", whole: "{{$input}}"}}}
edges:
  - {source: base, target: merge}
"""
    )
    out = conductor.run(flow).outputs["merge"]["output"]
    assert out["a"] == 1 and out["b"] == "two" and out["c"] == "two!"
    assert out["whole"] == {"a": 1, "b": "two"}  # a single expression keeps its type
    assert out["when"][:2] == "20"


@pytest.mark.parametrize(
    "attack",
    [
        "().__class__.__bases__[0].__subclasses__()",
        "item.__class__.__mro__",
        "lipsum.__globals__",
        "cycler.__init__.__globals__.os",
    ],
)
def test_sandbox_refuses_escapes(attack: str) -> None:
    with pytest.raises(ExpressionError):
        expressions.evaluate(attack, {"item": {}})


def test_expressions_and_templates() -> None:
    assert expressions.evaluate("item.price * 2", {"item": {"price": 4}}) == 8
    assert expressions.render("{{ a }}-{{ b }}", {"a": 1, "b": 2}) == "1-2"
    assert expressions.render("{{ a }}", {"a": [1]}) == [1]
    assert expressions.render({"x": ["{{ a }}"]}, {"a": 3}) == {"x": [3]}
    assert expressions.render("plain", {}) == "plain"
    with pytest.raises(ExpressionError, match="undefined"):
        expressions.render("{{ missing }}", {})
    with pytest.raises(ExpressionError, match="cannot parse"):
        expressions.compile_expression("item =>")


@pytest.mark.parametrize("operation", ["filter", "map", "sort", "group", "unique"])
def test_undefined_names_fail_clearly_in_every_operation(
    conductor: Conductor, operation: str
) -> None:
    with pytest.raises(ExpressionError) as info:
        run_transform(conductor, [1, 2], operation=operation, expression="acc + item")
    assert info.value.node_id == "t" and "acc" in info.value.message
    assert str(info.value).startswith("node 't': ")  # the error names its node once


def test_node_exceptions_keep_their_cause(conductor: Conductor) -> None:
    result = conductor.run(loads_flow("id: c\nname: C\nnodes:\n  - {id: f, type: test.fail}\n"))
    err = result.nodes["f"].error
    assert err is not None and isinstance(err.__cause__, ValueError)
