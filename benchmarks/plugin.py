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


class WorkParams(BaseModel):
    rounds: int = 2000
    #: Makes each node's work its own (so no two nodes share a cache entry).
    salt: int = 0


@node(
    "bench.work",
    params=WorkParams,
    outputs={"out": int},
    multiple=["x"],
    blocking=False,
    pure=True,
    cacheable=True,
)
def bench_work(ctx: NodeContext, params: WorkParams, x: list[int] | None = None) -> dict[str, Any]:
    """Some CPU (hashing ``rounds`` times, about 1 ms per 2,000): what a cache spares."""
    import hashlib

    h = hashlib.blake2b(f"{sum(x or [])}/{params.salt}".encode())
    for _ in range(params.rounds):
        h = hashlib.blake2b(h.digest())
    return {"out": (sum(x or []) + 1) % 1000}


@hookimpl
def atomiton_node_types() -> list[Any]:
    return [bench_async, bench_inline, bench_thread, bench_sleep, bench_work]
