"""A run as users start it, against the asyncio floor, in one process: what issue 15 targets.

For each shape (chain, fan-out, lattice) of N trivial async nodes, interleaved and repeated:

- ``floor``: asyncio, one Task per node awaiting its predecessors (as in ``benchmarks.run``);
- ``user``: ``create_conductor(folder)`` with its defaults (local storage, the full run
  record, CPU time, the plan cache), ``await conductor.execute(flow)`` on the same Flow
  object each time: what a user's second and later runs cost;
- ``user-first``: the same with the plan cache emptied before each run (validation and
  planning included): what a first run costs;
- ``plan``: the engine alone, ``execute(plan)`` on a prepared plan, no record (the grid's
  conductor of ``benchmarks.run``), with and without the CPU clock (``plan-nocpu``).

Besides the times: µs a node spent in full garbage collections during each kind of run, the
µs a node of planning (``plan_flow``, no cache), GC-tracked objects a node of the flow, the
plan and the result, and, each in a fresh process, the peak RSS of 100,000-node chain and
fan-out runs against the floor's own.

    python -m benchmarks.userpath                        # N = 10,000 and 100,000
    python -m benchmarks.userpath --sizes 2000 --repeats 2 --memory-n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.engines import prepare_asyncio
from benchmarks.graphs import SHAPES, to_flow

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
KINDS = ("floor", "user", "user-first", "plan", "plan-nocpu")


class _FullCollections:
    """Seconds spent in collections of the oldest generation while it is on."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t


def _tracked_per_node(make: Callable[[], Any], n: int) -> tuple[Any, float]:
    gc.collect()
    before = len(gc.get_objects())
    made = make()
    gc.collect()
    return made, (len(gc.get_objects()) - before) / n


async def measure_shape(shape: str, n: int, repeats: int, folder: str) -> dict[str, Any]:
    from atomiton_core import create_conductor
    from atomiton_core.conductor.plan import plan_flow
    from benchmarks import plugin
    from benchmarks.run import make_conductor

    graph = SHAPES[shape](n)
    count = len(graph)
    user = create_conductor(f"{folder}/{shape}-{n}", plugins=[plugin])
    engine = make_conductor()
    nocpu = create_conductor(
        f"memory://bench-nocpu-{time.monotonic_ns()}",
        plugins=[plugin],
        autoload=False,
        record_runs=False,
        cpu_time=False,
    )
    try:
        flow, flow_objects = _tracked_per_node(
            lambda: to_flow(graph, "bench.async", f"user-{shape}"), count
        )
        plan, plan_objects = _tracked_per_node(lambda: engine.prepare(flow), count)
        plan2 = nocpu.prepare(flow)
        floor = prepare_asyncio(graph, None)
        sink = f"n{count - 1}"

        async def user_run() -> Any:
            result = await user.execute(flow)
            if not result.ok:
                raise RuntimeError(f"user run failed: {result.error}")
            return result

        async def first_run() -> Any:
            user.plans.clear()
            return await user_run()

        runs: dict[str, Callable[[], Awaitable[Any]]] = {
            "floor": floor,
            "user": user_run,
            "user-first": first_run,
            "plan": lambda: engine.execute(plan),
            "plan-nocpu": lambda: nocpu.execute(plan2),
        }
        for run in runs.values():  # warm: the plan cache, the record's folder, the pools
            await run()
        result = None
        times: dict[str, list[float]] = {k: [] for k in runs}
        full_gc: dict[str, list[float]] = {k: [] for k in runs}
        collections = _FullCollections()
        gc.callbacks.append(collections)
        try:
            for r in range(repeats):
                names = list(runs)
                k = r % len(names)
                for name in names[k:] + names[:k]:
                    gc.collect()
                    collections.seconds = 0.0
                    t0 = time.perf_counter()
                    answer = await runs[name]()
                    times[name].append(time.perf_counter() - t0)
                    full_gc[name].append(collections.seconds)
                    if name == "user" and result is None:
                        result = answer
        finally:
            gc.callbacks.remove(collections)
        assert result is not None and sink in result.outputs
        del result
        gc.collect()
        before = len(gc.get_objects())
        kept = await user_run()
        gc.collect()
        result_objects = (len(gc.get_objects()) - before) / count
        del kept
        planning = []
        for _ in range(max(3, repeats)):
            gc.collect()
            t0 = time.perf_counter()
            plan_flow(flow, engine.catalogue)
            planning.append(time.perf_counter() - t0)
    finally:
        for c in (user, engine, nocpu):
            c.close()
    floor_times = times["floor"]
    row: dict[str, Any] = {"shape": shape, "n": count}
    for name, ts in times.items():
        per = [t / count * 1e6 for t in ts]
        ratios = [t / f for t, f in zip(ts, floor_times, strict=True)]
        row[name] = {
            "us": statistics.median(per),
            "us_range": [min(per), max(per)],
            "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "full_gc_us": statistics.median(full_gc[name]) / count * 1e6,
        }
    row["planning_us"] = statistics.median(planning) / count * 1e6
    row["planning_us_range"] = [min(planning) / count * 1e6, max(planning) / count * 1e6]
    row["tracked_per_node"] = {
        "flow": flow_objects,
        "plan": plan_objects,
        "result": result_objects,
    }
    return row


