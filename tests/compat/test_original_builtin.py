"""The built-in node types take the original Atomiton's parameters with the original's meaning
and defaults (docs/compatibility.md, part "parameter names and defaults").

Where each name, default and bound comes from, in the original (github.com/Develonaut/atomiton;
the commit is that of the stored version read):

- transform: ``packages/@atomiton/nodes/src/definitions/transform/schema.ts`` (259a5052),
  ``src/executables/transform/index.ts`` (36eef507) and ``operations.ts`` (259a5052),
  ``docs/nodes/transform.md`` (cfdd80c3: groupKey, limitCount, skipCount, sliceStart, sliceEnd);
- loop: ``src/definitions/loop/schema.ts`` (259a5052), ``src/executables/loop/*.ts`` (259a5052),
  ``docs/nodes/loop.md`` (2be05ff1: count, array, collectResults);
- parallel: ``src/definitions/parallel/index.ts`` (259a5052), ``src/executables/parallel/
  operations.ts`` (46b0171c), ``docs/nodes/parallel.md`` (2be05ff1);
- group: ``src/definitions/group/index.ts`` (27f41ad0), ``src/executables/group/*.ts``;
- edit-fields: ``src/schemas/edit-fields/index.ts`` (41552c7b);
- code: ``src/definitions/code/schema.ts`` and ``src/executables/code/utils.ts`` (259a5052);
- the example flows: ``tests/fixtures/atomiton-flows/`` (commit 723faa4b).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import Conductor, Edge, Flow, NodeSpec, create_conductor, loads_flow
from atomiton_core.nodes.builtin.code import convert_result
from atomiton_core.nodes.builtin.data import TransformParams

ORIGINALS = Path(__file__).parents[1] / "fixtures" / "atomiton-flows"
RECORDS = [
    {"name": "pear", "price": 3, "type": "fruit"},
    {"name": "carrot", "price": 1, "type": "veggie"},
    {"name": "fig", "price": 2, "type": "fruit"},
]
HAS_JS = importlib.util.find_spec("atomiton_lang_js") is not None


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


def problems(conductor: Conductor, flow: Any) -> dict[str, Any]:
    """Validation's problems by location."""
    return {p.location: p for p in conductor.validate(flow).problems}


def one_node(type_id: str, parameters: dict[str, Any]) -> Flow:
    return Flow.from_data(
        {"id": "f", "name": "F", "nodes": [{"id": "n", "type": type_id, "parameters": parameters}]}
    )


# -- transform -------------------------------------------------------------------------------


def test_sort_key_and_direction(conductor: Conductor) -> None:
    """``sortKey`` is a property name (``expression: item.price`` here), ``sortDirection`` is
    ``order``; without a key primitives sort by themselves (transform/fields.ts)."""
    out = run_transform(conductor, RECORDS, operation="sort", sortKey="price", sortDirection="desc")
    assert [r["name"] for r in out] == ["pear", "fig", "carrot"]
    assert run_transform(conductor, [3, 1, 2], operation="sort", sortDirection="desc") == [3, 2, 1]
    # an item without the property sorts last (the original compared it as undefined)
    mixed = [{"price": 2}, {"other": 1}, {"price": 1}]
    assert run_transform(conductor, mixed, operation="sort", sortKey="price") == [
        {"price": 1},
        {"price": 2},
        {"other": 1},
    ]
    # a property name that is no identifier, or the name of a dict method, is still a key
    odd = [{"unit price": 2, "items": 1}, {"unit price": 1, "items": 2}]
    assert run_transform(conductor, odd, operation="sort", sortKey="unit price") == odd[::-1]
    assert run_transform(conductor, odd, operation="sort", sortKey="items") == odd


