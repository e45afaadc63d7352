"""What control flow costs per item, against asyncio itself, on the path a user takes:
``create_conductor(folder)`` defaults (local storage, ``record="full"``), the same Flow
object executed again and again (its plan is cached by content).

- **loop / parallel**: one ``loop`` (forEach over a parameter of N items) or ``parallel``
  (N operations) node whose one child is a trivial async node (``{"out": x + 1}``), at the
  node's default concurrency (loop: 1, parallel: 4) and at N (unlimited); against
  ``await asyncio.gather(*(body(x) for x in items))`` over the same function (target: 2x).
- **blocking**: a chain and a fan-out of N blocking sync nodes (``blocking`` is the default
  for sync nodes: each runs in a worker thread); against N calls of the same function
  through ``loop.run_in_executor`` on a ``ThreadPoolExecutor``, one after another (chain)
  or all at once with ``gather`` (fan-out) (target: 2x).

Every row is timed with ``record="full"`` and ``record="off"`` (what the run log costs: a
line per child node per item). Ours and the baseline run in one process, interleaved in
alternating order, repeated (the short blocking rows three times as often); the figures are
median µs per item and the median of the ratios ours / baseline of each repeat, with their
min-max.

    python -m benchmarks.control                   # N = 1,000 and 10,000; blocking 1,000
    python -m benchmarks.control --n 20 --repeats 1
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from atomiton_core import Edge, Flow, NodeContext, NodeSpec, create_conductor, hookimpl, node
from atomiton_core.conductor.conductor import Conductor
from benchmarks.isolation import make_chain_or_fanout, run_main, timed_result

RECORDS = ("full", "off")


@node("control.add-one", outputs={"out": int})
async def add_one(ctx: Any, params: Any, x: int = 0) -> dict[str, Any]:
    """The loop's and the parallel's child, and the body gather runs."""
    return {"out": x + 1}


def add_one_sync(x: int = 0) -> dict[str, Any]:
    """The blocking nodes' body, and what ``run_in_executor`` runs."""
    return {"out": x + 1}


@node("control.add-one-sync", outputs={"out": int}, multiple=["x"])
def add_one_blocking(ctx: NodeContext, params: Any, x: list[int] | None = None) -> dict[str, Any]:
    return add_one_sync(sum(x or ()))


class _Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [add_one, add_one_blocking]


def container_flow(kind: str, n: int, concurrency: int | None) -> Flow:
    """One ``loop`` (forEach) or ``parallel`` node over 0..n-1 with one ``control.add-one``
    child, its outputs collected as ``values``; ``concurrency`` None: the node's default."""
    params: dict[str, Any] = (
        {"loopType": "forEach", "array": list(range(n))}
        if kind == "loop"
        else {"operations": list(range(n))}
    )
    if concurrency is not None:
        params["concurrency"] = concurrency
    child = NodeSpec(id="add", type="control.add-one")
    edges = [
        Edge(id="in", source="c", target="add", source_handle="item", target_handle="x"),
        Edge(id="out", source="add", target="c", source_handle="out", target_handle="values"),
    ]
    spec = NodeSpec(id="c", type=kind, parameters=params, nodes=[child], edges=edges)
    return Flow(id=f"{kind}-{n}-{concurrency}", name=kind, nodes=[spec])


def _gather(n: int) -> Callable[[], Awaitable[Any]]:
    body = add_one.fn
    items = list(range(n))

    async def baseline() -> Any:
        return await asyncio.gather(*(body(None, None, x) for x in items))

    return baseline


def _in_executor(n: int, shape: str, pool: ThreadPoolExecutor) -> Callable[[], Awaitable[Any]]:
    async def baseline() -> Any:
        loop = asyncio.get_running_loop()
        if shape == "chain":
            out = None
            for x in range(n):
                out = await loop.run_in_executor(pool, add_one_sync, x)
            return out
        return await asyncio.gather(
            *(loop.run_in_executor(pool, add_one_sync, x) for x in range(n))
        )

    return baseline


