"""What a ``flow`` node gives the flow it runs is checked like a run's inputs: each edge into
it names a variable the stored flow declares (validation says which do not, with the closest),
and each value is converted to its variable's type when the node runs."""

from __future__ import annotations

from atomiton_core import Conductor, NodeStatus, loads_flow

SUB = """
id: adder
name: Adder
variables: {n: {type: number, defaultValue: 0}, label: {type: string, defaultValue: x}}
nodes:
  - {id: add, type: edit-fields, parameters: {values: {sum: "{{ n + 1 }}"}, keepOnlySet: true}}
"""

OUTER = """
id: outer
name: Outer
nodes:
  - {id: given, type: const, parameters: {value: "41"}}
  - {id: call, type: flow, parameters: {flowId: adder}}
edges:
  - {source: given, sourceHandle: output, target: call, targetHandle: PORT}
"""


def _outer(port: str) -> str:
    return OUTER.replace("PORT", port)


def test_an_edge_into_a_flow_node_names_a_variable_of_that_flow(conductor: Conductor) -> None:
    assert conductor.storage is not None
    conductor.storage.save(loads_flow(SUB))
    assert conductor.validate(loads_flow(_outer("n"))).ok
    (problem,) = conductor.validate(loads_flow(_outer("m"))).errors
    assert problem.code == "UNKNOWN_VARIABLE" and problem.node_id == "call"
    assert problem.location == "edges[0].targetHandle"
    assert "flow 'adder', which declares no variable 'm'" in problem.message
    assert "its variables: label, n" in (problem.hint or "")


def test_a_value_given_to_a_sub_flow_takes_its_variable_s_type(conductor: Conductor) -> None:
    assert conductor.storage is not None
    conductor.storage.save(loads_flow(SUB))
    result = conductor.run(loads_flow(_outer("n")))
    assert result.ok, result.error
    assert result.outputs["call"] == {"add": {"output": {"sum": 42}}}


def test_a_sub_flow_changed_after_planning_refuses_what_it_no_longer_declares(
    conductor: Conductor,
) -> None:
    assert conductor.storage is not None
    conductor.storage.save(loads_flow(SUB))
    plan = conductor.prepare(loads_flow(_outer("label")))
    conductor.storage.save(loads_flow(SUB.replace("label: {type: string, defaultValue: x}", "")))
    result = conductor.run(plan)
    assert not result.ok
    failed = result.nodes["call"]
    assert failed.status is NodeStatus.FAILED and failed.error is not None
    assert failed.error.code == "INVALID_VARIABLE"
    assert "node 'call' runs flow 'adder'" in failed.error.message
    assert "'label'" in failed.error.message
