"""Signals: every step reported in order, progress monotonic, receivers scoped to a sender."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from atomiton_core import Conductor, loads_flow, signals, wire
from atomiton_core.conductor.runlog import triggered_by

FLOW = """
id: sig
name: Signals
nodes:
  - {id: a, type: test.sleep, parameters: {value: 1}}
  - {id: p, type: test.progress, parameters: {seconds: 0.08}}
  - {id: bad, type: test.fail, parameters: {continueOnFail: true}}
  - {id: after-bad, type: test.sleep}
  - {id: off, type: test.sleep, parameters: {enabled: false}}
  - id: g
    type: group
    nodes:
      - {id: inner, type: test.sleep, parameters: {value: 2}}
edges:
  - {source: a, target: p}
  - {source: bad, target: after-bad}
"""


def _record(conductor: Conductor) -> tuple[list[Any], Any]:
    events: list[Any] = []

    def receiver(sender: Any, event: Any) -> None:
        assert sender is conductor
        events.append(event)

    for sig in signals.ALL_SIGNALS:
        sig.connect(receiver, sender=conductor)
    return events, receiver


def test_events_in_order_with_typed_payloads(conductor: Conductor) -> None:
    events, receiver = _record(conductor)
    try:
        result = conductor.run(loads_flow(FLOW))
    finally:
        for sig in signals.ALL_SIGNALS:
            sig.disconnect(receiver)  # all senders: blinker keeps it in .receivers otherwise
    assert result.ok
    types = [e.type for e in events]
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    by_path: dict[str, list[str]] = {}
    for e in events[1:-1]:
        by_path.setdefault(e.path, []).append(e.type)
    assert by_path["a"] == ["node.started", "node.completed"]
    assert by_path["p"][0] == "node.started" and by_path["p"][-1] == "node.completed"
    assert by_path["p"].count("node.progress") == 4
    assert by_path["bad"] == ["node.started", "node.failed"]
    assert by_path["after-bad"] == ["node.skipped"]
    assert by_path["off"] == ["node.skipped"]
    assert by_path["g/inner"] == ["node.started", "node.completed"]
    progress = [e.progress for e in events]
    assert progress == sorted(progress), "overall progress never decreases"
    assert progress[0] == 0 and progress[-1] == 1
    assert all(e.execution_id == result.execution_id for e in events)
    completed = next(e for e in events if e.type == "node.completed" and e.node_id == "a")
    assert completed.outputs == {
        "output": 1,
        "started": completed.outputs["started"],
        "ended": completed.outputs["ended"],
    }
    assert wire.dump(completed)["nodeType"] == "test.sleep"
    finished = events[-1]
    assert finished.result is result and wire.dump(finished)["result"]["status"] == "completed"
    assert any(e.type == "node.progress" and e.message == "step 2" for e in events)


def test_execution_events_say_what_triggered_the_run(conductor: Conductor) -> None:
    """A run someone started says None; one begun within ``triggered_by`` (as the server's
    triggers start theirs) carries that trigger on each execution event."""
    heard: list[Any] = []
    flow = loads_flow("id: t\nname: T\nnodes:\n  - {id: x, type: test.sleep}\n")

    def on_event(sender: Any, event: signals.ExecutionEvent) -> None:
        heard.append((event.type, event.trigger))

    fired = {"flowId": "t", "id": "every-minute", "type": "schedule", "firedAt": "now"}
    with (
        signals.execution_started.connected_to(on_event, sender=conductor),
        signals.execution_completed.connected_to(on_event, sender=conductor),
    ):
        conductor.run(flow)

        async def triggered() -> Any:
            with triggered_by(fired):
                execution = conductor.start(flow)
            return await execution.result()

        result = asyncio.run(triggered())
    assert heard == [
        ("execution.started", None),
        ("execution.completed", None),
        ("execution.started", fired),
        ("execution.completed", fired),
    ]
    assert (
        wire.dump(signals.ExecutionEvent("x", "e", "t", 0.0, 0, "running", trigger=fired))[
            "trigger"
        ]
        == fired
    )
    assert result.ok


def test_receivers_for_another_conductor_hear_nothing(
    conductor: Conductor, conductor_factory: Any
) -> None:
    other = conductor_factory()
    heard: list[Any] = []
    with signals.node_started.connected_to(lambda s, event: heard.append(event), sender=other):
        conductor.run(loads_flow(FLOW))
    assert heard == []


def test_failed_and_cancelled_execution_events(conductor: Conductor) -> None:
    seen: list[str] = []
    with signals.execution_failed.connected_to(
        lambda s, event: seen.append(event.error.code), sender=conductor
    ):
        conductor.run(loads_flow("id: f\nname: F\nnodes:\n  - {id: x, type: test.fail}\n"))
    assert seen == ["EXECUTION_FAILED"]


def test_a_receiver_that_raises_never_fails_the_run_it_observed(
    conductor: Conductor, caplog: Any
) -> None:
    """Logged once for the run (then counted), the other receivers still hear every event
    (blinker's own ``send`` stops at the first that raises)."""

    def explode(sender: Any, event: Any) -> None:
        raise RuntimeError("receiver broke")

    heard: list[str] = []
    flow = loads_flow(
        "id: r\nname: R\nnodes:\n  - {id: x, type: test.add}\n  - {id: y, type: test.add}\n"
    )
    with (
        caplog.at_level("ERROR", logger="atomiton.signals"),
        signals.node_completed.connected_to(explode, sender=conductor),
        signals.node_completed.connected_to(lambda s, event: heard.append(event.node_id)),
    ):
        result = conductor.run(flow)
    assert result.ok, result.error
    assert sorted(heard) == ["x", "y"]
    logged = [r for r in caplog.records if "receiver broke" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert result.execution_id in logged[0].getMessage()
    assert any("raised 2 times" in r.getMessage() for r in caplog.records)


def test_no_receivers_means_no_payloads(conductor: Conductor, monkeypatch: Any) -> None:
    gc.collect()  # an app of an earlier test, never served, let go of its weak receivers
    assert not [s.name for s in signals.ALL_SIGNALS if s.receivers]
    built: list[Any] = []
    original = signals.NodeEvent.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(signals.NodeEvent, "__init__", counting)
    result = conductor.run(loads_flow(FLOW))
    assert result.ok
    assert built == []


def test_an_execution_handle_streams_its_own_events(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: ev\nname: Ev\nnodes:\n  - {id: a, type: test.add}\n  - {id: b, type: test.add}\n"
        "edges:\n  - {source: a, target: b, sourceHandle: output, targetHandle: a}\n"
    )

    async def scenario() -> tuple[list[Any], str]:
        execution = conductor.start(flow)
        other = conductor.start(flow)
        seen = [event async for event in execution.events()]
        await other.result()
        assert [e async for e in execution.events()] == []  # finished: nothing more to come
        return seen, execution.execution_id

    seen, eid = asyncio.run(scenario())
    assert {e.execution_id for e in seen} == {eid}
    types = [e.type for e in seen]
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    assert [e.node_id for e in seen if e.type == "node.completed"] == ["a", "b"]
    assert seen[-1].result is not None and seen[-1].result.ok
