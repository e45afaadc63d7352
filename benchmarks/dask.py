"""Blocking nodes on a real Dask cluster, against the same work written with ``client.submit``.

Everything runs on ``distributed.LocalCluster``\\ s this benchmark starts on 127.0.0.1 (worker
processes of one thread each, no dashboard) and closes at the end. Two measurements:

- **per-node overhead**: a chain of N blocking sync nodes (``bench-dask.step``, defined here),
  run by a conductor with its defaults (local storage in a temporary folder, the full run
  record) and ``DaskExecutor(client=client)``, ``await conductor.execute(flow)``; against the
  baseline, the same function chained with ``client.submit``, each task taking the previous
  one's future, on the same client, in the same process, interleaved (the order alternating
  each repeat). Once with trivial nodes (an int, plus one) and once with nodes that pass a
  sizeable value along (``--large-mb`` MB of bytes, rotated by one byte a node, so each node
  makes a value of its own): there also the driver process's peak RSS growth during the run
  (``VmHWM`` reset through ``/proc/self/clear_refs`` before each run, less ``VmRSS`` then);
- **speed-up**: ``--cpu-nodes`` independent nodes of a pure-Python loop of ~``--cpu-ms`` each
  (calibrated in this process), on a cluster of 1 worker and one of 2 (both alive, runs
  interleaved): conductor and ``client.submit`` + ``gather`` on each.

The final value of every conductor run is checked against the baseline's (a mismatch is an
error). Results go to ``results/<tag>.json`` and ``.md`` (``--tag``, default ``dask``).

    python -m benchmarks.dask             # chain of 200, 20 x 10 MB, 200 x 50 ms; 5 repeats
    python -m benchmarks.dask --quick     # chain of 50, 5 x 10 MB, 40 x 50 ms; 2 repeats
    python -m benchmarks.dask --sizes 100 400 --repeats 3 --parts chain large
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cloudpickle
from pydantic import BaseModel

from atomiton_core import Edge, Flow, NodeSpec, create_conductor, hookimpl, node

RESULTS = Path(__file__).parent / "results"
#: Where ``python -m benchmarks.dask`` runs from (not resolved: a linked tree keeps its own).
ROOT = Path(__file__).absolute().parent.parent
PARTS = ("chain", "large", "cpu")
#: The per-node target: the conductor's chain within this factor of ``client.submit``'s.
TARGET_RATIO = 1.5

# worker processes need not import this module: its node functions travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# -- the work, shared by the node types and the baseline ------------------------------------
def advance(x: Any, size: int) -> Any:
    """One hop of the chain: ``size == 0`` counts (``x + 1``); otherwise the first hop makes
    ``size`` bytes and each later one rotates its input by a byte (a new value each hop)."""
    if not size:
        return (x or 0) + 1
    if x is None:
        return (bytes(range(256)) * (size // 256 + 1))[:size]
    return x[1:] + x[:1]


def spin(loops: int) -> int:
    """Pure-Python CPU work that holds the GIL throughout."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


class StepParams(BaseModel):
    size: int = 0


class SpinParams(BaseModel):
    loops: int = 1_000_000


@node("bench-dask.step", params=StepParams, outputs={"out": Any})
def step(ctx: Any, params: StepParams, x: Any = None) -> dict[str, Any]:
    return {"out": advance(x, params.size)}


@node("bench-dask.spin", params=SpinParams, outputs={"out": int})
def spin_node(ctx: Any, params: SpinParams) -> dict[str, Any]:
    return {"out": spin(params.loops)}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [step, spin_node]


def chain_flow(n: int, size: int) -> Flow:
    nodes = [
        NodeSpec(id=f"n{i}", type="bench-dask.step", parameters={"size": size}) for i in range(n)
    ]
    edges = [
        Edge(id=f"e{i}", source=f"n{i - 1}", target=f"n{i}", source_handle="out", target_handle="x")
        for i in range(1, n)
    ]
    return Flow(id=f"dask-chain-{n}-{size}", name="chain", nodes=nodes, edges=edges)


def fanout_flow(n: int, loops: int) -> Flow:
    nodes = [
        NodeSpec(id=f"n{i}", type="bench-dask.spin", parameters={"loops": loops}) for i in range(n)
    ]
    return Flow(id=f"dask-spin-{n}", name="spin", nodes=nodes)