def test_group_key_group_by_and_the_sort_key_fallback(conductor: Conductor) -> None:
    """``groupKey`` (docs/nodes/transform.md), ``groupBy`` (schema.ts), else ``sortKey``."""
    for name in ("groupKey", "groupBy", "sortKey"):
        groups = run_transform(conductor, RECORDS, operation="group", **{name: "type"})
        assert {k: [r["name"] for r in v] for k, v in groups.items()} == {
            "fruit": ["pear", "fig"],
            "veggie": ["carrot"],
        }
    both = run_transform(conductor, RECORDS, operation="group", groupKey="type", sortKey="name")
    assert set(both) == {"fruit", "veggie"}  # groupKey first, as the original looked
    # an item without the property: the original's String(undefined)
    assert run_transform(conductor, [{"a": 1}], operation="group", groupKey="type") == {
        "undefined": [{"a": 1}]
    }


def test_flatten_depth_and_its_bounds(conductor: Conductor) -> None:
    """``flattenDepth`` is ``depth``, 1-10 as the original declared (default 1)."""
    nested = [[1, [2, [3]]], 4]
    assert run_transform(conductor, nested, operation="flatten") == [1, [2, [3]], 4]
    assert run_transform(conductor, nested, operation="flatten", flattenDepth=2) == [1, 2, [3], 4]
    assert run_transform(conductor, nested, operation="flatten", flattenDepth=10) == [1, 2, 3, 4]
    problem = problems(conductor, one_node("transform", {"operation": "flatten", "depth": 11}))
    assert problem["nodes[0].parameters.depth"].node_id == "n"
    assert "less than or equal to 10" in problem["nodes[0].parameters.depth"].message


def test_limit_skip_and_slice_counts(conductor: Conductor) -> None:
    """``limitCount`` / ``skipCount`` are the ``count`` of their operation (the other one,
    which the original ignored, is dropped); ``sliceStart`` / ``sliceEnd`` are start / end."""
    items = list(range(10))
    assert run_transform(conductor, items, operation="limit", limitCount=3) == [0, 1, 2]
    assert run_transform(conductor, items, operation="skip", skipCount=7) == [7, 8, 9]
    both = {"limitCount": 2, "skipCount": 8}
    assert run_transform(conductor, items, operation="limit", **both) == [0, 1]
    assert run_transform(conductor, items, operation="skip", **both) == [8, 9]
    assert run_transform(conductor, items, operation="slice", sliceStart=2, sliceEnd=5) == [2, 3, 4]
    assert run_transform(conductor, items, operation="slice", sliceStart=5) == [5, 6, 7, 8, 9]
    # limitCount/skipCount left on an operation that does not read them change nothing
    assert run_transform(conductor, [1, 2], operation="reverse", limitCount=1) == [2, 1]


def test_without_a_function_map_is_the_identity_filter_keeps_truthy_reduce_adds(
    conductor: Conductor,
) -> None:
    """The original's defaults: ``transformFunction: item => item``, ``reduceFunction:
    (acc, item) => acc + item``, ``reduceInitial: "0"`` (schema.ts)."""
    assert run_transform(conductor, RECORDS) == RECORDS  # operation defaults to map
    assert run_transform(conductor, [0, 1, "", "a", None], operation="filter") == [1, "a"]
    assert run_transform(conductor, [1, 2, 3], operation="reduce") == 6
    assert run_transform(conductor, [1, 2], operation="reduce", reduceInitial="10") == 13
    assert run_transform(conductor, [1, 2], operation="reduce", expression="acc * 10 + item") == 12


def test_the_originals_default_functions_need_no_javascript() -> None:
    """What the original's editor saved by default runs here without atomiton-lang-js."""
    params = TransformParams.model_validate(
        {"operation": "map", "transformFunction": "item  =>  item"}
    )
    assert params.transform_function is None and params.javascript() is None
    params = TransformParams.model_validate(
        {"operation": "reduce", "reduceFunction": "(acc, item) => acc + item"}
    )
    assert params.reduce_function is None and params.javascript() is None
    kept = TransformParams.model_validate({"operation": "map", "transformFunction": "x => x + 1"})
    assert kept.transform_function == "x => x + 1"


