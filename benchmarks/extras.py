"""Measurements besides per-node overhead: YAML load + validate, peak memory, many executions.

Memory figures come from a fresh subprocess each (``python -m benchmarks.extras JOB``), so
what the rest of the benchmark allocated does not pollute them: peak RSS is the child's
``ru_maxrss``, current RSS is read from ``/proc/self/statm``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["markdown", "run_all"]

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far.

    Linux's ``ru_maxrss`` survives fork + exec (a child starts with its parent's peak), so
    ``VmHWM`` of ``/proc/self/status`` comes first; ``ru_maxrss`` is KiB on Linux, bytes on macOS.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def rss_mib() -> float:
    """Current resident memory of this process."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        return float(psutil.Process().memory_info().rss) / MIB


def _conductor(**kw: Any) -> Any:
    from atomiton_core import create_conductor
    from benchmarks import plugin

    return create_conductor(
        f"memory://bench-{time.monotonic_ns()}",
        plugins=[plugin],
        autoload=False,
        record_runs=False,
        **kw,
    )


# -- jobs (each runs in its own subprocess) ------------------------------------------------


def job_yaml(n: int, shape: str) -> dict[str, Any]:
    """Write an n-node flow with dumps_flow, then time loads_flow and validate."""
    from atomiton_core import dumps_flow, loads_flow
    from benchmarks.graphs import SHAPES, to_flow

    conductor = _conductor()
    flow = to_flow(SHAPES[shape](n), "bench.async", f"yaml-{shape}")
    t0 = time.perf_counter()
    text = dumps_flow(flow)
    dump_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = loads_flow(text, source=f"{shape}.flow.yaml")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = conductor.validate(loaded)
    validate_s = time.perf_counter() - t0
    if not report.ok:
        raise AssertionError(str(report))
    t0 = time.perf_counter()
    conductor.prepare(loaded)
    prepare_s = time.perf_counter() - t0
    return {
        "shape": shape,
        "nodes": len(loaded.nodes),
        "edges": len(loaded.edges),
        "yaml_bytes": len(text),
        "dump_s": dump_s,
        "load_s": load_s,
        "validate_s": validate_s,
        "load_validate_s": load_s + validate_s,
        "prepare_s": prepare_s,
    }


def job_rss(n: int, shape: str, node_type: str, retain: str) -> dict[str, Any]:
    """Peak RSS of building, planning and running one n-node flow."""
    from benchmarks.graphs import SHAPES, to_flow

    conductor = _conductor(**_retain_kwargs(retain))
    base = rss_mib()
    t0 = time.perf_counter()
    flow = to_flow(SHAPES[shape](n), node_type, f"rss-{shape}")
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = conductor.prepare(flow)
    prepare_s = time.perf_counter() - t0
    after_plan = rss_mib()

    async def go() -> Any:
        return await conductor.execute(plan)

    t0 = time.perf_counter()
    result = asyncio.run(go())
    run_s = time.perf_counter() - t0
    if not result.ok:
        raise AssertionError(f"run failed: {result.error}")
    return {
        "shape": shape,
        "nodes": n,
        "node_type": node_type,
        "retain": retain,
        "base_rss_mib": base,
        "after_plan_rss_mib": after_plan,
        "peak_rss_mib": peak_rss_mib(),
        "build_s": build_s,
        "prepare_s": prepare_s,
        "run_s": run_s,
        "node_results": len(result.nodes),
    }


def _retain_kwargs(retain: str) -> dict[str, Any]:
    if retain == "all":
        return {}
    if retain == "sinks":
        return {"retain_outputs": False}
    return {"retain_outputs": False, "retain_results": retain}


def _small_flow(node_type: str, sleep_ms: float | None = None) -> Any:
    from benchmarks.graphs import fanout, to_flow

    flow = to_flow(fanout(10), node_type, f"small-{node_type}")
    if sleep_ms is not None:
        for spec in flow.nodes:
            spec.parameters = {"ms": sleep_ms}
    return flow


def job_concurrent(k: int, sleep_ms: float) -> dict[str, Any]:
    """k executions of a 10-node flow of sleeping nodes, all started at once."""
    conductor = _conductor()
    plan = conductor.prepare(_small_flow("bench.sleep", sleep_ms))
    base = rss_mib()

    async def go() -> list[Any]:
        return await asyncio.gather(*(conductor.execute(plan) for _ in range(k)))

    t0 = time.perf_counter()
    results = asyncio.run(go())
    wall_s = time.perf_counter() - t0
    ok = sum(1 for r in results if r.ok)
    return {
        "executions": k,
        "nodes_each": 10,
        "sleep_ms": sleep_ms,
        "completed": ok,
        "errors": k - ok,
        "wall_s": wall_s,
        "base_rss_mib": base,
        "peak_rss_mib": peak_rss_mib(),
    }


