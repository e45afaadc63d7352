"""Run the benchmark: ``python -m benchmarks.run [--quick] [--sizes ...] [--repeats R]``.

For every shape and size, each engine is prepared once (planning timed apart), run once to
warm up and check its answer, then timed ``repeats`` times, engines interleaved in a rotating
order inside one process so that drift and noise hit them all alike. Reported: per-node
microseconds, median and min-max. Then the extra measurements (YAML load + validate, peak
memory, concurrent and sequential executions; see ``benchmarks.extras``). Results go to
``benchmarks/results/`` as JSON, a markdown table and a log-log plot.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import extras
from benchmarks.engines import ENGINES, available
from benchmarks.graphs import SHAPES

__all__ = ["main", "run_grid"]

RESULTS = Path(__file__).parent / "results"
DEFAULT_SIZES = (100, 1_000, 10_000, 100_000)
#: The lattice has about 2 edges a node and sqrt(n) sinks; it stops at 10,000 by default.
SHAPE_MAX_N = {"chain": 100_000, "fanout": 100_000, "lattice": 10_000}
#: Seconds of timed runs one engine may take in one cell before its repeats are cut.
BUDGET_S = 60.0


def make_conductor() -> Any:
    from atomiton_core import create_conductor
    from benchmarks import plugin

    return create_conductor(
        f"memory://bench-{time.monotonic_ns()}",
        plugins=[plugin],
        autoload=False,
        record_runs=False,
    )


async def run_grid(
    shapes: list[str],
    sizes: list[int],
    engines: list[str],
    repeats: int,
    *,
    max_n: dict[str, int] | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Time every engine on every shape and size; one row per (shape, size, engine)."""
    conductor = make_conductor()
    rows: list[dict[str, Any]] = []
    try:
        for shape in shapes:
            for n in sizes:
                if n > SHAPE_MAX_N[shape] and (max_n is None or shape not in max_n):
                    continue
                rows.extend(await _cell(conductor, shape, n, engines, repeats, max_n, log))
    finally:
        conductor.close()
    return rows


async def _cell(
    conductor: Any,
    shape: str,
    n: int,
    engines: list[str],
    repeats: int,
    max_n: dict[str, int] | None,
    log: Any,
) -> list[dict[str, Any]]:
    graph = SHAPES[shape](n)
    count = len(graph)
    runners: dict[str, Any] = {}
    budget: dict[str, int] = {}
    rows: dict[str, dict[str, Any]] = {}
    expected: Any = None
    for name in engines:
        engine = ENGINES[name]
        limit = (max_n or {}).get(name, engine.max_n)
        if count > limit or not available(name):
            continue
        t0 = time.perf_counter()
        try:
            runner = engine.prepare(graph, conductor)
            prepare_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            answer = await runner()  # warm-up, and the answer every engine must agree on
            warm_s = time.perf_counter() - t0
        except Exception as exc:  # a peer that cannot run this graph is reported, not fatal
            rows[name] = _row(shape, count, name, [], error=f"{type(exc).__name__}: {exc}"[:200])
            log(f"  {shape:8} n={count:<7} {name:16} ERROR {rows[name]['error']}")
            continue
        if expected is None:
            expected = answer
        elif answer != expected:
            raise AssertionError(f"{name} on {shape}/{count}: {answer!r} != {expected!r}")
        runners[name] = runner
        rows[name] = _row(shape, count, name, [], prepare_s=prepare_s)
        # a very slow peer gets fewer repeats (at least 2), so one cell cannot take hours
        budget[name] = max(2, min(repeats, int(BUDGET_S / max(warm_s, 1e-9))))
    names = list(runners)
    for r in range(repeats):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            if len(rows[name]["times_s"]) >= budget[name]:
                continue
            gc.collect()
            t0 = time.perf_counter()
            await runners[name]()
            rows[name]["times_s"].append(time.perf_counter() - t0)
    out = []
    for name, row in rows.items():
        if row["times_s"]:
            per = [t / count * 1e6 for t in row["times_s"]]
            row["us_per_node"] = {
                "median": statistics.median(per),
                "min": min(per),
                "max": max(per),
            }
            u = row["us_per_node"]
            log(
                f"  {shape:8} n={count:<7} {name:16} {u['median']:8.2f} µs/node "
                f"({u['min']:.2f}-{u['max']:.2f})"
            )
        out.append(row)
    runners.clear()
    gc.collect()
    return out


def _row(shape: str, n: int, engine: str, times: list[float], **extra: Any) -> dict[str, Any]:
    return {"shape": shape, "n": n, "engine": engine, "times_s": times, **extra}


