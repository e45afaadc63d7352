"""The benchmark's node types: trivial nodes, so the numbers measure the engine alone."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from atomiton_core import NodeContext, hookimpl, node


class SleepParams(BaseModel):
    ms: float = 1.0


@node("bench.async", outputs={"out": int}, multiple=["x"])
async def bench_async(ctx: NodeContext, params: Any, x: list[int] | None = None) -> dict[str, Any]:
    return {"out": 1}


@node("bench.inline", outputs={"out": int}, multiple=["x"], blocking=False)
def bench_inline(ctx: NodeContext, params: Any, x: list[int] | None = None) -> dict[str, Any]:
    return {"out": 1}


@node("bench.thread", outputs={"out": int}, multiple=["x"])
def bench_thread(ctx: NodeContext, params: Any, x: list[int] | None = None) -> dict[str, Any]:
    return {"out": 1}


@node("bench.sleep", params=SleepParams, outputs={"out": int}, multiple=["x"])
async def bench_sleep(
    ctx: NodeContext, params: SleepParams, x: list[int] | None = None
) -> dict[str, Any]:
    await asyncio.sleep(params.ms / 1000)
    return {"out": 1}


@hookimpl
def atomiton_node_types() -> list[Any]:
    return [bench_async, bench_inline, bench_thread, bench_sleep]
