"""Validation reports every problem at once, with a stable code and a location."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomiton_core import Conductor, loads_flow, validate, wire

ORIGINALS = sorted((Path(__file__).parents[1] / "fixtures" / "atomiton-flows").glob("*.flow.yaml"))

MANY_PROBLEMS = """
id: broken
name: Broken
nodes:
  - {id: a, type: test.sleep}
  - {id: a, type: test.sleep}
  - {id: ghost, type: no-such-type}
  - {id: add, type: test.add, parameters: {timeout: -5}}
  - {id: t, type: transform, parameters: {operation: explode, expresion: x}}
  - {id: t2, type: transform, parameters: {operation: group}}
  - {id: c1, type: test.sleep}
  - {id: c2, type: test.sleep}
  - {id: c3, type: test.sleep}
edges:
  - {id: e1, source: a, target: nowhere}
  - {id: e2, source: a, target: add, targetHandle: c}
  - {id: e3, source: a, sourceHandle: nope, target: add, targetHandle: a}
  - {id: e4, source: c1, target: c2}
  - {id: e5, source: c2, target: c3}
  - {id: e6, source: c3, target: c1}
  - {id: e6, source: a, target: t2}
"""


def test_every_problem_is_reported_with_code_and_location(conductor: Conductor) -> None:
    report = validate(loads_flow(MANY_PROBLEMS), conductor.catalogue)
    assert not report.ok
    got = {(p.code, p.location) for p in report.problems}
    expected = {
        ("DUPLICATE_ID", "nodes[1].id"),
        ("NODE_TYPE_NOT_FOUND", "nodes[2].type"),
        ("INVALID_PARAMETER", "nodes[3].parameters.timeout"),
        ("INVALID_PARAMETER", "nodes[4].parameters.operation"),
        ("UNKNOWN_PARAMETER", "nodes[4].parameters.expresion"),
        ("INVALID_PARAMETER", "nodes[5].parameters"),
        ("NODE_NOT_FOUND", "edges[0].target"),
        ("PORT_NOT_FOUND", "edges[1].targetHandle"),
        ("PORT_NOT_FOUND", "edges[2].sourceHandle"),
        ("DUPLICATE_ID", "edges[6].id"),
        ("CIRCULAR_DEPENDENCY", "edges"),
        ("MISSING_REQUIRED_INPUT", "nodes[4]"),
    }
    assert expected <= got, expected - got
    by_code = {p.code: p for p in report.problems}
    cycle = by_code["CIRCULAR_DEPENDENCY"]
    assert "c1 -> c2 -> c3 -> c1" in cycle.message
    unknown = by_code["UNKNOWN_PARAMETER"]
    assert unknown.node_id == "t" and unknown.hint == "did you mean 'expression'?"
    assert (
        "did you mean" in (by_code["NODE_NOT_FOUND"].hint or "")
        or by_code["NODE_NOT_FOUND"].hint is None
    )
    text = str(report)
    assert "broken" in text and "[CIRCULAR_DEPENDENCY]" in text
    data = wire.dump(report)
    assert data["valid"] is False and len(data["problems"]) == len(report.problems)


def test_a_valid_flow_has_an_empty_report(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: ok\nname: OK\nnodes:\n  - {id: a, type: test.sleep}\n  - {id: b, type: test.add}\n"
        "edges:\n  - {source: a, target: b, targetHandle: a}\n"
    )
    report = conductor.validate(flow)
    assert report.ok and report.problems == []
    assert str(report) == "flow 'ok' is valid"


def test_one_port_takes_one_edge_unless_multiple(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: dup
name: Dup
nodes:
  - {id: a, type: test.sleep}
  - {id: b, type: test.sleep}
  - {id: sum, type: test.add}
  - {id: rec, type: test.record}
edges:
  - {source: a, target: sum, targetHandle: a}
  - {source: b, target: sum, targetHandle: a}
  - {source: a, target: rec, targetHandle: deps}
  - {source: b, target: rec, targetHandle: deps}
"""
    )
    report = conductor.validate(flow)
    assert [(p.code, p.location) for p in report.errors] == [
        ("DUPLICATE_INPUT", "edges[1].targetHandle")
    ]


