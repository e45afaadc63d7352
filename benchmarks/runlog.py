"""What the run log costs: the same flows with ``record="full"`` (the default: events log,
every node's outputs, the run record) against ``record="off"``, on the path a user takes
(``create_conductor(folder)``, ``execute(flow)``) with local storage, N = 10,000.

Both conductors live in one process; runs are interleaved and repeated; the figure is the
median µs per node and the ratio logged / unlogged of the same repeat (target: within 1.5x).
``summary`` (the record only) is timed too.

    python -m benchmarks.runlog                    # N = 10,000, 5 repeats
    python -m benchmarks.runlog --n 200 --repeats 2
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from typing import Any

from atomiton_core import create_conductor
from benchmarks import plugin
from benchmarks.isolation import make_chain_or_fanout, run_main, timed

MODES = ("full", "summary", "off")


async def measure(n: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "repeats": repeats, "rows": []}
    folder = tempfile.mkdtemp(prefix="atomiton-bench-runlog-")
    try:
        conductors = {
            mode: create_conductor(f"{folder}/{mode}", plugins=[plugin], record=mode)
            for mode in MODES
        }
        for kind in ("inline", "async"):
            for shape in ("chain", "fanout"):
                flow = make_chain_or_fanout(shape, n, f"bench.{kind}")
                for c in conductors.values():
                    await timed(c, flow)  # warm
                rows = []
                for r in range(repeats):
                    order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
                    rows.append({m: await timed(conductors[m], flow) for m in order})
                ratios = [t["full"] / t["off"] for t in rows]
                out["rows"].append(
                    {
                        "kind": kind,
                        "shape": shape,
                        **{
                            f"{m}_us": statistics.median(t[m] for t in rows) / n * 1e6
                            for m in MODES
                        },
                        "ratio": statistics.median(ratios),
                        "ratio_range": [min(ratios), max(ratios)],
                        "summary_ratio": statistics.median(t["summary"] / t["off"] for t in rows),
                    }
                )
        for c in conductors.values():
            c.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"N = {res['n']}, {res['repeats']} interleaved repeats, medians, local storage",
        "",
        "| nodes | shape | full µs/node | summary µs/node | off µs/node | full / off (min-max) "
        "| summary / off |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {r['kind']} | {r['shape']} | {r['full_us']:.1f} | {r['summary_us']:.1f} | "
            f"{r['off_us']:.1f} | {r['ratio']:.2f} ({lo:.2f}-{hi:.2f}) | "
            f"{r['summary_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    run_main(__doc__, 10_000, 5, "runlog", measure, markdown)


if __name__ == "__main__":
    main()