# -- the cluster ---------------------------------------------------------------------------
@contextmanager
def cluster(workers: int) -> Iterator[Any]:
    """A client of a new LocalCluster: ``workers`` processes of one thread, on loopback.

    No dashboard; the scheduler's plain HTTP routes (health, metrics), which it serves
    anyway, on a free port: with ``dashboard_address=None`` they take 8787, and a busy 8787
    makes distributed leak a socket."""
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
        ) as local,
        distributed.Client(local, set_as_default=False) as client,
    ):
        client.wait_for_workers(workers)
        yield client


def conductor_on(client: Any, folder: str) -> Any:
    from atomiton_core.conductor.executors import DaskExecutor

    return create_conductor(
        folder, plugins=[Plugin()], autoload=False, executor=DaskExecutor(client=client)
    )


# -- the driver's memory -------------------------------------------------------------------
def _status_mib(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


# -- one run of each kind ------------------------------------------------------------------
async def run_conductor(conductor: Any, flow: Flow) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = await conductor.execute(flow)
    took = time.perf_counter() - t0
    if not result.ok:
        raise RuntimeError(f"the conductor's run of {flow.id} failed: {result.error}")
    return took, result


def run_chain(client: Any, n: int, size: int) -> tuple[float, Any]:
    t0 = time.perf_counter()
    future = None
    for _ in range(n):
        future = client.submit(advance, future, size, pure=False)
    assert future is not None
    value = future.result()
    return time.perf_counter() - t0, value


def run_fanout(client: Any, n: int, loops: int) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    values = client.gather([client.submit(spin, loops, pure=False) for _ in range(n)])
    return time.perf_counter() - t0, values


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "range": [min(values), max(values)]}


def _same(a: Any, b: Any, what: str) -> None:
    if type(a) is not type(b) or a != b:
        shown = f"{type(a).__name__} of {len(a)}" if isinstance(a, bytes) else repr(a)
        raise RuntimeError(f"{what}: the conductor's final value {shown} differs from the baseline")


# -- part 1: a chain, per node -------------------------------------------------------------
async def measure_chain(
    client: Any, folder: str, n: int, size: int, repeats: int
) -> dict[str, Any]:
    """``repeats`` interleaved runs of the conductor's chain and the ``client.submit`` one."""
    flow = chain_flow(n, size)
    last = f"n{n - 1}"
    label = "trivial" if not size else f"{size / 1e6:g} MB"
    with conductor_on(client, f"{folder}/chain-{n}-{size}") as conductor:
        # warm: the workers unpickle the functions, the plan cache, the record's folder
        _, result = await run_conductor(conductor, flow)
        _, expected = run_chain(client, n, size)
        _same(result.outputs[last]["out"], expected, f"{label} chain of {n}")
        del result
        times: dict[str, list[float]] = {"conductor": [], "submit": []}
        for r in range(repeats):
            order = ["conductor", "submit"] if r % 2 == 0 else ["submit", "conductor"]
            for kind in order:
                gc.collect()
                if kind == "conductor":
                    took, result = await run_conductor(conductor, flow)
                    value = result.outputs[last]["out"]
                else:
                    took, value = run_chain(client, n, size)
                times[kind].append(took)
                _same(value, expected, f"{label} chain of {n}")
                result = value = None
    ratios = [c / s for c, s in zip(times["conductor"], times["submit"], strict=True)]
    row: dict[str, Any] = {
        "nodes": label,
        "n": n,
        "value_bytes": size,
        "conductor_ms_per_node": _stats([t / n * 1000 for t in times["conductor"]]),
        "submit_ms_per_node": _stats([t / n * 1000 for t in times["submit"]]),
        "ratio": _stats(ratios),
        "final_value_checked": True,
    }
    return row