async def _seconds(what: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await what()
    return time.perf_counter() - t0


async def _row(
    conductors: dict[str, Conductor],
    flow: Flow,
    baseline: Callable[[], Awaitable[Any]],
    n: int,
    repeats: int,
    check: Callable[[Any], None],
) -> dict[str, Any]:
    for c in conductors.values():  # planned, warm
        check((await timed_result(c, flow))[1])
    await baseline()
    rows: list[dict[str, float]] = []
    for r in range(repeats):
        names = [*RECORDS, "base"]
        if r % 2:
            names.reverse()
        times: dict[str, float] = {}
        for name in names:
            if name == "base":
                times[name] = await _seconds(baseline)
            else:
                times[name] = (await timed_result(conductors[name], flow))[0]
        rows.append(times)
    out: dict[str, Any] = {"n": n}
    for name in (*RECORDS, "base"):
        out[f"{name}_us"] = statistics.median(t[name] for t in rows) / n * 1e6
    for name in RECORDS:
        ratios = [t[name] / t["base"] for t in rows]
        out[f"{name}_ratio"] = statistics.median(ratios)
        out[f"{name}_range"] = [min(ratios), max(ratios)]
    return out


def _values_check(n: int) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        values = result.outputs["c"]["values"]
        if len(values) != n or values[-1] != n:
            raise RuntimeError(f"the container returned {values[-3:]!r} for {n} items")

    return check


def _ok(result: Any) -> None:
    """``timed_result`` has checked the run succeeded already."""


async def measure(n: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    """Loop and parallel at ``n // 10`` and ``n`` items, blocking nodes at ``n // 10``."""
    small = max(n // 10, 2)
    out: dict[str, Any] = {"n": n, "repeats": repeats, "containers": [], "blocking": []}
    folder = tempfile.mkdtemp(prefix="atomiton-bench-control-")
    pool = ThreadPoolExecutor(64)  # as many threads as the conductor's default max_workers
    try:
        conductors = {
            mode: create_conductor(f"{folder}/{mode}", plugins=[_Plugin()], record=mode)
            for mode in RECORDS
        }
        for size in sorted({small, n}):
            for kind, concurrency in (("loop", None), ("loop", size), ("parallel", None)):
                flow = container_flow(kind, size, concurrency)
                row = await _row(
                    conductors, flow, _gather(size), size, repeats, _values_check(size)
                )
                row["kind"] = kind
                row["concurrency"] = "default" if concurrency is None else "N"
                out["containers"].append(row)
            flow = container_flow("parallel", size, size)
            row = await _row(conductors, flow, _gather(size), size, repeats, _values_check(size))
            out["containers"].append({**row, "kind": "parallel", "concurrency": "N"})
        for shape in ("chain", "fanout"):
            flow = make_chain_or_fanout(shape, small, "control.add-one-sync")
            baseline = _in_executor(small, shape, pool)
            # short runs, among the noisiest (thread wake-ups): three times the repeats
            row = await _row(conductors, flow, baseline, small, 3 * repeats, _ok)
            out["blocking"].append({**row, "shape": shape})
        for c in conductors.values():
            c.close()
    finally:
        pool.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _cells(r: dict[str, Any]) -> str:
    cells = [f"{r['full_us']:.1f}", f"{r['off_us']:.1f}", f"{r['base_us']:.1f}"]
    for name in RECORDS:
        lo, hi = r[f"{name}_range"]
        cells.append(f"{r[f'{name}_ratio']:.2f}x ({lo:.2f}-{hi:.2f})")
    return " | ".join(cells)


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"{res['repeats']} interleaved repeats ({3 * res['repeats']} for blocking nodes), "
        "medians, local storage; ratios: ours / baseline of the same repeat (target 2x)",
        "",
        "| node | concurrency | N | full µs/item | off µs/item | gather µs/item "
        "| full / gather (min-max) | off / gather (min-max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["containers"]:
        lines.append(f"| {r['kind']} | {r['concurrency']} | {r['n']} | {_cells(r)} |")
    lines += [
        "",
        "| blocking nodes | N | full µs/node | off µs/node | run_in_executor µs/call "
        "| full / executor (min-max) | off / executor (min-max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["blocking"]:
        lines.append(f"| {r['shape']} | {r['n']} | {_cells(r)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    run_main(__doc__, 10_000, 5, "control", measure, markdown)


if __name__ == "__main__":
    main()