def test_an_original_name_and_ours_together_are_refused(conductor: Conductor) -> None:
    for parameters in (
        {"operation": "sort", "sortKey": "price", "expression": "item.name"},
        {"operation": "limit", "limitCount": 2, "count": 3},
        {"operation": "sort", "sortDirection": "asc", "order": "desc"},
    ):
        problem = problems(conductor, one_node("transform", parameters))["nodes[0].parameters"]
        assert problem.node_id == "n" and "give one of them" in problem.message


def test_the_data_transform_flow_is_told_what_to_do_with_its_snippets(
    conductor: Conductor,
) -> None:
    """The original's transform never read ``expression``, ``code``, ``inputParams``,
    ``returnType``, ``async``, ``inputType`` or ``outputType`` (executables/transform/
    index.ts reads operation and the functions only): it passed the list through, its default
    map ``item => item``. Validation says so, at each parameter, with what to do instead."""
    found = problems(conductor, ORIGINALS / "data-transform.flow.yaml")
    expression = found["nodes[1].parameters.expression"]
    assert expression.node_id == "filter-transform" and expression.code == "INVALID_PARAMETER"
    assert "this is JavaScript" in expression.message
    assert "'javascript'" in expression.message and "item.active == 'true'" in expression.message
    assert "never read 'inputType'" in found["nodes[1].parameters.inputType"].message
    code = found["nodes[2].parameters.code"]
    assert code.node_id == "aggregate-code" and "never read 'code'" in code.message
    assert "type 'javascript'" in code.message
    for name in ("inputParams", "returnType", "async"):
        assert f"never read {name!r}" in found[f"nodes[2].parameters.{name}"].message
    assert ("pip install atomiton-lang-js" in code.message) is not HAS_JS


@pytest.mark.skipif(not HAS_JS, reason="atomiton-lang-js is not installed")
def test_the_advice_runs_the_snippets_as_their_author_meant(tmp_path: Path) -> None:
    """As ``javascript`` nodes, the flow's two snippets run as written."""
    flow = loads_flow(ORIGINALS.joinpath("data-transform.flow.yaml").read_text())
    filter_node, code_node = flow.nodes[1], flow.nodes[2]
    rows = [
        {"active": "true", "amount": "10"},
        {"active": "false", "amount": "5"},
        {"active": "true", "amount": "2.5"},
    ]
    advised = Flow.from_data(
        {
            "id": "advised",
            "name": "Advised",
            "nodes": [
                {"id": "rows", "type": "const", "parameters": {"value": rows}},
                {
                    "id": "active",
                    "type": "javascript",
                    "parameters": {"code": filter_node.parameters["expression"]},
                },
                {
                    "id": "totals",
                    "type": "javascript",
                    "parameters": {
                        k: code_node.parameters[k]
                        for k in ("code", "inputParams", "returnType", "async")
                    },
                },
            ],
            "edges": [
                {"source": "rows", "target": "active"},
                {"source": "active", "target": "totals"},
            ],
        }
    )
    with create_conductor(str(tmp_path), record_runs=False) as c:
        result = c.run(advised)
    assert result.ok, result.error
    assert result.outputs["totals"]["output"] == {"total": 12.5, "count": 2, "average": 6.25}


def test_edit_fields_takes_values_as_json_text(conductor: Conductor) -> None:
    """The original's ``values``: a mapping or the text of one (schemas/edit-fields)."""
    flow = one_node("edit-fields", {"values": '{"a": 1, "b": "{{ 1 + 1 }}"}'})
    out = conductor.run(flow).outputs["n"]["output"]
    assert out["a"] == 1 and str(out["b"]) == "2"  # a template, rendered
    found = problems(conductor, one_node("edit-fields", {"values": "[1, 2]"}))
    assert "JSON object" in found["nodes[0].parameters.values"].message


