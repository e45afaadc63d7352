"""Parameters that are not text (numbers, booleans) take templates over the variables too:
checked at validation over the variables' defaults, rendered and checked as each run starts."""

from __future__ import annotations

from atomiton_core import Conductor, loads_flow

FLOW = """
id: firstn
name: First n
variables:
  n: {type: number, defaultValue: 2}
  free: {type: any, defaultValue: 1}
  asc: {type: boolean, defaultValue: true}
nodes:
  - {id: xs, type: const, parameters: {value: [5, 1, 4, 2, 3]}}
  - id: first
    type: transform
    parameters: {operation: limit, count: "COUNT"}
  - id: sorted
    type: transform
    parameters: {operation: sort, expression: item, order: asc}
edges:
  - {source: xs, target: first}
  - {source: xs, target: sorted}
"""


def _flow(count: str) -> str:
    return FLOW.replace("COUNT", count)


def test_a_number_parameter_takes_a_variable(conductor: Conductor) -> None:
    flow = loads_flow(_flow("{{ n }}"))
    assert conductor.validate(flow).ok
    plan = conductor.prepare(flow)
    runs = [conductor.run(plan, {"n": n}) for n in (3, 1)]  # one plan, rendered per run
    assert [r.outputs["first"]["output"] for r in runs] == [[5, 1, 4], [5]]
    assert conductor.run(plan).outputs["first"]["output"] == [5, 1]  # the default
    assert conductor.run(plan, {"n": "4"}).outputs["first"]["output"] == [5, 1, 4, 2]


def test_a_template_is_checked_at_validation_over_the_defaults(conductor: Conductor) -> None:
    (problem,) = conductor.validate(loads_flow(_flow("{{ nope }}"))).errors
    assert problem.location == "nodes[1].parameters.count" and problem.node_id == "first"
    assert problem.code == "UNDEFINED_NAME"
    (problem,) = conductor.validate(loads_flow(_flow("{{ input.n }}"))).errors
    assert problem.location == "nodes[1].parameters.count"
    assert "cannot be rendered from the flow's variables" in problem.message
    assert "not the node's inputs" in (problem.hint or "")
    (problem,) = conductor.validate(loads_flow(_flow("{{ n * -1 }}"))).errors
    assert "renders -2 from the variables' defaults" in problem.message
    assert "greater than or equal to 0" in problem.message
    assert conductor.validate(loads_flow(_flow("{{ n }}0"))).ok  # "20": a whole number


def test_a_value_that_does_not_fit_fails_the_node_naming_the_parameter(
    conductor: Conductor,
) -> None:
    flow = loads_flow(_flow("{{ free }}"))
    result = conductor.run(flow, {"free": "many"})
    assert not result.ok and result.error is not None
    err = result.nodes["first"].error
    assert err is not None and err.node_id == "first"
    assert "parameter 'count' is the template '{{ free }}', which rendered 'many'" in err.message
    assert "valid integer" in err.message
    assert result.error.node_id == "first" and result.nodes["xs"].status == "completed"
    assert conductor.run(flow, {"free": 2}).outputs["first"]["output"] == [5, 1]


def test_a_const_node_gives_its_value_as_written(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: c\nname: C\nnodes:\n"
        "  - {id: v, type: const, parameters: {value: {a: [1, 2], b: 'not {{ rendered }}'}}}\n"
    )
    assert conductor.run(flow).outputs["v"]["output"] == {"a": [1, 2], "b": "not {{ rendered }}"}


def test_validation_names_an_undefined_name_in_any_template(conductor: Conductor) -> None:
    """The run would fail on it: validation says so first, with the closest variable."""
    flow = loads_flow(
        "id: t\nname: T\nvariables: {who: {defaultValue: x}}\nnodes:\n"
        "  - {id: a, type: edit-fields, parameters: {values: {m: 'hi {{ whom }}', "
        "ok: '{{ input.x }} {{ vars.who }} {{ now }} {{ range(2) | list }}'}}}\n"
        "  - id: l\n    type: loop\n    parameters: {loopType: times, count: 2}\n"
        "    nodes:\n      - {id: c, type: edit-fields, parameters: "
        "{values: {i: '{{ index }} {{ item }} {{ who }}'}}}\n"
    )
    (problem,) = conductor.validate(flow).errors
    assert problem.code == "UNDEFINED_NAME" and problem.node_id == "a"
    assert problem.location == "nodes[0].parameters.values.m"
    assert "reads 'whom'" in problem.message and "did you mean 'who'?" in (problem.hint or "")


def test_validation_refuses_a_template_that_cannot_compile(conductor: Conductor) -> None:
    """A misspelt filter or a broken brace would fail the run: validation names it first."""
    flow = loads_flow(
        "id: t\nname: T\nnodes:\n"
        "  - {id: a, type: edit-fields, parameters: {values: {n: '{{ [1, 2] | ength }}'}}}\n"
        "  - {id: b, type: edit-fields, parameters: {values: {m: '{{ 1 + }}'}}}\n"
        "  - {id: c, type: edit-fields, parameters: {values: {k: '{{ [1] | length }}'}}}\n"
    )
    problems = {p.node_id: p for p in conductor.validate(flow).errors}
    assert sorted(problems) == ["a", "b"]
    assert problems["a"].code == problems["b"].code == "INVALID_TEMPLATE"
    assert "No filter named 'ength'" in problems["a"].message
    assert problems["a"].location == "nodes[0].parameters.values.n"
    assert problems["b"].location == "nodes[1].parameters.values.m"
