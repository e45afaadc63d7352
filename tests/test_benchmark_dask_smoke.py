"""A tiny run of ``benchmarks/dask.py`` on real LocalClusters, so the benchmark cannot rot."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "benchmarks" / "dask.py").exists():  # pragma: no cover - installed without repo
    pytest.skip("benchmarks/ is not beside the tests", allow_module_level=True)
pytest.importorskip("distributed")
sys.path.insert(0, str(ROOT))

from benchmarks import dask as dask_bench  # noqa: E402


@pytest.mark.slow
def test_dask_benchmark_runs_and_the_conductor_agrees_with_the_baseline() -> None:
    # 200 kB: over the size the executor fetches with a task, under Dask's large-graph warning
    res = dask_bench.measure(
        sizes=[6],
        large_n=3,
        large_bytes=200_000,
        cpu_nodes=4,
        cpu_ms=5,
        repeats=1,
        memory_repeats=1,
        log=lambda _: None,
    )
    trivial, large = res["chain"]
    assert (trivial["n"], trivial["value_bytes"]) == (6, 0)
    assert (large["n"], large["value_bytes"]) == (3, 200_000)
    for row in (trivial, large):
        assert row["final_value_checked"] is True  # measure raises on a differing final value
        for figure in ("conductor_ms_per_node", "submit_ms_per_node", "ratio"):
            assert row[figure]["median"] > 0, (row["nodes"], figure)
    assert "driver_rss" not in trivial
    rss = large["driver_rss"]  # each measured in a fresh process; their final values agreed
    assert rss["conductor"]["peak_mib"]["median"] >= 0 and rss["submit"]["held_mib"]["range"]
    cpu = res["cpu"]
    assert cpu["workers"] == [1, 2] and cpu["final_value_checked"] is True
    assert set(cpu["seconds"]) == {"conductor-1", "submit-1", "conductor-2", "submit-2"}
    assert cpu["conductor_speedup"]["median"] > 0 and cpu["submit_speedup"]["median"] > 0
    table = dask_bench.markdown(res)
    assert "| trivial | 6 |" in table and "| 0.2 MB | 3 |" in table
    assert "| speed-up 1 -> 2 (2x) |" in table


def test_the_chain_function_is_what_both_sides_run() -> None:
    """The baseline and the node type compute the same hops."""
    value = None
    for _ in range(3):
        value = dask_bench.advance(value, 0)
    assert value == 3
    first = dask_bench.advance(None, 1000)
    assert len(first) == 1000 and dask_bench.advance(first, 1000) == first[1:] + first[:1]
    flow = dask_bench.chain_flow(4, 0)
    assert [(e.source, e.target) for e in flow.edges] == [("n0", "n1"), ("n1", "n2"), ("n2", "n3")]