# -- loop ------------------------------------------------------------------------------------


def loop_flow(parameters: dict[str, Any], child: dict[str, Any] | None = None) -> Flow:
    """A loop whose child ``c`` (a ``test.sleep`` by default) reports its input and times."""
    return Flow.from_data(
        {
            "id": "l",
            "name": "L",
            "nodes": [
                {
                    "id": "loop",
                    "type": "loop",
                    "parameters": parameters,
                    "nodes": [child or {"id": "c", "type": "test.sleep"}],
                    "edges": [
                        {"source": "loop", "sourceHandle": "item", "target": "c"},
                        {"source": "c", "target": "loop", "targetHandle": "got"},
                        {
                            "source": "c",
                            "sourceHandle": "started",
                            "target": "loop",
                            "targetHandle": "started",
                        },
                        {
                            "source": "c",
                            "sourceHandle": "ended",
                            "target": "loop",
                            "targetHandle": "ended",
                        },
                    ],
                }
            ],
        }
    )


def run_loop(conductor: Conductor, parameters: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result = conductor.run(loop_flow(parameters, **kw))
    assert result.ok, result.error
    out: dict[str, Any] = result.outputs["loop"]
    return out


def test_times_is_count_and_count_defaults_to_ten(conductor: Conductor) -> None:
    """The original's ``times`` (schema.ts; ``count`` in docs/nodes/loop.md), default 10."""
    assert run_loop(conductor, {"loopType": "times", "times": 3})["got"] == [0, 1, 2]
    assert run_loop(conductor, {"loopType": "times"})["got"] == list(range(10))
    found = problems(conductor, loop_flow({"loopType": "times", "times": 3, "count": 4}))
    assert "give one of them" in found["nodes[0].parameters"].message


def test_continue_on_error_is_the_opposite_of_break_on_error(conductor: Conductor) -> None:
    """``continueOnError`` (schema.ts, default true: ours, ``breakOnError: false``)."""
    child = {"id": "c", "type": "test.raise-if"}
    flow = Flow.from_data(
        {
            "id": "e",
            "name": "E",
            "nodes": [
                {
                    "id": "loop",
                    "type": "loop",
                    "parameters": {"array": ["a", "bad", "c"], "continueOnError": True},
                    "nodes": [child],
                    "edges": [
                        {
                            "source": "loop",
                            "sourceHandle": "item",
                            "target": "c",
                            "targetHandle": "value",
                        },
                        {"source": "c", "target": "loop", "targetHandle": "ok"},
                    ],
                }
            ],
        }
    )
    collected = conductor.run(flow)
    assert collected.ok and collected.outputs["loop"]["ok"] == ["a", None, "c"]
    flow.nodes[0].parameters["continueOnError"] = False
    broken = conductor.run(flow)
    assert broken.status == "failed" and "loop/iteration 2/c" not in broken.nodes


def _overlapping(out: dict[str, Any]) -> int:
    """How many iterations started before the first one ended."""
    return sum(1 for s in out["started"] if s < min(out["ended"]))


def test_parallel_false_runs_one_by_one_and_true_five_at_once(conductor: Conductor) -> None:
    """The original read ``concurrency`` only with ``parallel: true`` (default 5)."""
    child = {"id": "c", "type": "test.sleep", "parameters": {"seconds": 0.1}}
    items = list(range(6))
    one_by_one = run_loop(
        conductor, {"array": items, "parallel": False, "concurrency": 5}, child=child
    )
    assert _overlapping(one_by_one) == 1
    at_once = run_loop(conductor, {"array": items, "parallel": True}, child=child)
    assert _overlapping(at_once) == 5 and at_once["got"] == items


def test_iterate_over_picks_the_list_of_an_input_mapping(conductor: Conductor) -> None:
    """image-processor.flow.yaml: ``iterateOver: files`` over a file-system list's output."""
    listing = {"operation": "list", "files": [{"name": "a.jpg"}, {"name": "b.png"}], "count": 2}
    flow = loop_flow({"iterateOver": "files"})
    flow.nodes.insert(0, NodeSpec(id="ls", type="test.sleep", parameters={"value": listing}))
    flow.edges.append(Edge(source="ls", target="loop", target_handle="input"))
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.outputs["loop"]["got"] == listing["files"]
    flow.nodes[1].parameters["iterateOver"] = "data.users"
    missing = conductor.run(flow)
    assert missing.error is not None and "no field 'data'" in missing.error.message
    assert "operation, files, count" in missing.error.message


def test_the_image_processor_loop_and_parallel_parameters_are_understood(
    conductor: Conductor,
) -> None:
    """Its loop (iterateOver, maxIterations, breakOnError) and parallel (concurrency,
    preserveOrder, timeout) parameters are all accepted; its problems lie elsewhere."""
    found = problems(conductor, ORIGINALS / "image-processor.flow.yaml")
    for node_index in (1, 2):
        at = f"nodes[{node_index}].parameters"
        assert not [loc for loc in found if loc.startswith(at)], found


def test_for_range_runs_from_start_to_end_inclusive(conductor: Conductor) -> None:
    """``forRange`` with ``startValue`` 0, ``endValue`` 10, ``stepSize`` 1 by default
    (executables/loop/operations.ts: ``i <= end``)."""
    assert run_loop(conductor, {"loopType": "forRange"})["got"] == list(range(11))
    down = {"loopType": "forRange", "startValue": 3, "endValue": 0, "stepSize": -1.5}
    assert run_loop(conductor, down)["got"] == [3, 1.5, 0]
    found = problems(conductor, loop_flow({"loopType": "forRange", "stepSize": 0}))
    assert "stepSize other than 0" in found["nodes[0].parameters"].message


def test_do_while_runs_once_and_until_stops_when_its_condition_holds(
    conductor: Conductor,
) -> None:
    """``doWhile`` and ``until`` (executables/loop/baseExecutor.ts)."""
    assert run_loop(conductor, {"loopType": "doWhile", "condition": "false"})["got"] == [0]
    assert run_loop(conductor, {"loopType": "while", "condition": "false"})["got"] == []
    until = run_loop(conductor, {"loopType": "until", "condition": "iteration >= 3"})
    assert until["got"] == [0, 1, 2]


def test_batch_size_gives_each_iteration_a_batch(conductor: Conductor) -> None:
    """``batchSize`` (schema.ts 1-1000, default 1; docs/nodes/loop.md: chunks of that size)."""
    out = run_loop(conductor, {"array": [1, 2, 3, 4, 5], "batchSize": 2})
    assert out["got"] == [[1, 2], [3, 4], [5]]
    found = problems(conductor, loop_flow({"loopType": "times", "batchSize": 2}))
    assert "forEach and forRange" in found["nodes[0].parameters"].message
    found = problems(conductor, loop_flow({"batchSize": 1001}))
    assert "nodes[0].parameters.batchSize" in found


def test_delay_waits_between_iterations(conductor: Conductor) -> None:
    """``delay`` in ms (schema.ts 0-60000, default 0)."""
    out = run_loop(conductor, {"array": [1, 2, 3], "delay": 100})
    starts, ends = out["started"], out["ended"]
    assert all(starts[i + 1] - ends[i] >= 0.095 for i in range(2))
    found = problems(conductor, loop_flow({"delay": 60_001}))
    assert "nodes[0].parameters.delay" in found


def test_max_iterations_stays_ten_thousand_and_refuses_to_cut(conductor: Conductor) -> None:
    """Deliberately different: the original's default 1000 (and cap 10000) cut a longer
    list silently; here the default is 10 000 and a longer list is an error."""
    out = run_loop(conductor, {"array": list(range(1500))})
    assert out["got"] == list(range(1500))
    result = conductor.run(loop_flow({"array": [1, 2, 3], "maxIterations": 2}))
    assert result.error is not None and "maxIterations (2)" in result.error.message


# -- parallel --------------------------------------------------------------------------------


def parallel_flow(parameters: dict[str, Any], child: dict[str, Any], handle: str = "value") -> Flow:
    return Flow.from_data(
        {
            "id": "p",
            "name": "P",
            "nodes": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "parameters": parameters,
                    "nodes": [child],
                    "edges": [
                        {
                            "source": "fan",
                            "sourceHandle": "item",
                            "target": "c",
                            "targetHandle": handle,
                        },
                        {"source": "c", "target": "fan", "targetHandle": "got"},
                    ],
                }
            ],
        }
    )


