"""User code off (the server's ``--safe``, ``allowCode: false``) turns JavaScript off too: the
``javascript`` node and a transform's JavaScript function fail with CODE_NOT_ALLOWED, while a
transform's Jinja2 expression still runs."""

from __future__ import annotations

from typing import Any

from atomiton_core import create_conductor, loads_flow

FLOW = """
id: safe-js
name: Safe JS
nodes:
  - {id: xs, type: const, parameters: {value: [1, 2]}}
  - {id: js, type: javascript, parameters: {code: "input.length", continueOnFail: true}}
  - id: fn
    type: transform
    parameters: {operation: map, transformFunction: "x => x * 2", continueOnFail: true}
  - {id: jinja, type: transform, parameters: {operation: map, expression: item * 2}}
edges:
  - {source: xs, target: js}
  - {source: xs, target: fn}
  - {source: xs, target: jinja}
"""


def _run(allow_code: bool) -> dict[str, tuple[str, str | None, Any]]:
    conductor = create_conductor(
        "memory://safe-js", config={"allowCode": allow_code}, record_runs=False
    )
    try:
        result = conductor.run(loads_flow(FLOW))
        return {
            k: (str(v.status), v.error.code if v.error else None, v.outputs)
            for k, v in result.nodes.items()
        }
    finally:
        conductor.close()


def test_javascript_runs_when_user_code_is_allowed() -> None:
    nodes = _run(True)
    assert nodes["js"][2]["output"] == 2
    assert nodes["fn"][2] == {"output": [2, 4]}


def test_javascript_is_refused_when_user_code_is_off() -> None:
    nodes = _run(False)
    for node_id in ("js", "fn"):
        status, code, _ = nodes[node_id]
        assert status == "failed" and code == "CODE_NOT_ALLOWED", (node_id, nodes[node_id])
    assert nodes["jinja"][2] == {"output": [2, 4]}