def _fmt(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if "error" in row:
        return "error"
    u = row["us_per_node"]
    return f"{u['median']:.1f} ({u['min']:.1f}-{u['max']:.1f})"


def markdown(rows: list[dict[str, Any]], engines: list[str]) -> str:
    """One table per shape: sizes down, engines across, µs per node median (min-max)."""
    lines: list[str] = []
    present = [e for e in engines if any(r["engine"] == e for r in rows)]
    for shape in dict.fromkeys(r["shape"] for r in rows):
        lines.append(f"**{shape}** — µs per node, median (min-max)\n")
        lines.append("| N | " + " | ".join(present) + " |")
        lines.append("|---:|" + "---:|" * len(present))
        for n in sorted({r["n"] for r in rows if r["shape"] == shape}):
            cells = {r["engine"]: r for r in rows if r["shape"] == shape and r["n"] == n}
            lines.append(f"| {n:,} | " + " | ".join(_fmt(cells.get(e)) for e in present) + " |")
        lines.append("")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]], n: int = 10_000) -> list[dict[str, Any]]:
    """Our async per-node time over the asyncio floor and the peers, at one size."""
    out = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        cells = {
            r["engine"]: r["us_per_node"]["median"]
            for r in rows
            if r["shape"] == shape and r["n"] == n and "us_per_node" in r
        }
        ours = cells.get("atomiton-async")
        if ours is None:
            continue
        entry: dict[str, Any] = {"shape": shape, "n": n, "atomiton_async_us": ours}
        for peer in ("asyncio", "hamilton", "dask"):
            if peer in cells:
                entry[f"vs_{peer}"] = ours / cells[peer]
        out.append(entry)
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    fig, axes = plt.subplots(1, len(shapes), figsize=(5.5 * len(shapes), 4.8), squeeze=False)
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    for ax, shape in zip(axes[0], shapes, strict=True):
        for engine in engines:
            pts = sorted(
                (r["n"], r["us_per_node"])
                for r in rows
                if r["shape"] == shape and r["engine"] == engine and "us_per_node" in r
            )
            if not pts:
                continue
            xs = [p[0] for p in pts]
            med = [p[1]["median"] for p in pts]
            lo = [p[1]["median"] - p[1]["min"] for p in pts]
            hi = [p[1]["max"] - p[1]["median"] for p in pts]
            style = "-o" if engine.startswith("atomiton") else "--s"
            ax.errorbar(xs, med, yerr=[lo, hi], fmt=style, capsize=3, label=engine, ms=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(shape)
        ax.set_xlabel("nodes (N)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("µs per node (median, min-max)")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle("Per-node overhead of trivial nodes (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def environment() -> dict[str, Any]:
    import os

    versions: dict[str, str] = {}
    for dist in ("atomiton-core", "apache-hamilton", "sf-hamilton", "dask", "pydantic"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            continue
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="sizes 100 and 1,000, 3 repeats")
    parser.add_argument("--no-extras", action="store_true", help="only the engine grid")
    parser.add_argument("--extras-only", action="store_true", help="only the extra measurements")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--tag", default="latest", help="file name stem of the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = [s for s in args.sizes if s <= 1_000] or [100]
        args.repeats = min(args.repeats, 3)
    report: dict[str, Any] = {"environment": environment(), "repeats": args.repeats}
    previous = args.out / f"{args.tag}.json"
    if args.extras_only and previous.exists():  # keep the grid of the last full run
        report = {**json.loads(previous.read_text()), "environment": report["environment"]}
    if not args.extras_only:
        print(f"engine grid: shapes={args.shapes} sizes={args.sizes} repeats={args.repeats}")
        rows = asyncio.run(run_grid(args.shapes, args.sizes, args.engines, args.repeats))
        report["grid"] = rows
        report["ratios_at_10000"] = ratios(rows)
    if not args.no_extras:
        print("extras:")
        report["extras"] = extras.run_all(quick=args.quick, log=print)
    write(report, args.out, args.tag, args.engines)
    return report


def write(report: dict[str, Any], out: Path, tag: str, engines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps(report, indent=1, default=str))
    parts = [f"# Benchmark results ({tag})\n", "```", json.dumps(report["environment"]), "```\n"]
    if "grid" in report:
        parts.append(markdown(report["grid"], engines))
        if report.get("ratios_at_10000"):
            parts.append("**Ratios at N = 10,000** (atomiton-async median / peer median)\n")
            parts.append("| shape | atomiton-async µs | vs asyncio | vs hamilton | vs dask.get |")
            parts.append("|---|---:|---:|---:|---:|")
            for r in report["ratios_at_10000"]:
                cols = [
                    f"{r[k]:.3g}x" if k in r else "-"
                    for k in ("vs_asyncio", "vs_hamilton", "vs_dask")
                ]
                parts.append(
                    f"| {r['shape']} | {r['atomiton_async_us']:.1f} | " + " | ".join(cols) + " |"
                )
            parts.append("")
        if plot(report["grid"], out / f"{tag}.png"):
            parts.append(f"![µs per node vs N]({tag}.png)\n")
    if "extras" in report:
        parts.append(extras.markdown(report["extras"]))
    (out / f"{tag}.md").write_text("\n".join(parts))
    print(f"wrote {out / tag}.json, .md" + (", .png" if "grid" in report else ""))


if __name__ == "__main__":
    main()