def job_sequential(k: int, node_type: str) -> dict[str, Any]:
    """k executions one after another, current RSS sampled along the way."""
    conductor = _conductor()
    plan = conductor.prepare(_small_flow(node_type))
    every = max(1, k // 20)
    samples: list[tuple[int, float]] = []

    async def go() -> int:
        ok = 0
        for i in range(1, k + 1):
            ok += (await conductor.execute(plan)).ok
            if i % every == 0:
                gc.collect()
                samples.append((i, rss_mib()))
        return ok

    t0 = time.perf_counter()
    ok = asyncio.run(go())
    wall_s = time.perf_counter() - t0
    warm = samples[len(samples) // 4][1]  # after a quarter of the runs: caches are warm
    tail = [s[1] for s in samples[len(samples) // 4 :]]
    return {
        "executions": k,
        "node_type": node_type,
        "completed": ok,
        "wall_s": wall_s,
        "per_execution_us": wall_s / k * 1e6,
        "rss_samples_mib": samples,
        "rss_after_warmup_mib": warm,
        "rss_last_mib": samples[-1][1],
        "rss_growth_after_warmup_mib": max(tail) - warm,
    }


JOBS: dict[str, Callable[..., dict[str, Any]]] = {
    "yaml": job_yaml,
    "rss": job_rss,
    "concurrent": job_concurrent,
    "sequential": job_sequential,
}


def in_subprocess(job: str, **kwargs: Any) -> dict[str, Any]:
    """Run one job in a fresh interpreter and return its JSON answer."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.extras", job, json.dumps(kwargs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        return {"job": job, **kwargs, "error": proc.stderr.strip().splitlines()[-1:]}
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def run_all(*, quick: bool = False, log: Any = print) -> dict[str, Any]:
    big = 10_000 if quick else 100_000
    yaml_n = 1_000 if quick else 10_000
    out: dict[str, Any] = {"yaml": [], "rss": []}
    for shape in ("chain", "lattice"):
        r = in_subprocess("yaml", n=yaml_n, shape=shape)
        out["yaml"].append(r)
        log(f"  yaml {shape} n={yaml_n}: {_short(r, 'load_s', 'validate_s', 'load_validate_s')}")
    for shape in ("chain", "fanout"):
        for node_type, retain in (
            ("bench.async", "all"),
            ("bench.async", "sinks"),
            ("bench.async", "errors"),
            ("bench.inline", "all"),
        ):
            r = in_subprocess("rss", n=big, shape=shape, node_type=node_type, retain=retain)
            out["rss"].append(r)
            log(
                f"  rss {shape} n={big} {node_type} retain={retain}: {_short(r, 'peak_rss_mib', 'run_s')}"
            )
    k = 100 if quick else 1_000
    r = in_subprocess("concurrent", k=k, sleep_ms=1.0)
    out["concurrent"] = r
    log(f"  concurrent k={k}: {_short(r, 'completed', 'errors', 'wall_s', 'peak_rss_mib')}")
    k = 1_000 if quick else 10_000
    r = in_subprocess("sequential", k=k, node_type="bench.async")
    out["sequential"] = r
    log(
        f"  sequential k={k}: "
        f"{_short(r, 'completed', 'per_execution_us', 'rss_after_warmup_mib', 'rss_growth_after_warmup_mib')}"
    )
    return out


def _short(r: dict[str, Any], *keys: str) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    return " ".join(f"{k}={r[k]:.3f}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys)


def markdown(extras: dict[str, Any]) -> str:
    lines = ["## Other measurements\n"]
    if extras.get("yaml"):
        lines += [
            "| YAML flow | nodes | edges | bytes | dump s | load s | validate s | load+validate s | prepare s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in extras["yaml"]:
            if "error" in r:
                lines.append(f"| {r.get('shape')} | error: {r['error']} |")
                continue
            lines.append(
                f"| {r['shape']} | {r['nodes']:,} | {r['edges']:,} | {r['yaml_bytes']:,} | "
                f"{r['dump_s']:.2f} | {r['load_s']:.2f} | {r['validate_s']:.2f} | "
                f"**{r['load_validate_s']:.2f}** | {r['prepare_s']:.2f} |"
            )
        lines.append("")
    if extras.get("rss"):
        lines += [
            "| one run (own process) | nodes | node type | retain | RSS before MiB | after plan MiB | **peak RSS MiB** | build s | plan s | run s |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in extras["rss"]:
            if "error" in r:
                lines.append(
                    f"| {r.get('shape')} | {r.get('n')} | {r.get('node_type')} | {r.get('retain')} | error: {r['error']} |"
                )
                continue
            lines.append(
                f"| {r['shape']} | {r['nodes']:,} | {r['node_type']} | {r['retain']} | "
                f"{r['base_rss_mib']:.0f} | {r['after_plan_rss_mib']:.0f} | **{r['peak_rss_mib']:.0f}** | "
                f"{r['build_s']:.2f} | {r['prepare_s']:.2f} | {r['run_s']:.2f} |"
            )
        lines.append("")
    c = extras.get("concurrent")
    if c:
        if "error" in c:
            lines.append(f"Concurrent executions: error {c['error']}\n")
        else:
            lines.append(
                f"**Concurrent**: {c['executions']:,} executions of a {c['nodes_each']}-node flow "
                f"of `asyncio.sleep({c['sleep_ms'] / 1000:g})` nodes started at once: "
                f"{c['completed']:,} completed, {c['errors']} errors, {c['wall_s']:.2f} s wall, "
                f"peak RSS {c['peak_rss_mib']:.0f} MiB (before: {c['base_rss_mib']:.0f} MiB).\n"
            )
    s = extras.get("sequential")
    if s:
        if "error" in s:
            lines.append(f"Sequential executions: error {s['error']}\n")
        else:
            lines.append(
                f"**Sequential**: {s['executions']:,} executions of a 10-node flow one after "
                f"another: {s['completed']:,} completed, {s['per_execution_us']:.0f} µs each; "
                f"RSS after warm-up {s['rss_after_warmup_mib']:.1f} MiB, last "
                f"{s['rss_last_mib']:.1f} MiB, growth after warm-up "
                f"{s['rss_growth_after_warmup_mib']:.2f} MiB.\n"
            )
    return "\n".join(lines)


def _main() -> None:
    job = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(json.dumps(JOBS[job](**kwargs)))


if __name__ == "__main__":
    _main()
