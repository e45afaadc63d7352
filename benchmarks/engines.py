"""Engines under test: each turns a graph into a runner, prepared once and timed per run.

Every engine runs the same trivial work per node (return the constant 1), so a run's time is
the engine's own overhead. A runner is an async callable returning the sink values it saw,
so a run that silently did nothing would be caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import types
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.graphs import Graph, to_flow

__all__ = ["ENGINES", "Engine", "available"]

Runner = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Engine:
    name: str
    label: str
    #: Largest node count this engine is run at by default (slow or recursive peers).
    max_n: int
    #: Importable module it needs; the engine is skipped when it is missing.
    needs: str | None
    prepare: Callable[[Graph, Any], Runner]
    #: Part of the comparison table (the plain loop is a reference, not an engine).
    peer: bool = True


def _sinks(graph: Graph) -> list[int]:
    has_succ = [False] * len(graph)
    for preds in graph:
        for p in preds:
            has_succ[p] = True
    return [i for i, flag in enumerate(has_succ) if not flag]


# -- references -------------------------------------------------------------------------------


def _work(x: list[int] | None = None) -> int:
    return 1


def prepare_python(graph: Graph, _ctx: Any) -> Runner:
    """Presorted plain calls: the floor of any Python engine."""
    sinks = _sinks(graph)

    async def run() -> Any:
        values: list[int] = [0] * len(graph)
        work = _work
        for i, preds in enumerate(graph):
            values[i] = work([values[p] for p in preds])
        return [values[s] for s in sinks]

    return run


async def _awork(x: list[int] | None = None) -> int:
    return 1


async def _task_node(deps: list[asyncio.Task[int]]) -> int:
    x = [await d for d in deps]
    return await _awork(x)


def prepare_asyncio(graph: Graph, _ctx: Any) -> Runner:
    """The asyncio floor: a presorted loop creating one Task per node awaiting its inputs."""
    sinks = _sinks(graph)

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        create = loop.create_task
        tasks: list[asyncio.Task[int]] = []
        append = tasks.append
        for preds in graph:
            append(create(_task_node([tasks[p] for p in preds])))
        return [await tasks[s] for s in sinks]

    return run


# -- ours -----------------------------------------------------------------------------------


def _prepare_atomiton(node_type: str) -> Callable[[Graph, Any], Runner]:
    def prepare(graph: Graph, conductor: Any) -> Runner:
        plan = conductor.prepare(to_flow(graph, node_type, f"bench-{node_type}"))
        sink_ids = [f"n{s}" for s in _sinks(graph)]

        async def run() -> Any:
            result = await conductor.execute(plan)
            if not result.ok:
                raise RuntimeError(f"{node_type} run failed: {result.error}")
            return [result.outputs[s]["out"] for s in sink_ids]

        return run

    prepare.__doc__ = f"Our conductor, every node of type {node_type!r}; planned once."
    return prepare


# -- peers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _hamilton_module(graph: Graph) -> types.ModuleType:
    lines = []
    for i, preds in enumerate(graph):
        args = ", ".join(f"n{p}: int" for p in preds)
        lines.append(f"def n{i}({args}) -> int:\n    return 1\n")
    module = types.ModuleType(f"bench_hamilton_{len(graph)}")
    exec(compile("\n".join(lines), module.__name__, "exec"), module.__dict__)
    return module


def prepare_hamilton(graph: Graph, _ctx: Any) -> Runner:
    """Hamilton's driver (its walk is recursive: the recursion limit is raised for it only)."""
    from hamilton import base, driver  # type: ignore[import-untyped,unused-ignore]

    module = _hamilton_module(graph)
    adapter = base.SimplePythonGraphAdapter(base.DictResult())
    sys.modules[module.__name__] = module  # Hamilton finds functions through their module
    try:
        with _recursion_limit(len(graph) * 4 + 1000):
            dr = driver.Driver({}, module, adapter=adapter)
    finally:
        del sys.modules[module.__name__]
    final = [f"n{s}" for s in _sinks(graph)]

    async def run() -> Any:
        with _recursion_limit(len(graph) * 4 + 1000):
            out = dr.execute(final)
        return [out[k] for k in final]

    return run


def _dask_graph(graph: Graph) -> dict[str, Any]:
    return {f"n{i}": (_work, [f"n{p}" for p in preds]) for i, preds in enumerate(graph)}


def prepare_dask(graph: Graph, _ctx: Any) -> Runner:
    """``dask.get``: dask's synchronous scheduler."""
    import dask

    dsk = _dask_graph(graph)
    keys = [f"n{s}" for s in _sinks(graph)]

    async def run() -> Any:
        return list(dask.get(dsk, keys))  # type: ignore[attr-defined,unused-ignore]

    return run


def prepare_dask_threaded(graph: Graph, _ctx: Any) -> Runner:
    """``dask.threaded.get``: dask's thread-pool scheduler."""
    import dask.threaded

    dsk = _dask_graph(graph)
    keys = [f"n{s}" for s in _sinks(graph)]

    async def run() -> Any:
        return list(dask.threaded.get(dsk, keys))

    return run


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("python", "plain Python calls (reference)", 100_000, None, prepare_python, False),
        Engine("asyncio", "asyncio, one Task per node (floor)", 100_000, None, prepare_asyncio),
        Engine(
            "atomiton-async",
            "atomiton, async nodes",
            100_000,
            None,
            _prepare_atomiton("bench.async"),
        ),
        Engine(
            "atomiton-inline",
            "atomiton, sync nodes blocking=False (inline)",
            100_000,
            None,
            _prepare_atomiton("bench.inline"),
        ),
        Engine(
            "atomiton-thread",
            "atomiton, sync blocking nodes (threads)",
            1_000,
            None,
            _prepare_atomiton("bench.thread"),
        ),
        Engine("hamilton", "Hamilton driver", 10_000, "hamilton", prepare_hamilton),
        Engine("dask", "dask.get (sync scheduler)", 100_000, "dask", prepare_dask),
        Engine("dask-threaded", "dask.threaded.get", 1_000, "dask", prepare_dask_threaded),
    )
}


def available(name: str) -> bool:
    needs = ENGINES[name].needs
    return needs is None or importlib.util.find_spec(needs) is not None
