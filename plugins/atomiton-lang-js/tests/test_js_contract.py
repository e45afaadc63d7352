"""The javascript node against the core's property-based node contract: code that works,
throws, does not parse, loops or gives back what JSON cannot hold, over any JSON input."""

from __future__ import annotations

import pytest
from atomiton_core.testing import check_node, json_values
from hypothesis import strategies as st

from atomiton_lang_js import javascript

CODES = [
    "input",
    "data",
    "JSON.stringify(input)",
    "typeof input",
    "[input, input]",
    "input => input",
    "const copy = structuredClone === undefined ? input : input;\nreturn copy;",
    "if (Array.isArray(input)) { input.push(1); }\nreturn input;",  # mutates its own copy
    "input.a.b.c",
    "throw new Error('no')",
    "throw 42",
    "let x = ;",
    "item => item.",
    "10n",
    "for (;;) {}",
    "new Promise(() => {})",
    "console.log(input); return undefined",
    "Math.random()",
]

params = st.fixed_dictionaries(
    {"code": st.sampled_from(CODES)},
    optional={
        "operation": st.sampled_from(["call", "map", "filter", "reduce"]),
        "initial": json_values(max_leaves=3),
        "inputParams": st.sampled_from(["data", "rows, data", "input"]),
        "returnType": st.sampled_from(["any", "auto", "string", "number", "array", "object"]),
        "async": st.booleans(),
        "timeLimit": st.sampled_from([100, 300]),
        "heapLimit": st.sampled_from([16, 64]),
    },
)
inputs = st.fixed_dictionaries({}, optional={"input": json_values(max_leaves=6)})


@pytest.mark.slow
def test_javascript_keeps_the_node_contract() -> None:
    check_node(javascript, params=params, inputs=inputs, max_examples=30)
