"""The original's common node fields (``label``, ``description``; its
``createNodeParameters.ts`` base schema, read at commit 259a5052) are accepted on every node
type, kept in the flow, and never reach the node."""

from __future__ import annotations

from atomiton_core import Conductor, dumps_flow, loads_flow
from atomiton_core.flow.settings import own_parameters
from atomiton_core.nodes.definition import Parameters

FLOW = """
id: labelled
name: Labelled
nodes:
  - id: a
    type: const
    parameters: {value: [3, 1, 2], label: Numbers, description: what the list starts as}
  - id: b
    type: transform
    parameters: {operation: sort, label: Sorted, description: ascending}
edges:
  - {source: a, target: b}
"""


def test_label_and_description_are_accepted_on_every_node(conductor: Conductor) -> None:
    flow = loads_flow(FLOW)
    assert conductor.validate(flow).problems == []
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.outputs == {"b": {"output": [1, 2, 3]}}
    assert "label: Sorted" in dumps_flow(flow)


class _Labelled(Parameters):
    label: str = ""


def test_a_type_that_declares_one_of_them_is_given_it() -> None:
    """A plugin's own ``label`` parameter keeps working; the settings never reach a node."""
    given = {"label": "L", "description": "D", "timeout": 10, "x": 1}
    assert own_parameters(given, _Labelled) == {"label": "L", "x": 1}
    assert own_parameters(given, Parameters) == {"x": 1}


def test_a_type_the_original_renamed_is_named_with_its_new_name(conductor: Conductor) -> None:
    """The original replaced ``composite`` by ``group`` (``csv-reader``, ``image-composite``
    likewise): validation says so, and ``atomiton migrate`` rewrites it."""
    from atomiton_core.flow.migrate import migrate

    text = "id: c\nname: C\nnodes:\n  - {id: box, type: composite, parameters: {parallel: false}}\n"
    (problem,) = conductor.validate(loads_flow(text)).errors
    assert problem.code == "NODE_TYPE_NOT_FOUND"
    assert "the original Atomiton's 'composite' is 'group' here" in (problem.hint or "")
    done = migrate(text, conductor.catalogue)
    assert done.flow().nodes[0].type == "group"
    assert conductor.validate(done.flow()).errors == []


def test_a_problem_with_an_original_name_is_reported_where_the_flow_wrote_it(
    conductor: Conductor,
) -> None:
    """``flattenDepth`` becomes ``depth`` (bounded 1..10 as in the original): out of bounds,
    validation points at ``flattenDepth``, the key in the file."""
    flow = loads_flow(
        "id: f\nname: F\nnodes:\n  - {id: xs, type: const, parameters: {value: [[1]]}}\n"
        "  - {id: t, type: transform, parameters: {operation: flatten, flattenDepth: 11}}\n"
        "edges:\n  - {source: xs, target: t}\n"
    )
    (problem,) = conductor.validate(flow).errors
    assert problem.location == "nodes[1].parameters.flattenDepth" and problem.line == 5
    assert "less than or equal to 10" in problem.message
