"""The javascript node through the real conductor: its parameters, its ports, its limits, and
flows that use it as the original's code and transform nodes were used."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from atomiton_core import (
    ConfigurationError,
    ExecutionStatus,
    FlowValidationError,
    NodeTimeout,
    create_conductor,
    loads_flow,
)
from atomiton_core.errors import InvalidInput
from atomiton_core.testing import run_node

from atomiton_lang_js import (
    JavaScriptError,
    JavaScriptMemoryError,
    JavaScriptSyntaxError,
    JavaScriptTimeout,
    javascript,
    plugin,
)

ROWS = [
    {"name": "a", "active": "true", "amount": "10.5"},
    {"name": "b", "active": "false", "amount": "3"},
    {"name": "d", "active": "true", "amount": "4.5"},
]


def run(params: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    return run_node(javascript, params, **inputs)


def test_the_original_code_node_parameters() -> None:
    code = """// Aggregate totals
const total = data.reduce((sum, row) => {
  return sum + parseFloat(row.amount || 0);
}, 0);

return {
  total: total,
  count: data.length,
  average: total / data.length
};
"""
    params = {"code": code, "inputParams": "data", "returnType": "object", "async": False}
    out = run(params, input=ROWS)
    expected = {"total": 18.0, "count": 3, "average": 6.0}
    assert out == {"output": expected, "result": expected, "stdout": ""}


def test_operations_over_the_input_list() -> None:
    assert run({"code": "row => row.active === 'true'", "operation": "filter"}, input=ROWS)[
        "output"
    ] == [ROWS[0], ROWS[2]]
    assert run({"code": "item => item.name", "operation": "map"}, input=ROWS)["output"] == [
        "a",
        "b",
        "d",
    ]
    total = {"code": "(s, r) => s + Number(r.amount)", "operation": "reduce", "initial": 1}
    assert run(total, input=ROWS)["output"] == 19.0
    with pytest.raises(InvalidInput, match="needs a list"):
        run({"code": "x => x", "operation": "map"}, input={"not": "a list"})


def test_the_names_the_code_sees() -> None:
    code = "[input, data, other, inputs.other, vars.who, typeof inputs['a-b'], inputs['a-b']]"
    out = run({"code": code}, input=1, other=2, inputs={"a-b": 3})
    assert out["output"] == [1, 1, 2, 2, None, "number", 3]
    # inputParams: each name holds its port, or else the input
    out = run({"code": "[rows, extra]", "inputParams": "rows, extra"}, input=[1], extra="x")
    assert out["output"] == [[1], "x"]


def test_flow_variables_are_vars() -> None:
    conductor = create_conductor(f"memory://js-{uuid.uuid4().hex}", record_runs=False)
    flow = loads_flow(
        """
id: js-vars
name: JS vars
variables:
  rate: {type: number, defaultValue: 2}
nodes:
  - id: js
    type: javascript
    parameters:
      code: vars.rate * 21
