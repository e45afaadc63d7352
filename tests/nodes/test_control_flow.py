"""Control flow that really runs: loop, parallel, if/merge, sub-flows by reference."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from atomiton_core import Conductor, FlowValidationError, NodeStatus, loads_flow, signals


def test_parallel_bounds_concurrency(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: par
name: Parallel
nodes:
  - id: fan
    type: parallel
    parameters: {concurrency: 4, operations: [0, 1, 2, 3, 4, 5, 6, 7]}
    nodes:
      - {id: sleep, type: test.sleep, parameters: {seconds: 0.2}}
      - {id: echo, type: test.wait}
    edges:
      - {source: fan, sourceHandle: item, target: echo, targetHandle: value}
      - {source: echo, target: fan, targetHandle: values}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    elapsed = time.perf_counter() - t0
    assert result.ok, result.error
    assert result.outputs["fan"]["values"] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert 0.38 <= elapsed < 1.2, f"8 x 0.2 s with concurrency 4 took {elapsed:.2f} s"
    assert result.nodes["fan/operation 5/sleep"].status is NodeStatus.COMPLETED


RACE = """
id: race
name: Race
nodes:
  - id: race
    type: parallel
    parameters: {strategy: race, operations: [3.0, 0.05, 2.0]}
    nodes:
      - {id: wait, type: test.wait}
    edges:
      - {source: race, sourceHandle: item, target: wait, targetHandle: seconds}
      - {source: race, sourceHandle: index, target: wait, targetHandle: value}
      - {source: wait, target: race, targetHandle: winner}
"""


def test_race_returns_the_fastest_and_cancels_the_rest(
    conductor: Conductor, log: list[Any]
) -> None:
    async def scenario() -> tuple[Any, float, set[asyncio.Task[Any]]]:
        t0 = time.perf_counter()
        result = await conductor.execute(loads_flow(RACE))
        elapsed = time.perf_counter() - t0
        me = asyncio.current_task()
        return result, elapsed, {t for t in asyncio.all_tasks() if t is not me}

    result, elapsed, left = asyncio.run(scenario())
    assert result.ok, result.error
    assert result.outputs["race"]["winner"] == 1
    assert result.outputs["race"]["winnerIndex"] == 1
    assert elapsed < 1.5  # the losers would take 2 s and 3 s
    assert result.nodes["race/operation 0/wait"].status is NodeStatus.CANCELLED
    assert result.nodes["race/operation 2/wait"].status is NodeStatus.CANCELLED
    assert left == set()  # the losers ended with the race: none is left to finish later
    assert [entry[2] for entry in log if entry[0] == "wait-done"] == [1]


def test_operation_timeout_fails_only_the_slow_one_under_all_settled(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: settled
name: Settled
nodes:
  - id: fan
    type: parallel
    parameters: {strategy: allSettled, operationTimeout: 150, operations: [0.01, 2, 0.02]}
    nodes:
      - {id: wait, type: test.wait}
    edges:
      - {source: fan, sourceHandle: item, target: wait, targetHandle: seconds}
      - {source: fan, sourceHandle: item, target: wait, targetHandle: value}
      - {source: wait, target: fan, targetHandle: got}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert time.perf_counter() - t0 < 1.0
    assert result.ok, result.error
    out = result.outputs["fan"]
    assert out["got"] == [0.01, None, 0.02]
    assert [(e["index"], e["error"]["code"]) for e in out["errors"]] == [(1, "TIMEOUT")]
    assert [s["status"] for s in out["settled"]] == ["fulfilled", "rejected", "fulfilled"]
    assert result.nodes["fan/operation 1/wait"].status is NodeStatus.CANCELLED


def test_strategy_all_fails_on_first_failure(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: all
name: All
nodes:
  - id: fan
    type: parallel
    parameters: {strategy: all, operations: [ok, bad, ok]}
    nodes:
      - {id: check, type: test.raise-if}
    edges:
      - {source: fan, sourceHandle: item, target: check, targetHandle: value}
"""
    )
    result = conductor.run(flow)
    assert result.status == "failed"
    assert result.error is not None and "bad value at fan/operation 1/check" in result.error.message