def test_nested_problems_have_nested_locations(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: nested
name: Nested
nodes:
  - id: g
    type: group
    nodes:
      - {id: inner, type: test.add, parameters: {retries: many}}
      - {id: other, type: missing}
    edges:
      - {source: g, sourceHandle: x, target: inner, targetHandle: a}
      - {source: inner, target: other}
      - {source: inner, target: g, targetHandle: result}
  - {id: after, type: test.add}
  - {id: leaf, type: test.sleep, nodes: []}
edges:
  - {source: g, sourceHandle: result, target: after, targetHandle: a}
  - {source: g, sourceHandle: nothing, target: after, targetHandle: b}
"""
    )
    report = conductor.validate(flow)
    got = {(p.code, p.location) for p in report.errors}
    assert ("INVALID_PARAMETER", "nodes[0].nodes[0].parameters.retries") in got
    assert ("NODE_TYPE_NOT_FOUND", "nodes[0].nodes[1].type") in got
    assert ("PORT_NOT_FOUND", "edges[1].sourceHandle") in got  # group has no output 'nothing'
    assert ("NOT_A_CONTAINER", "nodes[2].nodes") in got
    assert not any(p.location == "edges[0].sourceHandle" for p in report.errors)


@pytest.mark.parametrize("path", ORIGINALS, ids=lambda p: p.name)
def test_original_flows_produce_a_report_not_a_crash(path: Path, conductor: Conductor) -> None:
    report = conductor.validate(path)
    assert not report.ok  # they do have problems
    for problem in report.problems:
        assert problem.code and problem.location and problem.message
        assert problem.node_id or problem.edge_id or problem.location == "edges"


def test_hello_world_report_names_the_javascript_and_the_missing_package(
    conductor: Conductor,
) -> None:
    import importlib.util

    report = conductor.validate(ORIGINALS[1])  # hello-world
    problems = {p.location: p for p in report.problems}
    if importlib.util.find_spec("atomiton_lang_js") is None:
        js = problems["nodes[1].parameters.transformFunction"]
        assert js.node_id == "format-content" and "JavaScript" in js.message
        assert "pip install atomiton-lang-js" in js.message
    else:  # installed, it runs the function: nothing to report
        assert not [p for p in report.problems if p.node_id == "format-content"]
    if "file-system" not in conductor.catalogue:
        missing = problems["nodes[2].type"]
        assert missing.code == "NODE_TYPE_NOT_FOUND" and "atomiton-nodes-io" in (missing.hint or "")


def test_the_originals_loop_wiring_is_explained(conductor: Conductor) -> None:
    """The original wired a loop's `item` port to downstream nodes; ours nests them."""
    report = conductor.validate(ORIGINALS[2])  # image-processor
    problem = next(p for p in report.errors if p.location == "edges[1].sourceHandle")
    assert problem.code == "PORT_NOT_FOUND" and problem.edge_id == "loop-to-parallel"
    assert "move the per-item nodes into its `nodes`" in (problem.hint or "")


def test_the_report_marks_each_problem_error_or_warning() -> None:
    from atomiton_core import create_conductor

    with create_conductor("memory://report-marks", record_runs=False) as conductor:
        report = conductor.validate(
            loads_flow(
                "id: r\nname: R\nnodes:\n  - {id: g, type: group}\n  - {id: t, type: nope}\n"
            )
        )
    text = str(report)
    assert text.splitlines()[0] == "flow 'r': 1 error(s), 1 warning(s)"
    assert "  - warning: [EMPTY_CONTAINER]" in text
    assert "  - error: [NODE_TYPE_NOT_FOUND] nodes[1].type (line 5, node 't')" in text