# -- the driver's peak RSS, each run in a fresh process ------------------------------------
def job_memory(kind: str, n: int, size: int, workers: int) -> dict[str, Any]:
    """One large-value chain (``kind``: conductor or submit) in this process, after a tiny
    warm-up run of the same kind: its peak RSS above the RSS before it (``VmHWM`` reset
    first), and what it still holds with its result kept. A fresh process, because malloc
    keeps freed 10 MB blocks for reuse: a second run in one process would reuse them and
    read as growing less."""
    import hashlib

    if not _reset_peak():
        raise RuntimeError("cannot reset VmHWM (/proc/self/clear_refs): Linux only")
    last = f"n{n - 1}"
    folder = tempfile.mkdtemp(prefix="atomiton-bench-dask-mem-")
    try:
        with cluster(workers) as client, conductor_on(client, folder) as conductor:
            flow = chain_flow(n, size)

            def once(flow: Flow, n: int, size: int) -> tuple[Any, Any]:
                if kind == "conductor":
                    result = asyncio.run(run_conductor(conductor, flow))[1]
                    return result, result.outputs[f"n{n - 1}"]["out"]
                return None, run_chain(client, n, size)[1]

            once(chain_flow(2, 1000), 2, 1000)  # warm: imports, the plan cache, the workers
            gc.collect()
            _reset_peak()
            before = _status_mib("VmRSS")
            kept, value = once(flow, n, size)
            peak = _status_mib("VmHWM") - before
            gc.collect()
            held = _status_mib("VmRSS") - before
            digest = hashlib.blake2b(value).hexdigest()
            del kept, value
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"kind": kind, "peak_mib": peak, "held_mib": held, "last": last, "digest": digest}