def test_global_timeout(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: gt
name: Global timeout
nodes:
  - id: fan
    type: parallel
    parameters: {globalTimeout: 150, operations: [5, 5]}
    nodes:
      - {id: wait, type: test.wait}
    edges:
      - {source: fan, sourceHandle: item, target: wait, targetHandle: seconds}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert time.perf_counter() - t0 < 1.0
    assert result.nodes["fan"].error is not None and result.nodes["fan"].error.code == "TIMEOUT"


def test_for_each_over_1000_items_runs_the_body_1000_times_in_order(
    conductor: Conductor, log: list[Any]
) -> None:
    items = list(range(1000))
    flow = loads_flow(
        """
id: each
name: For each
nodes:
  - id: loop-1
    type: loop
    nodes:
      - {id: double, type: transform, parameters: {operation: map, expression: item * 2}}
      - {id: first, type: transform, parameters: {operation: limit, count: 1}}
      - {id: record, type: test.record}
    edges:
      - {source: loop-1, sourceHandle: item, target: double, targetHandle: input}
      - {source: double, target: first}
      - {source: first, target: loop-1, targetHandle: doubled}
      - {source: first, sourceHandle: output, target: record, targetHandle: deps}
"""
    )
    flow.nodes[0].parameters["array"] = items
    result = conductor.run(flow)
    assert result.ok, result.error
    out = result.outputs["loop-1"]
    assert out["iterationCount"] == 1000
    assert out["doubled"] == [[i * 2] for i in items]
    assert len([entry for entry in log if entry[0].endswith("/record")]) == 1000
    assert result.nodes["loop-1/iteration 999/double"].outputs == {"output": [1998]}


def test_loop_over_an_input_with_concurrency_keeps_order(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: each2
name: Concurrent loop
nodes:
  - {id: src, type: test.sleep, parameters: {value: [0.15, 0.01, 0.1, 0.05]}}
  - id: loop
    type: loop
    parameters: {concurrency: 4}
    nodes:
      - {id: wait, type: test.wait}
    edges:
      - {source: loop, sourceHandle: item, target: wait, targetHandle: seconds}
      - {source: loop, sourceHandle: index, target: wait, targetHandle: value}
      - {source: wait, target: loop, targetHandle: index}
edges:
  - {source: src, target: loop, targetHandle: items}
"""
    )
    t0 = time.perf_counter()
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.outputs["loop"]["index"] == [0, 1, 2, 3]
    assert time.perf_counter() - t0 < 0.29


WHILE = """
id: while
name: While
nodes:
  - id: w
    type: loop
    parameters: {loopType: while, condition: "iteration < 5", maxIterations: 100}
    nodes:
      - {id: it, type: edit-fields, parameters: {values: {n: "{{ iteration }}"}, keepOnlySet: true}}
    edges:
      - {source: it, target: w, targetHandle: seen}
"""


def test_while_loop_stops_on_condition(conductor: Conductor) -> None:
    result = conductor.run(loads_flow(WHILE))
    assert result.ok, result.error
    assert result.outputs["w"]["seen"] == [{"n": i} for i in range(5)]


def test_while_loop_stops_on_max_iterations_and_sees_last_result(conductor: Conductor) -> None:
    flow = loads_flow(
        WHILE.replace(
            '"iteration < 5", maxIterations: 100',
            '"lastResult is none or lastResult.seen.n < 1000", maxIterations: 7',
        )
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.outputs["w"]["iterationCount"] == 7
    assert result.outputs["w"]["seen"][-1] == {"n": 6}


def test_loop_errors_collected_or_break(conductor: Conductor) -> None:
    text = """
id: errs
name: Errors
nodes:
  - id: loop
    type: loop
    parameters: {array: [a, bad, c, bad], breakOnError: BREAK}
    nodes:
      - {id: check, type: test.raise-if}
    edges:
      - {source: loop, sourceHandle: item, target: check, targetHandle: value}
      - {source: check, target: loop, targetHandle: ok}
"""
    collected = conductor.run(loads_flow(text.replace("BREAK", "false")))
    assert collected.ok
    out = collected.outputs["loop"]
    assert out["ok"] == ["a", None, "c", None]
    assert [e["index"] for e in out["errors"]] == [1, 3]
    broken = conductor.run(loads_flow(text.replace("BREAK", "true")))
    assert broken.status == "failed"
    assert "iteration 1" in str(broken.error)
    assert "loop/iteration 2/check" not in broken.nodes


def test_loop_too_many_items_is_a_clear_error(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: big\nname: Big\nnodes:\n  - id: l\n    type: loop\n    parameters: {array: [1, 2, 3], maxIterations: 2}\n"
        "    nodes:\n      - {id: x, type: test.add}\n"
    )
    result = conductor.run(flow)
    assert result.error is not None and "maxIterations" in result.error.message


DIAMOND = """
id: diamond
name: Diamond
variables: {threshold: {defaultValue: 10}}
nodes:
  - {id: src, type: test.sleep, parameters: {value: VALUE}}
  - {id: check, type: if, parameters: {condition: "data > threshold"}}
  - {id: big, type: test.wait}
  - {id: big-2, type: test.wait}
  - {id: small, type: test.wait}
  - {id: join, type: merge}
  - {id: first, type: merge, parameters: {mode: first}}
edges:
  - {source: src, target: check, targetHandle: data}
  - {source: check, sourceHandle: "true", target: big, targetHandle: value}
  - {source: big, target: big-2, targetHandle: value}
  - {source: check, sourceHandle: "false", target: small, targetHandle: value}
  - {source: big-2, target: join, targetHandle: data}
  - {source: small, target: join, targetHandle: data}
  - {source: big-2, target: first, targetHandle: data}
  - {source: small, target: first, targetHandle: data}
"""


@pytest.mark.parametrize(
    ("value", "taken", "skipped"),
    [(42, ["big", "big-2"], ["small"]), (3, ["small"], ["big", "big-2"])],
)
def test_if_else_diamond_runs_one_branch_and_merges_once(
    conductor: Conductor, log: list[Any], value: int, taken: list[str], skipped: list[str]
) -> None:
    result = conductor.run(loads_flow(DIAMOND.replace("VALUE", str(value))))
    assert result.ok, result.error
    for node_id in taken:
        assert result.nodes[node_id].status is NodeStatus.COMPLETED
    for node_id in skipped:
        assert result.nodes[node_id].status is NodeStatus.SKIPPED
    assert sorted(e[1] for e in log if e[0] == "wait-done") == sorted(taken)
    assert result.nodes["join"].outputs == {"data": [value]}
    assert result.nodes["first"].outputs == {"data": value}


def test_merge_waits_for_every_branch_in_edge_order(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: m
name: Merge
nodes:
  - {id: slow, type: test.sleep, parameters: {seconds: 0.1, value: slow}}
  - {id: fast, type: test.sleep, parameters: {value: fast}}
  - {id: join, type: merge}
edges:
  - {source: slow, target: join, targetHandle: data}
  - {source: fast, target: join, targetHandle: data}
"""
    )
    assert conductor.run(flow).outputs == {"join": {"data": ["slow", "fast"]}}


def test_sub_flow_by_reference(conductor: Conductor) -> None:
    storage = conductor.storage
    assert storage is not None
    storage.save(
        loads_flow(
            """
id: greeter
name: Greeter
variables: {who: {defaultValue: nobody}}
nodes:
  - {id: greet, type: edit-fields, parameters: {values: {msg: "hi {{ who }}"}, keepOnlySet: true}}
"""
        )
    )
    flow = loads_flow(
        """
id: outer
name: Outer
nodes:
  - {id: name, type: test.sleep, parameters: {value: Ada}}
  - {id: call, type: flow, parameters: {flowId: greeter}}
  - {id: each, type: loop, parameters: {array: [x, y]}, nodes: [{id: inner-call, type: flow, parameters: {flowId: greeter}}],
     edges: [{source: each, sourceHandle: item, target: inner-call, targetHandle: who}, {source: inner-call, sourceHandle: greet, target: each, targetHandle: said}]}
edges:
  - {source: name, target: call, targetHandle: who}
"""
    )
    result = conductor.run(flow)
    assert result.ok, result.error
    assert result.outputs["call"] == {"greet": {"output": {"msg": "hi Ada"}}}
    assert result.nodes["call/greet"].status is NodeStatus.COMPLETED
    assert result.outputs["each"]["said"] == [
        {"output": {"msg": "hi x"}},
        {"output": {"msg": "hi y"}},
    ]


def test_sub_flow_reference_cycle_and_missing_flow_are_validation_errors(
    conductor: Conductor,
) -> None:
    storage = conductor.storage
    assert storage is not None
    storage.save(
        loads_flow("id: a\nname: A\nnodes:\n  - {id: to-b, type: flow, parameters: {flowId: b}}\n")
    )
    storage.save(
        loads_flow("id: b\nname: B\nnodes:\n  - {id: to-a, type: flow, parameters: {flowId: a}}\n")
    )
    report = conductor.validate(storage.load("a"))
    assert [(p.code, p.location) for p in report.errors] == [
        ("CIRCULAR_DEPENDENCY", "nodes[0].parameters.flowId")
    ]
    assert "a -> b -> a" in report.errors[0].message
    selfish = loads_flow(
        "id: me\nname: Me\nnodes:\n  - {id: again, type: flow, parameters: {flowId: me}}\n"
    )
    assert "me -> me" in conductor.validate(selfish).errors[0].message
    missing = loads_flow(
        "id: m\nname: M\nnodes:\n  - {id: x, type: flow, parameters: {flowId: nowhere}}\n"
    )
    assert conductor.validate(missing).errors[0].code == "FLOW_NOT_FOUND"
    with pytest.raises(FlowValidationError):
        conductor.run(storage.load("a"))


def test_progress_and_paths_nest(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: nest
name: Nested progress
nodes:
  - id: loop-1
    type: loop
    parameters: {array: [1, 2, 3, 4]}
    nodes:
      - id: grp
        type: group
        nodes:
          - {id: resize, type: test.progress, parameters: {seconds: 0.02}}
  - {id: after, type: test.sleep}
edges:
  - {source: loop-1, target: after, targetHandle: input, sourceHandle: iterationCount}
"""
    )
    events: list[Any] = []

    def receiver(sender: Any, event: Any) -> None:
        events.append(event)

    for sig in signals.ALL_SIGNALS:
        sig.connect(receiver, sender=conductor)
    try:
        result = conductor.run(flow)
    finally:
        for sig in signals.ALL_SIGNALS:
            sig.disconnect(receiver)
    assert result.ok, result.error
    paths = {e.path for e in events if hasattr(e, "path")}
    assert "loop-1/iteration 3/grp/resize" in paths
    progress = [e.progress for e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    mid = [
        e.progress
        for e in events
        if getattr(e, "path", "") == "loop-1/iteration 1/grp/resize" and e.type == "node.completed"
    ]
    assert 0 < mid[0] < 0.5  # the loop's iterations move the top-level progress gradually


@pytest.mark.parametrize(("parallel", "at_least", "below"), [(True, 0.0, 0.28), (False, 0.3, 5.0)])
def test_group_parallel_flag(
    conductor: Conductor, parallel: bool, at_least: float, below: float
) -> None:
    flow = loads_flow(
        f"""
id: gp
name: Group parallel
nodes:
  - id: g
    type: group
    parameters: {{parallel: {str(parallel).lower()}}}
    nodes:
      - {{id: a, type: test.sleep, parameters: {{seconds: 0.15}}}}
      - {{id: b, type: test.sleep, parameters: {{seconds: 0.15}}}}
"""
    )
    t0 = time.perf_counter()
    assert conductor.run(flow).ok
    assert at_least <= time.perf_counter() - t0 < below


def test_collect_results_false_drops_per_item_outputs(conductor: Conductor, log: list[Any]) -> None:
    flow = loads_flow(
        """
id: nocollect
name: No collect
nodes:
  - id: l
    type: loop
    parameters: {array: [1, 2, 3], collectResults: false}
    nodes:
      - {id: w, type: test.wait}
    edges:
      - {source: l, sourceHandle: item, target: w, targetHandle: value}
      - {source: w, target: l, targetHandle: values}
"""
    )
    result = conductor.run(flow)
    assert result.outputs["l"] == {"iterationCount": 3, "errors": []}
    assert [e[2] for e in log if e[0] == "wait-done"] == [1, 2, 3]  # the body still ran


def test_times_loop_and_variables_in_templates(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: times
name: Times
variables: {prefix: {defaultValue: run}}
nodes:
  - id: l
    type: loop
    parameters: {loopType: times, count: 3}
    nodes:
      - {id: label, type: edit-fields, parameters: {values: {text: "{{ prefix }}-{{ index }}-{{ item }}"}, keepOnlySet: true}}
    edges:
      - {source: label, target: l, targetHandle: labels}
"""
    )
    result = conductor.run(flow)
    assert [v["text"] for v in result.outputs["l"]["labels"]] == ["run-0-0", "run-1-1", "run-2-2"]


def test_a_long_loop_that_collects_nothing_holds_nothing_per_iteration() -> None:
    import tracemalloc

    from atomiton_core import create_conductor, loads_flow

    flow = loads_flow(
        """
id: long
name: long
nodes:
  - id: lp
    type: loop
    parameters: {loopType: times, count: 50000, concurrency: 4, collectResults: false, maxIterations: 100000}
    nodes:
      - {id: c, type: edit-fields, parameters: {values: {a: 1}}}
"""
    )
    conductor = create_conductor("memory://long-loop", record_runs=False, retain_results="errors")
    tracemalloc.start()
    try:
        result = conductor.run(flow)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.ok, result.error
    assert result.outputs["lp"]["iterationCount"] == 50_000
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB for 50,000 iterations"