"""
    )
    result = conductor.run(flow)
    assert result.status == ExecutionStatus.COMPLETED, result
    assert result.nodes["js"].outputs["output"] == 42


def test_return_type_is_checked() -> None:
    assert run({"code": "'x'", "returnType": "string"})["output"] == "x"
    assert run({"code": "1.5", "returnType": "number"})["output"] == 1.5
    with pytest.raises(JavaScriptError, match="value is array, and returnType says object"):
        run({"code": "data", "returnType": "object"}, input=[1])
    with pytest.raises(JavaScriptError, match="value is null"):
        run({"code": "null", "returnType": "object"})
    assert run({"code": "undefined", "returnType": "auto"})["output"] is None


def test_parameters_are_validated_before_anything_runs() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"code": ""}, "code"),
        ({"code": "1", "inputParams": "a, class"}, "inputParams"),
        ({"code": "1", "operation": "sort"}, "operation"),
        ({"code": "1", "heapLimit": 0}, "heapLimit"),
        ({"code": "1", "timeLimit": -1}, "timeLimit"),
        ({"code": "1", "returnType": "date"}, "returnType"),
    ]
    for params, match in cases:
        with pytest.raises(FlowValidationError, match=match):
            run(params)


def test_errors_carry_the_node_and_the_line() -> None:
    with pytest.raises(JavaScriptSyntaxError) as syntax:
        run({"code": "const a = 1\nconst = 2"})
    assert syntax.value.node_id == "node" and syntax.value.context["line"] == 2
    with pytest.raises(JavaScriptError) as thrown:
        run({"code": "input.x.y"}, input={})
    assert thrown.value.node_id == "node" and thrown.value.context["line"] == 1


def test_time_limit_and_the_node_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(JavaScriptTimeout, match="timeLimit of 200 ms"):
        run({"code": "for (;;) {}", "timeLimit": 200})
    # without timeLimit, the node's timeout is the JavaScript's limit too
    with pytest.raises(NodeTimeout):
        run({"code": "for (;;) {}", "timeout": 300})
    assert time.monotonic() - started < 20


def test_memory_limit_is_the_original_code_nodes_and_needs_no_isolation() -> None:
    code = "const a = []; for (;;) a.push(new Array(1e5).fill(1.5));"
    with pytest.raises(JavaScriptMemoryError, match="heapLimit of 16 MB"):
        run({"code": code, "memoryLimit": 16})
    with pytest.raises(JavaScriptMemoryError, match="heapLimit of 8 MB"):
        run({"code": code, "memoryLimit": 64, "heapLimit": 8})  # the smaller one
    assert run({"code": "1 + 1", "memoryLimit": 16})["output"] == 2


def test_an_isolated_node_may_not_set_memory_limit() -> None:
    with pytest.raises(ConfigurationError, match="memoryLimit on an isolated javascript"):
        run({"code": "1", "isolation": "process", "memoryLimit": 64})


def test_an_isolated_node_runs() -> None:
    assert run({"code": "input * 2", "isolation": "process"}, input=21)["output"] == 42


FLOW = """
id: js-flow
name: JavaScript between other nodes
nodes:
  - id: rows
    type: const
    parameters:
      value:
        - {amount: "1.5", active: "true"}
        - {amount: "2", active: "false"}
        - {amount: "4", active: "true"}
  - id: active
    type: javascript
    parameters:
      code: |
        // Filter only active records
        return data.filter(row => row.active === 'true');
  - id: doubled
    type: javascript
    parameters:
      operation: map
      code: |
        item => ({ ...item, amount: Number(item.amount) * 2 })
  - id: total
    type: javascript
    parameters:
      operation: reduce
      code: (sum, row) => sum + row.amount
      initial: 0
  - id: broken
    type: javascript
    parameters:
      code: "return rows.missing.field"
      continueOnFail: true
  - id: after-broken
    type: javascript
    parameters:
      code: "'never'"
edges:
  - {id: e1, source: rows, sourceHandle: output, target: active, targetHandle: input}
  - {id: e2, source: active, sourceHandle: output, target: doubled, targetHandle: input}
  - {id: e3, source: doubled, sourceHandle: output, target: total, targetHandle: input}
  - {id: e4, source: rows, sourceHandle: output, target: broken, targetHandle: rows}
  - {id: e5, source: broken, sourceHandle: output, target: after-broken, targetHandle: input}
"""


def test_a_flow_of_javascript_nodes_runs_and_a_failing_one_fails_alone() -> None:
    conductor = create_conductor(
        f"memory://js-{uuid.uuid4().hex}", record_runs=False, plugins=[plugin]
    )
    result = conductor.run(loads_flow(FLOW))
    nodes = result.nodes
    assert nodes["total"].outputs["output"] == 11.0
    assert nodes["doubled"].outputs["output"] == [
        {"amount": 3.0, "active": "true"},
        {"amount": 8.0, "active": "true"},
    ]
    assert nodes["broken"].status == "failed"
    assert nodes["broken"].error is not None and nodes["broken"].error.code == "JS_ERROR"
    assert "reading 'field'" in nodes["broken"].error.message
    assert nodes["after-broken"].status == "skipped"