def test_the_default_strategy_is_all_settled(conductor: Conductor) -> None:
    """``strategy`` defaults to allSettled (definitions/parallel/index.ts)."""
    flow = parallel_flow({"operations": ["a", "bad", "c"]}, {"id": "c", "type": "test.raise-if"})
    result = conductor.run(flow)
    assert result.ok, result.error
    out = result.outputs["fan"]
    assert out["got"] == ["a", None, "c"]
    assert [s["status"] for s in out["settled"]] == ["fulfilled", "rejected", "fulfilled"]
    assert [e["index"] for e in out["errors"]] == [1]


def test_the_default_concurrency_is_five(conductor: Conductor) -> None:
    """``concurrency`` defaults to 5 (definitions/parallel/index.ts)."""
    flow = Flow.from_data(
        {
            "id": "p",
            "name": "P",
            "nodes": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "parameters": {"operations": list(range(7))},
                    "nodes": [{"id": "c", "type": "test.sleep", "parameters": {"seconds": 0.1}}],
                    "edges": [
                        {
                            "source": "c",
                            "sourceHandle": "started",
                            "target": "fan",
                            "targetHandle": "started",
                        },
                        {
                            "source": "c",
                            "sourceHandle": "ended",
                            "target": "fan",
                            "targetHandle": "ended",
                        },
                    ],
                }
            ],
        }
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    assert _overlapping(result.outputs["fan"]) == 5


