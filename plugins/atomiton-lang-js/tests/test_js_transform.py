"""The core's ``transform`` running the original's JavaScript functions through this package
(``transformFunction``, ``filterCondition``, ``reduceFunction``); skipped with a core too old
to consult this package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import FlowValidationError, NodeTimeout, load_flow
from atomiton_core.nodes.builtin import data

from atomiton_lang_js import JavaScriptError, JavaScriptSyntaxError

pytestmark = pytest.mark.skipif(
    "filter_condition" not in data.TransformParams.model_fields,
    reason="this atomiton-core's transform does not run JavaScript",
)

#: The original's flows, where the repository has them (the package's own sdist does not).
ORIGINALS = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "atomiton-flows"

ROWS = [
    {"name": "pear", "price": 3, "active": "true"},
    {"name": "apple", "price": 1, "active": "false"},
    {"name": "fig", "price": 2, "active": "true"},
]


def transform(params: dict[str, Any], input: Any) -> Any:
    from atomiton_core.testing import run_node

    return run_node(data.transform, params, input=input)["output"]


def test_the_hello_world_transform_runs_as_the_original_wrote_it() -> None:
    path = ORIGINALS / "hello-world.flow.yaml"
    if not path.exists():
        pytest.skip("the original flows are not beside this package")
    (node,) = [n for n in load_flow(path).nodes if n.id == "format-content"]
    item = {"message": "Hello", "description": "D", "author": "A", "timestamp": "T"}
    params = {k: v for k, v in node.parameters.items()}
    assert transform(params, [item]) == ["Hello\n\nD\n\nCreated by: A\nGenerated at: T"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"operation": "map", "transformFunction": "item => item.price * 2"}, [6, 2, 4]),
        ({"operation": "map", "transformFunction": "(item, i) => i"}, [0, 1, 2]),
        (
            {"operation": "filter", "transformFunction": "row => row.active === 'true'"},
            ["pear", "fig"],
        ),
        (  # filterCondition wins over transformFunction, as in the original
            {
                "operation": "filter",
                "transformFunction": "item => item",
                "filterCondition": "item => item.price > 1",
            },
            ["pear", "fig"],
        ),
        ({"operation": "reduce", "reduceFunction": "(acc, item) => acc + item.price"}, 6),
        (
            {
                "operation": "reduce",
                "reduceFunction": "(acc, item) => acc + item.name",
                "reduceInitial": '""',  # JSON: the empty text
            },
            "pearapplefig",
        ),
        (
            {
                "operation": "reduce",
                "reduceFunction": "(acc, item) => acc + item.name",
                "reduceInitial": "names:",  # not JSON: the text itself, as the original read it
            },
            "names:pearapplefig",
        ),
        (
            {
                "operation": "reduce",
                "reduceFunction": "(acc, item) => ({...acc, [item.name]: item.price})",
                "reduceInitial": "{}",
            },
            {"pear": 3, "apple": 1, "fig": 2},
        ),
        ({"operation": "reverse", "transformFunction": "item => nope("}, None),  # not run
    ],
)
def test_the_original_functions_of_each_operation(params: dict[str, Any], expected: Any) -> None:
    out = transform(params, ROWS)
    if params["operation"] == "filter":
        out = [r["name"] for r in out]
    assert out == (expected if expected is not None else ROWS[::-1])


def test_javascript_errors_of_a_transform() -> None:
    with pytest.raises(JavaScriptSyntaxError) as caught:
        transform({"operation": "map", "transformFunction": "item => {\n  return item.;\n}"}, [1])
    assert caught.value.context["line"] == 2 and caught.value.node_id == "node"
    with pytest.raises(JavaScriptError, match="TypeError"):
        transform({"operation": "map", "transformFunction": "item => item.a.b"}, [{}])
    with pytest.raises(NodeTimeout):
        transform({"operation": "map", "transformFunction": "x => { for (;;) {} }"}, [1])


def test_an_expression_and_a_javascript_function_together_are_refused() -> None:
    with pytest.raises(FlowValidationError, match="not both"):
        transform({"operation": "map", "expression": "item", "transformFunction": "x => x"}, [1])


def test_without_this_package_validation_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "atomiton_lang_js" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(FlowValidationError) as caught:
        transform({"operation": "map", "transformFunction": "item => item * 2"}, [1])
    (problem,) = caught.value.report.errors
    assert problem.location.endswith("parameters.transformFunction")
    assert "pip install atomiton-lang-js" in problem.message
    # an operation that does not run the function does not need the package
    assert transform({"operation": "reverse", "transformFunction": "x => x * 2"}, [1, 2]) == [
        2,
        1,
    ]
