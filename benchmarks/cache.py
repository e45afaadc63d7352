"""What the output cache saves: a flow of 1,000 cacheable nodes that each do about 1 ms of
work, run once (every node runs and stores its entry) and again (every node a hit), on the
path a user takes (``create_conductor(folder)`` defaults, ``execute(flow)``, local storage).

    python -m benchmarks.cache                     # N = 1,000, 5 repeats
    python -m benchmarks.cache --n 50 --repeats 1
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from typing import Any

from atomiton_core import create_conductor
from benchmarks import plugin
from benchmarks.isolation import make_chain_or_fanout, run_main, timed_result


async def measure(n: int = 1000, repeats: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "repeats": repeats, "rows": []}
    for shape in ("chain", "fanout"):
        flow = make_chain_or_fanout(shape, n, "bench.work")
        for i, spec in enumerate(flow.nodes):  # every node's work its own
            spec.parameters["salt"] = i
        rows = []
        for _ in range(repeats):
            folder = tempfile.mkdtemp(prefix="atomiton-bench-cache-")
            try:
                with create_conductor(folder, plugins=[plugin]) as c:
                    first, r1 = await timed_result(c, flow)
                    second, r2 = await timed_result(c, flow)
                    off, _ = await timed_result(c, flow, cache="off")
                statuses = {str(res.status) for res in r2.nodes.values()}
                assert statuses == {"cached"}, statuses
                assert r1.outputs == r2.outputs
                rows.append({"first": first, "cached": second, "off": off})
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        out["rows"].append(
            {
                "shape": shape,
                **{
                    f"{k}_ms": statistics.median(r[k] for r in rows) * 1000
                    for k in ("first", "cached", "off")
                },
                "ratio": statistics.median(r["cached"] / r["first"] for r in rows),
            }
        )
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"N = {res['n']} nodes of ~1 ms of work, {res['repeats']} repeats (a fresh cache each), "
        "medians, local storage",
        "",
        "| shape | first run ms (entries stored) | second run ms (all cached) | no cache ms "
        "| cached / first |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['shape']} | {r['first_ms']:.0f} | {r['cached_ms']:.0f} | {r['off_ms']:.0f} | "
            f"{r['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    run_main(__doc__, 1000, 5, "cache", measure, markdown)


if __name__ == "__main__":
    main()