def test_preserve_order_is_maintain_order(conductor: Conductor) -> None:
    """image-processor.flow.yaml's ``preserveOrder`` is the original's ``maintainOrder``."""
    child = {"id": "c", "type": "test.wait"}
    flow = parallel_flow({"operations": [0.2, 0.01], "preserveOrder": False}, child)
    inner = flow.nodes[0].edges
    assert inner is not None
    inner.append(Edge(source="fan", source_handle="item", target="c", target_handle="seconds"))
    assert conductor.run(flow).outputs["fan"]["got"] == [0.01, 0.2]
    flow.nodes[0].parameters["preserveOrder"] = True
    assert conductor.run(flow).outputs["fan"]["got"] == [0.2, 0.01]
    flow.nodes[0].parameters["maintainOrder"] = True
    found = problems(conductor, flow)
    assert "give one of them" in found["nodes[0].parameters"].message


def test_fail_fast_starts_nothing_after_a_failure(conductor: Conductor) -> None:
    """``failFast`` (definitions/parallel/index.ts, default false): after the first failure no
    operation starts; those running finish (executables/parallel/operations.ts)."""
    ops = ["a", "bad", "c", "d"]
    child = {"id": "c", "type": "test.raise-if"}
    flow = parallel_flow({"operations": ops, "failFast": True, "concurrency": 1}, child)
    result = conductor.run(flow)
    assert result.ok, result.error
    out = result.outputs["fan"]
    assert [s["status"] for s in out["settled"]] == ["fulfilled", "rejected", "skipped", "skipped"]
    assert out["got"] == ["a", None, None, None]
    assert "fan/operation 2/c" not in result.nodes
    flow.nodes[0].parameters.update(concurrency=2, maintainOrder=False)
    out = conductor.run(flow).outputs["fan"]
    assert sorted(s["index"] for s in out["settled"]) == [0, 1, 2, 3]
    assert out["settled"][-1]["status"] == "skipped"
    flow.nodes[0].parameters.update(failFast=False)
    out = conductor.run(flow).outputs["fan"]
    assert [s["status"] for s in out["settled"]].count("skipped") == 0


