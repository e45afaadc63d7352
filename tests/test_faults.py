"""The fault corpus: whatever a node raises, in whichever way it runs, only that node fails;
the run ends, and the process that hosts the conductor goes on.

Every fault is raised by a real node in each execution path (inline, async awaited in its
task, async through the attempts loop, a worker thread, a worker process); the figures are in
tests/README.md.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from atomiton_core import NodeContext, Parameters, create_conductor, hookimpl, loads_flow, node
from atomiton_core.errors import AtomitonError


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


class Custom(BaseException):
    pass


FAULTS: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "StopIteration": StopIteration,
    "StopAsyncIteration": StopAsyncIteration,
    "GeneratorExit": GeneratorExit,
    "BaseException": lambda: Custom("custom"),
    "unprintable": Unprintable,
    "RecursionError": lambda: RecursionError("deep"),
    "MemoryError": MemoryError,
    "CancelledError": asyncio.CancelledError,
    "TimeoutError": TimeoutError,
    "AtomitonError": lambda: AtomitonError("plain"),
}


class Fault(Parameters):
    fault: str


def _raise(name: str) -> None:
    raise FAULTS[name]()


@node("fault.inline", params=Fault, outputs={"output": int}, blocking=False)
def inline(ctx: NodeContext, params: Fault) -> dict[str, Any]:
    _raise(params.fault)
    return {"output": 1}


@node("fault.async", params=Fault, outputs={"output": int})
async def async_fault(ctx: NodeContext, params: Fault) -> dict[str, Any]:
    await asyncio.sleep(0)
    _raise(params.fault)
    return {"output": 1}


@node("fault.thread", params=Fault, outputs={"output": int})
def thread(ctx: NodeContext, params: Fault) -> dict[str, Any]:
    _raise(params.fault)
    return {"output": 1}


@node("fault.process", params=Fault, outputs={"output": int}, settings={"isolation": "process"})
def process(ctx: NodeContext, params: Fault) -> dict[str, Any]:
    import asyncio as _asyncio

    class _Custom(BaseException):
        pass

    made = {
        "SystemExit": lambda: SystemExit(3),
        "KeyboardInterrupt": KeyboardInterrupt,
        "StopIteration": StopIteration,
        "GeneratorExit": GeneratorExit,
        "BaseException": _Custom,
        "CancelledError": _asyncio.CancelledError,
    }
    raise made.get(params.fault, RuntimeError)()


@node("fault.ok", outputs={"output": int}, blocking=False)
def ok(ctx: NodeContext, params: Any) -> dict[str, Any]:
    return {"output": 1}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [inline, async_fault, thread, process, ok]


CONDUCTOR = create_conductor("memory://faults", plugins=[Plugin()], record_runs=False)
MODES = {
    "inline": ("fault.inline", {}),
    "async-direct": ("fault.async", {}),
    "async-attempts": ("fault.async", {"timeout": 5000}),
    "thread": ("fault.thread", {}),
    "thread-retried": ("fault.thread", {"retries": 1, "retryDelay": 0}),
}


def _flow(type_id: str, fault: str, extra: dict[str, Any]) -> Any:
    body = {
        "id": "faults",
        "name": "faults",
        "nodes": [
            {"id": "bad", "type": type_id, "parameters": {"fault": fault, **extra}},
            {"id": "good", "type": "fault.ok", "parameters": {}},
        ],
    }
    return loads_flow(json.dumps(body))


async def _run(flow: Any) -> Any:
    return await asyncio.wait_for(CONDUCTOR.execute(flow), timeout=20)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_fails_only_its_node(mode: str, fault: str) -> None:
    type_id, extra = MODES[mode]
    result = asyncio.run(_run(_flow(type_id, fault, extra)))
    assert result.status == "failed", (mode, fault, result.status)
    bad = result.nodes["bad"]
    assert bad.status in ("failed",), (mode, fault, bad.status)
    assert isinstance(bad.error, AtomitonError)
    assert bad.error.node_id == "bad"
    assert str(bad.error)  # printable, whatever the exception was
    assert isinstance(result.error, AtomitonError)


@pytest.mark.parametrize(
    "fault", ["SystemExit", "KeyboardInterrupt", "StopIteration", "GeneratorExit", "BaseException"]
)
def test_a_fault_in_a_worker_process_fails_only_its_node(fault: str) -> None:
    result = asyncio.run(_run(_flow("fault.process", fault, {})))
    bad = result.nodes["bad"]
    assert bad.status == "failed"
    assert isinstance(bad.error, AtomitonError)
    assert fault.replace("BaseException", "_Custom") in bad.error.message


def test_the_host_goes_on_after_every_fault() -> None:
    """Run all of them one after another in one loop: the process is still here."""

    async def main() -> int:
        n = 0
        for type_id, extra in MODES.values():
            for fault in FAULTS:
                result = await _run(_flow(type_id, fault, extra))
                assert result.status == "failed"
                n += 1
        return n

    assert asyncio.run(main()) == len(MODES) * len(FAULTS)


@node("typed.double", outputs={"output": int}, blocking=False)
def double(ctx: NodeContext, params: Any, input: int, scale: float | None = None) -> dict[str, Any]:
    return {"output": input * 2}


@node("typed.text", outputs={"output": Any}, blocking=False)
def text(ctx: NodeContext, params: Any) -> dict[str, Any]:
    return {"output": "abc"}


def test_a_value_of_the_wrong_type_is_refused_at_the_port() -> None:
    class Typed:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [double, text]

    conductor = create_conductor("memory://typed", plugins=[Typed()], record_runs=False)
    flow = loads_flow(
        json.dumps(
            {
                "id": "typed",
                "name": "typed",
                "nodes": [{"id": "t", "type": "typed.text"}, {"id": "d", "type": "typed.double"}],
                "edges": [{"id": "e", "source": "t", "target": "d"}],
            }
        )
    )
    result = conductor.run(flow)
    err = result.nodes["d"].error
    assert err is not None and err.code == "INVALID_INPUT"
    assert "input port 'input' (int) received str 'abc'" in err.message
    assert err.context["port"] == "input"
