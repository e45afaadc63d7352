"""The wire format: what wire.dump writes, wire.load reads back as the same classes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atomiton_core import (
    ExecutionResult,
    ExecutionStatus,
    FlowValidationError,
    NodeResult,
    NodeStatus,
    Problem,
    RemoteError,
    ValidationReport,
    signals,
    wire,
)
from atomiton_core.errors import ERROR_CLASSES, ExecutionError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    outputs=st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=3),
    started=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    code=st.sampled_from(
        sorted(c for c in ERROR_CLASSES if c not in ("VALIDATION_FAILED", "REMOTE_ERROR"))
    ),
)
def test_results_round_trip_as_the_same_classes(outputs: dict, started: float, code: str) -> None:
    error = ERROR_CLASSES[code]("went wrong", hint="fix it", node_id="n", path="g/n")
    node = NodeResult("n", "t", "g/n", NodeStatus.FAILED, outputs, error, 2, started, 1.5, None)
    result = ExecutionResult(
        "e", "f", ExecutionStatus.FAILED, {}, {"g/n": node}, error, started, 3.0
    )
    text = wire.dumps(result)
    back = wire.loads(ExecutionResult, text)
    assert json.loads(text)["startedAt"].endswith("+00:00")  # ISO 8601, UTC, to the µs
    assert back.started_at == pytest.approx(started, abs=1e-6)
    assert back.nodes["g/n"].started_at == pytest.approx(started, abs=1e-6)
    back.started_at = back.nodes["g/n"].started_at = started
    assert back == result and type(back.error) is type(error) is type(back.nodes["g/n"].error)


def test_bytes_are_written_as_base64_text() -> None:
    data = wire.dump(NodeResult("n", "t", "n", outputs={"blob": b"\x00\xff"}))
    assert data["outputs"] == {"blob": "AP8="}


def test_a_validation_error_keeps_its_report() -> None:
    report = ValidationReport(
        flow_id="f", problems=[Problem(code="CYCLE", message="a loop", location="edges[0]")]
    )
    back = wire.load_error(wire.dump(FlowValidationError(report)))
    assert isinstance(back, FlowValidationError) and back.report.problems == report.problems
    assert wire.dump(report)["valid"] is False


def test_an_unknown_code_is_a_remote_error_that_keeps_it() -> None:
    back = wire.load_error({"code": "SOMEONE_ELSES", "message": "hm"})
    assert isinstance(back, RemoteError) and back.context["remote_code"] == "SOMEONE_ELSES"


def test_events_round_trip() -> None:
    event = signals.NodeEvent(
        type="node.completed",
        execution_id="e",
        flow_id="f",
        node_id="n",
        node_type="t",
        path="n",
        timestamp=1.25,
        progress=0.5,
        status="completed",
        outputs={"x": 1},
    )
    data = wire.dump(event, exclude_none=True)
    assert data["timestamp"] == "1970-01-01T00:00:01.250000+00:00" and "error" not in data
    assert wire.load(signals.NodeEvent, data) == event


def test_a_plugin_cannot_take_a_code_another_class_owns() -> None:
    from atomiton_core.errors import ExecutionError

    with pytest.raises(TypeError, match="already owned"):

        class Clash(ExecutionError):
            code = "TIMEOUT"

    with pytest.raises(TypeError, match="belongs to its class"):
        ExecutionError("x", code="MINE")


def test_a_results_repr_is_a_summary_whatever_it_holds() -> None:
    """asyncio formats a finished task's result (asyncio.run does, on its way out): a repr
    that copied every output made a 10 MB output cost ~90 MB."""
    big = "x" * 1_000_000
    node = NodeResult("n", "t", "n", NodeStatus.COMPLETED, outputs={"stdout": big, "b": 1})
    result = ExecutionResult(
        "e1", "f", ExecutionStatus.COMPLETED, {"n": {"stdout": big}}, {"n": node}
    )
    assert (
        repr(node)
        == "NodeResult(path='n', node_type='t', status='completed', attempts=0, outputs=['b', 'stdout'])"
    )
    assert len(repr(result)) < 200 and "nodes=1" in repr(result) and "outputs=['n']" in repr(result)
    failed = NodeResult(
        "m", "t", "m", NodeStatus.FAILED, error=ExecutionError("y" * 10_000, node_id="m")
    )
    assert len(repr(failed)) < 300 and "ExecutionError('EXECUTION_FAILED'" in repr(failed)