async def measure(sizes: list[int], repeats: int, shapes: list[str]) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="atomiton-bench-user-")
    rows = []
    try:
        for n in sizes:
            for shape in shapes:
                rows.append(await measure_shape(shape, n, repeats, folder))
                print(_row_text(rows[-1]), flush=True)
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"repeats": repeats, "rows": rows}


# -- memory, each measurement in a fresh process -------------------------------------------
def _status(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def job_memory(kind: str, shape: str, n: int) -> dict[str, Any]:
    """Peak RSS (``VmHWM``) above the process's RSS before the graph was built."""
    graph_of = SHAPES[shape]
    if kind == "floor":
        base = _status("VmRSS")
        run = prepare_asyncio(graph_of(n), None)
        asyncio.run(run())  # type: ignore[arg-type]
        return {"kind": kind, "shape": shape, "n": n, "peak_mib": _status("VmHWM") - base}
    from atomiton_core import create_conductor
    from benchmarks import plugin

    folder = tempfile.mkdtemp(prefix="atomiton-bench-mem-")
    try:
        record = kind.removeprefix("user-")
        conductor = create_conductor(folder, plugins=[plugin], record=record)
        base = _status("VmRSS")
        flow = to_flow(graph_of(n), "bench.async", f"mem-{shape}")
        after_flow = _status("VmRSS")

        async def go() -> Any:
            return await conductor.execute(flow)

        result = asyncio.run(go())
        if not result.ok:
            raise RuntimeError(f"run failed: {result.error}")
        conductor.close()
        return {
            "kind": kind,
            "shape": shape,
            "n": n,
            "peak_mib": _status("VmHWM") - base,
            "flow_mib": after_flow - base,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def memory(n: int, shapes: list[str]) -> list[dict[str, Any]]:
    out = []
    for shape in shapes:
        row: dict[str, Any] = {"shape": shape, "n": n}
        for kind in ("floor", "user-full", "user-off"):
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.userpath", "--job", kind, shape, str(n)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
            )
            row[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        floor = row["floor"]["peak_mib"]
        for kind in ("user-full", "user-off"):
            r = row[kind]
            r["kb_per_node_above_floor"] = (r["peak_mib"] - floor) * 1024 / n
            r["kb_per_node_above_floor_less_flow"] = (
                (r["peak_mib"] - r["flow_mib"] - floor) * 1024 / n
            )
        out.append(row)
    return out


# -- the report ----------------------------------------------------------------------------
def _row_text(r: dict[str, Any]) -> str:
    parts = [f"{r['shape']:8} n={r['n']:<7}"]
    for name in KINDS:
        parts.append(f"{name} {r[name]['us']:.2f} ({r[name]['ratio']:.2f}x)")
    parts.append(f"planning {r['planning_us']:.1f}")
    return "  ".join(parts)


def _cell(c: dict[str, Any]) -> str:
    lo, hi = c["ratio_range"]
    return f"{c['us']:.1f} µs, **{c['ratio']:.2f}x** ({lo:.2f}-{hi:.2f})"


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"{res['repeats']} interleaved repeats, medians (min-max of the ratio to the floor "
        "of the same repeat); µs per node",
        "",
        "| shape | N | floor | user (2x) | user, first run | plan (1.2x) | plan, no CPU clock "
        "| planning (10 µs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['shape']} | {r['n']:,} | {r['floor']['us']:.1f} µs | {_cell(r['user'])} | "
            f"{_cell(r['user-first'])} | {_cell(r['plan'])} | {_cell(r['plan-nocpu'])} | "
            f"{r['planning_us']:.1f} µs |"
        )
    lines += [
        "",
        "Full garbage collections, µs per node (median), and GC-tracked objects per node:",
        "",
        "| shape | N | floor | user | plan | tracked: flow | plan | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        t = r["tracked_per_node"]
        lines.append(
            f"| {r['shape']} | {r['n']:,} | {r['floor']['full_gc_us']:.1f} | "
            f"{r['user']['full_gc_us']:.1f} | {r['plan']['full_gc_us']:.1f} | "
            f"{t['flow']:.1f} | {t['plan']:.1f} | {t['result']:.1f} |"
        )
    if res.get("memory"):
        lines += [
            "",
            "Peak RSS above the process before the graph was built (each in a fresh process):",
            "",
            "| shape | N | floor | ours, full record | ours, record off | above the floor, "
            "full / off (2 KB) | the same less the flow object |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in res["memory"]:
            full, off = m["user-full"], m["user-off"]
            lines.append(
                f"| {m['shape']} | {m['n']:,} | {m['floor']['peak_mib']:.0f} MiB | "
                f"{full['peak_mib']:.0f} MiB | {off['peak_mib']:.0f} MiB | "
                f"{full['kb_per_node_above_floor']:.2f} / {off['kb_per_node_above_floor']:.2f}"
                f" KB | {full['kb_per_node_above_floor_less_flow']:.2f} / "
                f"{off['kb_per_node_above_floor_less_flow']:.2f} KB |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--job"]:
        kind, shape, n = argv[1], argv[2], int(argv[3])
        print(json.dumps(job_memory(kind, shape, n)))
        return {}
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-n", type=int, default=100_000)
    parser.add_argument("--tag", default="userpath")
    args = parser.parse_args(argv)
    res = asyncio.run(measure(args.sizes, args.repeats, args.shapes))
    if args.memory_n:
        res["memory"] = memory(args.memory_n, ["chain", "fanout"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(text)
    print(text)
    return res


if __name__ == "__main__":
    main()