def test_timeout_on_a_parallel_holds_the_whole_node(conductor: Conductor) -> None:
    """image-processor.flow.yaml's ``timeout: 30000`` is the original's base parameter of
    every node (the node's time limit), not a per-operation one (``operationTimeout``)."""
    child = {"id": "c", "type": "test.sleep", "parameters": {"seconds": 0.1}}
    flow = parallel_flow(
        {"operations": [1, 2, 3, 4], "concurrency": 1, "timeout": 250}, child, handle="input"
    )
    result = conductor.run(flow)
    error = result.nodes["fan"].error
    assert error is not None and error.code == "TIMEOUT"  # 4 x 0.1 s > 250 ms, each < 250 ms


# -- group -----------------------------------------------------------------------------------


def test_a_group_runs_independent_children_at_once_by_default(conductor: Conductor) -> None:
    """Deliberately different: the original's group defaulted to ``parallel: false``; here
    children follow their edges, so running independent ones at once changes no output."""
    flow = loads_flow(
        """
id: g
name: G
nodes:
  - id: g
    type: group
    nodes:
      - {id: a, type: test.sleep, parameters: {seconds: 0.1, value: 1}}
      - {id: b, type: test.sleep, parameters: {seconds: 0.1, value: 2}}
"""
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    a, b = result.nodes["g/a"].outputs, result.nodes["g/b"].outputs
    assert b["started"] < a["ended"] and a["started"] < b["ended"]


# -- code ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_conductor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conductor]:
    with create_conductor(str(tmp_path_factory.mktemp("code")), process_workers=1) as c:
        yield c


@pytest.mark.parametrize(
    ("value", "return_type", "expected"),
    [
        (None, "string", ""),
        (True, "string", "true"),
        (3.0, "string", "3"),
        ({"a": 1}, "string", '{"a": 1}'),
        ("42", "number", 42),
        ("4.5", "number", 4.5),
        ("forty", "number", 0),
        (None, "number", 0),
        ([], "boolean", True),
        ("", "boolean", False),
        (0, "boolean", False),
        ('{"a": 1}', "object", {"a": 1}),
        ("nope", "object", {}),
        (None, "object", None),
        ("[1, 2]", "array", [1, 2]),
        ("x", "array", ["x"]),
        (5, "array", [5]),
        ({"kept": 1}, "auto", {"kept": 1}),
    ],
)
def test_return_type_converts_as_the_original_did(
    value: Any, return_type: str, expected: Any
) -> None:
    """``returnType`` (definitions/code/schema.ts, default auto; executables/code/utils.ts
    ``convertToType``), lists and mappings written as JSON where JavaScript wrote
    ``[object Object]``."""
    assert convert_result(value, return_type) == expected


def test_return_type_on_a_code_node(code_conductor: Conductor) -> None:
    flow = one_node("code", {"code": "return '17'", "returnType": "number"})
    result = code_conductor.run(flow)
    assert result.ok, result.error
    assert result.outputs["n"]["result"] == 17


def test_the_originals_javascript_in_a_code_node_is_pointed_to_the_javascript_node(
    code_conductor: Conductor,
) -> None:
    """The original's code node ran JavaScript (definitions/code/schema.ts); ours runs Python."""
    found = problems(code_conductor, one_node("code", {"code": "input.items.map(x => x * 2);"}))
    message = found["nodes[0].parameters.code"].message
    assert "syntax error" in message and "type 'javascript'" in message
    python = problems(code_conductor, one_node("code", {"code": "return [x * 2 for x in input]"}))
    assert "nodes[0].parameters.code" not in python
