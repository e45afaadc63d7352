"""Shared fixtures: a conductor on in-memory storage with a handful of test node types."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from atomiton_core import Conductor, NodeContext, create_conductor, hookimpl, node
from atomiton_core.errors import ExecutionError


class SleepParams(BaseModel):
    seconds: float = 0.0
    value: Any = None


@node("test.sleep", params=SleepParams, outputs={"output": Any, "started": float, "ended": float})
async def sleep_node(ctx: NodeContext, params: SleepParams, input: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    await asyncio.sleep(params.seconds)
    log = ctx.config.get("log")
    if log is not None:
        log.append(("sleep-done", ctx.path))
    value = params.value if params.value is not None else input
    return {"output": value, "started": started, "ended": time.perf_counter()}


@node("test.sync-sleep", params=SleepParams, outputs={"output": Any})
def sync_sleep_node(ctx: NodeContext, params: SleepParams, input: Any = None) -> dict[str, Any]:
    assert threading.current_thread() is not threading.main_thread()
    time.sleep(params.seconds)
    return {"output": params.value if params.value is not None else input}


class FlakyParams(BaseModel):
    failures: int = 1


@node("test.flaky", params=FlakyParams, outputs={"output": int})
async def flaky_node(ctx: NodeContext, params: FlakyParams, input: Any = None) -> dict[str, Any]:
    """Fails the first ``failures`` attempts, then returns the attempt number."""
    if ctx.attempt <= params.failures:
        raise ExecutionError(f"planned failure on attempt {ctx.attempt}", retryable=True)
    return {"output": ctx.attempt}


@node("test.fail", outputs={"output": Any})
async def fail_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    raise ValueError("boom")


@node("test.add", outputs={"output": float}, blocking=False, pure=True)
def add_node(ctx: NodeContext, params: BaseModel, a: float = 0, b: float = 0) -> dict[str, Any]:
    return {"output": a + b}


@node("test.record", outputs={"output": str}, multiple=("deps",), blocking=False)
def record_node(
    ctx: NodeContext, params: BaseModel, deps: list[str] | None = None
) -> dict[str, Any]:
    """Logs (own id, ids it received) and passes its id on."""
    ctx.config["log"].append((ctx.path, sorted(deps or [])))
    return {"output": ctx.node_id}


@node("test.bad-output", outputs={"output": Any}, blocking=False)
def bad_output_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    return {"output": 1, "surprise": 2}


@node("test.progress", params=SleepParams, outputs={"output": Any})
async def progress_node(ctx: NodeContext, params: SleepParams, input: Any = None) -> dict[str, Any]:
    for step in range(1, 5):
        await asyncio.sleep(params.seconds / 4)
        ctx.progress(step / 4, f"step {step}")
    return {"output": input}


@node("test.wait", outputs={"output": Any})
async def wait_node(
    ctx: NodeContext, params: BaseModel, seconds: float = 0.0, value: Any = None
) -> dict[str, Any]:
    """Sleeps ``seconds`` (an input), logs, and passes ``value`` on."""
    await asyncio.sleep(seconds)
    log = ctx.config.get("log")
    if log is not None:
        log.append(("wait-done", ctx.path, value))
    return {"output": value}


@node("test.raise-if", outputs={"output": Any}, blocking=False)
def raise_if_node(ctx: NodeContext, params: BaseModel, value: Any = None) -> dict[str, Any]:
    """Raises for values that are the string "bad", else passes them on."""
    if value == "bad":
        raise ExecutionError(f"bad value at {ctx.path}")
    return {"output": value}


TEST_NODE_TYPES = [
    wait_node,
    raise_if_node,
    sleep_node,
    sync_sleep_node,
    flaky_node,
    fail_node,
    add_node,
    record_node,
    bad_output_node,
    progress_node,
]


class TestNodesPlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return TEST_NODE_TYPES


def make_conductor(**kwargs: Any) -> Conductor:
    kwargs.setdefault("record_runs", False)
    return create_conductor(
        f"memory://atomiton-test-{uuid.uuid4().hex}",
        plugins=[TestNodesPlugin()],
        autoload=False,
        **kwargs,
    )


@pytest.fixture
def conductor() -> Conductor:
    c = make_conductor(config={"log": []})
    yield c
    c.close()


@pytest.fixture
def conductor_factory() -> Any:
    made: list[Conductor] = []

    def factory(**kwargs: Any) -> Conductor:
        c = make_conductor(**kwargs)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


@pytest.fixture
def log(conductor: Conductor) -> list[Any]:
    result: list[Any] = conductor.config["log"]
    return result
