"""A driver process for ``test_dask_cluster``: a chain passing 50 MB values, through the
conductor (its defaults: the run record on, local storage) and written directly with Dask
futures, interleaved, on the scheduler at ``argv[1]``; prints the times and this process's
peak memory before and after as JSON.

Run as a script, in a process of its own, so its peak memory is the driver's alone.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import time
from typing import Any

import cloudpickle
from pydantic import BaseModel

from atomiton_core import create_conductor, hookimpl, loads_flow, node
from atomiton_core.conductor.dask_executor import DaskExecutor

# the workers cannot import this script: its functions travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])
MB = 1024 * 1024


class SizeParams(BaseModel):
    mb: int = 1


@node("chain.make", params=SizeParams, outputs={"data": bytes})
def make(ctx: Any, params: SizeParams) -> dict[str, Any]:
    return {"data": b"x" * (params.mb * MB)}


@node("chain.pass", outputs={"data": bytes})
def passes(ctx: Any, params: BaseModel, data: bytes) -> dict[str, Any]:
    return {"data": data}


@node("chain.length", outputs={"n": int})
def length(ctx: Any, params: BaseModel, data: bytes) -> dict[str, Any]:
    return {"n": len(data)}


def make_plain(mb: int) -> bytes:
    return b"x" * (mb * MB)


def pass_plain(data: bytes) -> bytes:
    return data


def length_plain(data: bytes) -> int:
    return len(data)


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [make, passes, length]


def chain(mb: int) -> Any:
    nodes = [f"  - {{id: make, type: chain.make, parameters: {{mb: {mb}}}}}"]
    nodes += [f"  - {{id: p{i}, type: chain.pass}}" for i in (1, 2, 3)]
    nodes += ["  - {id: count, type: chain.length}"]
    ids = ["make", "p1", "p2", "p3", "count"]
    edges = [
        f"  - {{source: {a}, sourceHandle: data, target: {b}, targetHandle: data}}"
        for a, b in itertools.pairwise(ids)
    ]
    text = "id: chain\nname: Chain\nnodes:\n" + "\n".join(nodes) + "\nedges:\n" + "\n".join(edges)
    return loads_flow(text)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(address: str, store: str, repeats: int) -> None:
    executor = DaskExecutor(address=address)
    client = executor.client
    conductor = create_conductor(store, plugins=[Plugin()], autoload=False, executor=executor)
    big = chain(50)

    def ours(flow: Any) -> int:
        result = conductor.run(flow)
        assert result.ok, result.error
        return int(result.outputs["count"]["n"])

    def native(mb: int) -> int:
        future = client.submit(make_plain, mb, pure=False)
        for _ in range(3):
            future = client.submit(pass_plain, future, pure=False)
        return int(client.submit(length_plain, future, pure=False).result())

    assert ours(chain(1)) == native(1) == MB  # the workers load the code once
    before = peak_mb()
    times: dict[str, list[float]] = {"ours": [], "native": []}
    for i in range(repeats):
        order = [("ours", lambda: ours(big)), ("native", lambda: native(50))]
        for name, call in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            assert call() == 50 * MB
            times[name].append(time.perf_counter() - t0)
    print(json.dumps({**times, "peak_before_mb": before, "peak_after_mb": peak_mb()}))
    conductor.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
