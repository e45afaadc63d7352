"""What measuring every node's CPU time costs: the same flows with ``cpu_time`` on (the
default) and off, on the path a user takes (``create_conductor()`` defaults but in-memory
storage, ``execute(flow)``) and on a prepared plan (``execute(plan)``, where the engine's own
cost per node is smallest and the clock's share largest).

Both conductors live in one process; runs are interleaved and repeated; the figure is the
median µs per node and the ratio on / off of the same repeat.

    python -m benchmarks.cpu_time                  # N = 10,000, 7 repeats
    python -m benchmarks.cpu_time --n 200 --repeats 2
"""

from __future__ import annotations

import statistics
from typing import Any

from atomiton_core import create_conductor
from benchmarks import plugin
from benchmarks.isolation import make_chain_or_fanout, run_main, timed


async def measure(n: int = 10_000, repeats: int = 7) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "repeats": repeats, "rows": []}
    on = create_conductor("memory://bench-cpu-on", plugins=[plugin])
    off = create_conductor("memory://bench-cpu-off", plugins=[plugin], cpu_time=False)
    with on, off:
        for kind in ("inline", "async"):
            for shape in ("chain", "fanout"):
                flow = make_chain_or_fanout(shape, n, f"bench.{kind}")
                for path in ("flow", "plan"):
                    what = {c: (flow if path == "flow" else c.prepare(flow)) for c in (on, off)}
                    for c in (on, off):
                        await timed(c, what[c])  # warm
                    rows = []
                    for r in range(repeats):
                        pair = [(on, "on"), (off, "off")]
                        if r % 2:
                            pair.reverse()
                        rows.append({name: await timed(c, what[c]) for c, name in pair})
                    ratios = [t["on"] / t["off"] for t in rows]
                    out["rows"].append(
                        {
                            "kind": kind,
                            "shape": shape,
                            "path": path,
                            "on_us": statistics.median(t["on"] for t in rows) / n * 1e6,
                            "off_us": statistics.median(t["off"] for t in rows) / n * 1e6,
                            "ratio": statistics.median(ratios),
                            "ratio_range": [min(ratios), max(ratios)],
                        }
                    )
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"N = {res['n']}, {res['repeats']} interleaved repeats, medians",
        "",
        "| nodes | shape | path | cpu_time on µs/node | off µs/node | ratio (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {r['kind']} | {r['shape']} | execute({r['path']}) | {r['on_us']:.1f} | "
            f"{r['off_us']:.1f} | {r['ratio']:.2f} ({lo:.2f}-{hi:.2f}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    run_main(__doc__, 10_000, 7, "cpu_time", measure, markdown)


if __name__ == "__main__":
    main()
