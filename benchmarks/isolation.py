"""Per-node overhead of isolated nodes (``isolation: process``, warm pool) against the same
node in a thread, on the path a user takes: ``create_conductor()`` defaults, ``execute(flow)``.

Both run in one process, interleaved, repeated; the figure is the median µs per node and the
ratio isolated / thread of the same repeat. Also the cold start: the first isolated run of a
new conductor, which starts its pool.

    python -m benchmarks.isolation                 # N = 200, 7 repeats
    python -m benchmarks.isolation --n 20 --repeats 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from atomiton_core import Edge, Flow, NodeSpec, create_conductor
from benchmarks import plugin

RESULTS = Path(__file__).parent / "results"


def make_flow(shape: str, n: int, isolated: bool) -> Flow:
    params: dict[str, Any] = {"isolation": "process"} if isolated else {}
    return make_chain_or_fanout(shape, n, "bench.thread", params)


def make_chain_or_fanout(
    shape: str, n: int, node_type: str, params: dict[str, Any] | None = None
) -> Flow:
    """A chain of n nodes, or one source fanning out to n - 2 nodes gathered by one sink."""
    nodes = [NodeSpec(id=f"n{i}", type=node_type, parameters=dict(params or {})) for i in range(n)]
    if shape == "chain":
        pairs = [(i - 1, i) for i in range(1, n)]
    else:  # fan-out: one source, n - 2 independent nodes, one sink taking them all
        pairs = [(0, i) for i in range(1, n - 1)] + [(i, n - 1) for i in range(1, n - 1)]
    edges = [
        Edge(id=f"e{k}", source=f"n{a}", target=f"n{b}", source_handle="out", target_handle="x")
        for k, (a, b) in enumerate(pairs)
    ]
    return Flow(id=f"{shape}-{n}", name=shape, nodes=nodes, edges=edges)


async def timed_result(conductor: Any, what: Any, **kw: Any) -> tuple[float, Any]:
    """Seconds ``execute(what)`` took, and its result (a failed run is an error)."""
    t0 = time.perf_counter()
    result = await conductor.execute(what, **kw)
    took = time.perf_counter() - t0
    if not result.ok:
        raise RuntimeError(f"benchmark flow failed: {result.error}")
    return took, result


async def timed(conductor: Any, what: Any, **kw: Any) -> float:
    return (await timed_result(conductor, what, **kw))[0]


async def measure(n: int = 200, repeats: int = 7) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "repeats": repeats, "shapes": {}}
    t0 = time.perf_counter()
    with create_conductor("memory://bench-isolation", plugins=[plugin], record_runs=False) as c:
        first = await c.execute(make_flow("chain", 2, True))
        out["cold_start_ms"] = (time.perf_counter() - t0) * 1000
        assert first.ok, first.error
        for shape in ("chain", "fanout"):
            iso, thr = make_flow(shape, n, True), make_flow(shape, n, False)
            await timed(c, iso)  # every worker warm
            await timed(c, thr)
            rows = []
            for r in range(repeats):
                pair = [(iso, "iso"), (thr, "thread")]
                if r % 2:
                    pair.reverse()
                times = {name: await timed(c, flow) for flow, name in pair}
                rows.append(times)
            us = {k: statistics.median(t[k] for t in rows) / n * 1e6 for k in ("iso", "thread")}
            ratios = [t["iso"] / t["thread"] for t in rows]
            out["shapes"][shape] = {
                "isolated_us": us["iso"],
                "thread_us": us["thread"],
                "ratio": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
            }
        out["workers"] = c.process_pool.size
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"N = {res['n']}, {res['repeats']} interleaved repeats, medians; pool of "
        f"{res['workers']} workers; cold start (new conductor, first isolated run) "
        f"{res['cold_start_ms']:.0f} ms",
        "",
        "| shape | isolated µs/node | thread µs/node | ratio (min-max) |",
        "|---|---|---|---|",
    ]
    for shape, r in res["shapes"].items():
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {shape} | {r['isolated_us']:.0f} | {r['thread_us']:.0f} | "
            f"{r['ratio']:.1f}x ({lo:.1f}-{hi:.1f}) |"
        )
    return "\n".join(lines) + "\n"


def run_main(
    doc: str | None,
    n: int,
    repeats: int,
    tag: str,
    measure: Callable[[int, int], Coroutine[Any, Any, dict[str, Any]]],
    markdown: Callable[[dict[str, Any]], str],
) -> None:
    """A benchmark module's command line: ``--n``, ``--repeats``, ``--tag``; the results go
    to ``results/<tag>.json`` and ``.md``, and the table is printed."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--tag", default=tag)
    args = parser.parse_args()
    res = asyncio.run(measure(args.n, args.repeats))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(text)
    print(text)


def main() -> None:
    run_main(__doc__, 200, 7, "isolation", measure, markdown)


if __name__ == "__main__":
    main()