def memory(n: int, size: int, workers: int, repeats: int) -> dict[str, Any]:
    """``job_memory`` of each kind, ``repeats`` times, alternating which goes first."""
    import subprocess

    runs: dict[str, list[dict[str, Any]]] = {"conductor": [], "submit": []}
    for r in range(repeats):
        order = ["conductor", "submit"] if r % 2 == 0 else ["submit", "conductor"]
        for kind in order:
            args = ["--job", kind, str(n), str(size), str(workers)]
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.dask", *args],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode:
                raise RuntimeError(f"memory job {args} failed:\n{proc.stderr[-3000:]}")
            runs[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    digests = {run["digest"] for kind in runs.values() for run in kind}
    if len(digests) != 1:
        raise RuntimeError(f"memory jobs: the final values differ ({len(digests)} digests)")
    return {
        "repeats": repeats,
        **{
            kind: {
                "peak_mib": _stats([run["peak_mib"] for run in rs]),
                "held_mib": _stats([run["held_mib"] for run in rs]),
            }
            for kind, rs in runs.items()
        },
    }


# -- part 2: CPU-bound fan-out, 1 worker against 2 -----------------------------------------
def calibrate(ms: float) -> int:
    """Loops of :func:`spin` taking about ``ms`` here (the best of three)."""
    probe = 200_000
    best = min(_timed_spin(probe) for _ in range(3))
    return max(1, round(probe * ms / 1000 / best))


def _timed_spin(loops: int) -> float:
    t0 = time.perf_counter()
    spin(loops)
    return time.perf_counter() - t0


async def measure_cpu(
    clients: dict[int, Any], folder: str, n: int, ms: float, repeats: int
) -> dict[str, Any]:
    loops = calibrate(ms)
    one_ms = min(_timed_spin(loops) for _ in range(3)) * 1000
    expected = spin(loops)
    flow = fanout_flow(n, loops)
    conductors = {w: conductor_on(c, f"{folder}/cpu-{w}") for w, c in clients.items()}
    runs: dict[str, Callable[[], Any]] = {}
    for w in clients:
        runs[f"conductor-{w}"] = lambda w=w: run_conductor(conductors[w], flow)
        runs[f"submit-{w}"] = lambda w=w: run_fanout(clients[w], n, loops)

    async def once(name: str) -> float:
        if name.startswith("conductor"):
            took, result = await runs[name]()
            values = [result.outputs[f"n{i}"]["out"] for i in range(n)]
        else:
            took, values = runs[name]()
        _same(values, [expected] * n, f"{n} CPU nodes ({name})")
        return float(took)

    times: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for name in runs:  # warm
            await once(name)
        names = list(runs)
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                gc.collect()
                times[name].append(await once(name))
    finally:
        for c in conductors.values():
            c.close()
    lo, hi = min(clients), max(clients)
    out: dict[str, Any] = {
        "n": n,
        "loops": loops,
        "node_ms_here": one_ms,
        "workers": sorted(clients),
        "seconds": {name: _stats(ts) for name, ts in times.items()},
        "final_value_checked": True,
    }
    for kind in ("conductor", "submit"):
        pairs = zip(times[f"{kind}-{lo}"], times[f"{kind}-{hi}"], strict=True)
        out[f"{kind}_speedup"] = _stats([a / b for a, b in pairs])
    for w in clients:
        pairs = zip(times[f"conductor-{w}"], times[f"submit-{w}"], strict=True)
        out[f"ratio_{w}"] = _stats([c / s for c, s in pairs])
    return out


# -- the whole run -------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    from importlib.metadata import version

    import atomiton_core
    from atomiton_core.conductor.executors import DaskExecutor
    from benchmarks.run import environment as base

    env = base()
    for dist in ("distributed", "cloudpickle"):
        env["versions"][dist] = version(dist)
    env["executor"] = f"{DaskExecutor.__module__}.{DaskExecutor.__qualname__}"
    env["package"] = str(Path(atomiton_core.__file__).resolve().parent)
    env["git"] = _git_state()
    return env


def _git_state() -> dict[str, Any] | None:
    """The commit measured, and the package's files changed from it (work in progress)."""
    import subprocess

    import atomiton_core

    root = Path(atomiton_core.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "atomiton_core"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    if head.returncode or changed.returncode:
        return None
    return {"commit": head.stdout.strip(), "changed": changed.stdout.split("\n")[:-1]}


def measure(
    *,
    sizes: list[int],
    large_n: int,
    large_bytes: int,
    cpu_nodes: int,
    cpu_ms: float,
    repeats: int,
    workers: int = 2,
    memory_repeats: int = 3,
    parts: tuple[str, ...] | list[str] = PARTS,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start the clusters, run the parts asked for, close everything; the report's data."""
    folder = tempfile.mkdtemp(prefix="atomiton-bench-dask-")
    res: dict[str, Any] = {"environment": environment(), "repeats": repeats, "workers": workers}
    try:
        if "chain" in parts or "large" in parts:
            rows = res["chain"] = []
            with cluster(workers) as client:
                cases = [(n, 0) for n in sizes] if "chain" in parts else []
                if "large" in parts:
                    cases.append((large_n, large_bytes))
                for n, size in cases:
                    rows.append(asyncio.run(measure_chain(client, folder, n, size, repeats)))
                    log(_chain_text(rows[-1]))
            if "large" in parts and memory_repeats:
                rows[-1]["driver_rss"] = memory(large_n, large_bytes, workers, memory_repeats)
                m = rows[-1]["driver_rss"]
                log(
                    f"driver RSS, {large_n} x {large_bytes / 1e6:g} MB, fresh processes: peak "
                    f"+{_ms(m['conductor']['peak_mib'], 0)} / +{_ms(m['submit']['peak_mib'], 0)}"
                    f" MiB, held {_ms(m['conductor']['held_mib'], 0)} / "
                    f"{_ms(m['submit']['held_mib'], 0)} MiB (conductor / submit)"
                )
        if "cpu" in parts:
            with cluster(1) as one, cluster(2) as two:
                res["cpu"] = asyncio.run(
                    measure_cpu({1: one, 2: two}, folder, cpu_nodes, cpu_ms, repeats)
                )
            log(_cpu_text(res["cpu"]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return res


# -- the report ----------------------------------------------------------------------------
def _ms(s: dict[str, Any], digits: int = 2) -> str:
    lo, hi = s["range"]
    return f"{s['median']:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def _chain_text(r: dict[str, Any]) -> str:
    return (
        f"chain {r['nodes']:>8} n={r['n']:<5} conductor {_ms(r['conductor_ms_per_node'])} ms/node"
        f"  submit {_ms(r['submit_ms_per_node'])} ms/node  ratio {_ms(r['ratio'])}"
    )


def _cpu_text(c: dict[str, Any]) -> str:
    s = c["seconds"]
    return (
        f"cpu {c['n']} x {c['node_ms_here']:.0f} ms: conductor 1w {_ms(s['conductor-1'])} s, "
        f"2w {_ms(s['conductor-2'])} s, speed-up {_ms(c['conductor_speedup'])}; submit 1w "
        f"{_ms(s['submit-1'])} s, 2w {_ms(s['submit-2'])} s, speed-up {_ms(c['submit_speedup'])}"
    )


def markdown(res: dict[str, Any]) -> str:
    env = res["environment"]
    lines = [
        f"Python {env['python']}, {env['cpus']} CPUs, distributed "
        f"{env['versions'].get('distributed')}; {res['repeats']} interleaved repeats, "
        "medians (min-max)",
    ]
    if res.get("chain"):
        lines += [
            "",
            f"**A chain of blocking nodes**: LocalCluster of {res['workers']} worker processes "
            "x 1 thread; the conductor (`create_conductor(folder)` defaults, "
            "`DaskExecutor(client=client)`) against `client.submit` chained on futures, same "
            "client",
            "",
            f"| nodes | N | conductor ms/node | client.submit ms/node | ratio "
            f"({TARGET_RATIO:g}x) | driver peak RSS growth, conductor / client.submit |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for r in res["chain"]:
            lo, hi = r["ratio"]["range"]
            rss = "-"
            if "driver_rss" in r:
                m = r["driver_rss"]
                rss = (
                    f"{_ms(m['conductor']['peak_mib'], 0)} MiB / "
                    f"{_ms(m['submit']['peak_mib'], 0)} MiB"
                )
            lines.append(
                f"| {r['nodes']} | {r['n']:,} | {_ms(r['conductor_ms_per_node'])} | "
                f"{_ms(r['submit_ms_per_node'])} | **{r['ratio']['median']:.2f}x** "
                f"({lo:.2f}-{hi:.2f}) | {rss} |"
            )
        for r in res["chain"]:
            if "driver_rss" in r:
                m = r["driver_rss"]
                lines += [
                    "",
                    f"Driver RSS of the {r['nodes']} chain, each run in a fresh process after a "
                    f"tiny warm-up ({m['repeats']} runs of each): peak growth during the run, "
                    "and what the process still holds after it with the result kept:",
                    "",
                    "| | conductor | client.submit |",
                    "|---|---:|---:|",
                    f"| peak growth, MiB | {_ms(m['conductor']['peak_mib'], 0)} | "
                    f"{_ms(m['submit']['peak_mib'], 0)} |",
                    f"| held after, MiB | {_ms(m['conductor']['held_mib'], 0)} | "
                    f"{_ms(m['submit']['held_mib'], 0)} |",
                ]
    c = res.get("cpu")
    if c:
        s = c["seconds"]
        lines += [
            "",
            f"**{c['n']} CPU-bound nodes** (pure-Python loop, {c['node_ms_here']:.0f} ms each "
            "in the driver), independent: a LocalCluster of 1 worker against one of 2, "
            "seconds a run",
            "",
            "| workers | conductor s | client.submit s | conductor / client.submit |",
            "|---|---:|---:|---:|",
        ]
        for w in c["workers"]:
            lines.append(
                f"| {w} | {_ms(s[f'conductor-{w}'])} | {_ms(s[f'submit-{w}'])} | "
                f"{_ms(c[f'ratio_{w}'])}x |"
            )
        lines.append(
            f"| speed-up 1 -> 2 (2x) | **{_ms(c['conductor_speedup'])}x** | "
            f"{_ms(c['submit_speedup'])}x | |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--job"]:  # one memory measurement, in this fresh process
        kind, n, size, workers = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        print(json.dumps(job_memory(kind, n, size, workers)), flush=True)
        return {}
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repeats")
    parser.add_argument("--sizes", type=int, nargs="+", help="trivial chains' N (200)")
    parser.add_argument("--large-n", type=int, help="nodes of the large-value chain (20)")
    parser.add_argument("--large-mb", type=float, default=10.0, help="its value, MB (10)")
    parser.add_argument("--cpu-nodes", type=int, help="CPU-bound nodes (200)")
    parser.add_argument("--cpu-ms", type=float, default=50.0, help="each one's work (50)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (5)")
    parser.add_argument("--workers", type=int, default=2, help="the chains' cluster (2)")
    parser.add_argument(
        "--memory-repeats", type=int, help="fresh-process runs of each kind for RSS (3)"
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--tag", default="dask")
    args = parser.parse_args(argv)
    quick = args.quick
    res = measure(
        sizes=args.sizes or ([50] if quick else [200]),
        large_n=args.large_n or (5 if quick else 20),
        large_bytes=int(args.large_mb * 1_000_000),
        cpu_nodes=args.cpu_nodes or (40 if quick else 200),
        cpu_ms=args.cpu_ms,
        repeats=args.repeats or (2 if quick else 5),
        workers=args.workers,
        memory_repeats=args.memory_repeats
        if args.memory_repeats is not None
        else 2
        if quick
        else 3,
        parts=args.parts,
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(text)
    print(text)
    return res


if __name__ == "__main__":
    main()
