"""A tiny run of ``benchmarks/`` so the benchmark cannot rot (the real runs are not tests)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "benchmarks" / "run.py").exists():  # pragma: no cover - installed without repo
    pytest.skip("benchmarks/ is not beside the tests", allow_module_level=True)
sys.path.insert(0, str(ROOT))

from benchmarks import engines, extras, run  # noqa: E402
from benchmarks.graphs import SHAPES  # noqa: E402

OURS = ("python", "asyncio", "atomiton-async", "atomiton-inline", "atomiton-thread")


def _grid(names: list[str]) -> list[dict[str, object]]:
    names = [n for n in names if engines.available(n)]
    shapes = sorted(SHAPES)
    rows = asyncio.run(run.run_grid(shapes, [100], names, repeats=1, log=lambda *_: None))
    assert {(r["shape"], r["engine"]) for r in rows} == {(s, n) for s in shapes for n in names}
    return rows


@pytest.mark.slow
def test_every_engine_agrees_on_every_shape() -> None:
    """run_grid itself checks that every engine returns the same sink values."""
    rows = _grid([n for n in engines.ENGINES if n != "hamilton"])
    for r in rows:
        if r["engine"] in OURS:
            assert "error" not in r, r
        assert "us_per_node" in r or "error" in r  # a peer may fail, but says why


@pytest.mark.slow
def test_hamilton_adapter() -> None:
    pytest.importorskip("hamilton")  # importing it (pandas...) takes seconds: a test apart
    for r in _grid(["atomiton-inline", "hamilton"]):
        assert "error" not in r, r


def test_report_files_are_written(tmp_path: Path) -> None:
    rows = asyncio.run(
        run.run_grid(["chain"], [100], ["asyncio", "atomiton-async"], 1, log=lambda *_: None)
    )
    report = {"environment": run.environment(), "repeats": 1, "grid": rows}
    report["ratios_at_10000"] = run.ratios(rows, n=100)
    run.write(report, tmp_path, "smoke", ["asyncio", "atomiton-async"])
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert {r["engine"] for r in data["grid"]} == {"asyncio", "atomiton-async"}
    table = (tmp_path / "smoke.md").read_text()
    assert "| 100 |" in table and "atomiton-async" in table


@pytest.mark.slow
def test_extra_jobs_run_small() -> None:
    yaml = extras.job_yaml(50, "lattice")
    assert yaml["nodes"] == 49 and yaml["load_s"] > 0
    rss = extras.job_rss(200, "chain", "bench.async", "errors")
    assert rss["peak_rss_mib"] > 0 and rss["node_results"] == 0
    conc = extras.job_concurrent(20, 1.0)
    assert conc["completed"] == 20 and conc["errors"] == 0
    seq = extras.job_sequential(40, "bench.inline")
    assert seq["completed"] == 40 and len(seq["rss_samples_mib"]) == 20


@pytest.mark.slow
def test_the_isolation_benchmark_runs() -> None:
    from benchmarks import isolation

    res = asyncio.run(isolation.measure(n=6, repeats=1))
    for shape in ("chain", "fanout"):
        row = res["shapes"][shape]
        assert row["isolated_us"] > 0 and row["thread_us"] > 0
    assert "| chain |" in isolation.markdown(res)


def test_the_cpu_time_benchmark_runs() -> None:
    from benchmarks import cpu_time

    res = asyncio.run(cpu_time.measure(n=6, repeats=1))
    assert len(res["rows"]) == 8
    assert all(r["on_us"] > 0 and r["off_us"] > 0 for r in res["rows"])
    assert "| inline | chain | execute(flow) |" in cpu_time.markdown(res)


def test_the_run_log_benchmark_runs() -> None:
    from benchmarks import runlog

    res = asyncio.run(runlog.measure(n=6, repeats=1))
    assert len(res["rows"]) == 4
    assert all(r["full_us"] > 0 and r["off_us"] > 0 for r in res["rows"])
    assert "| inline | chain |" in runlog.markdown(res)


def test_the_cache_benchmark_runs() -> None:
    from benchmarks import cache

    res = asyncio.run(cache.measure(n=6, repeats=1))
    assert [r["shape"] for r in res["rows"]] == ["chain", "fanout"]
    assert all(r["cached_ms"] > 0 for r in res["rows"])
    assert "| chain |" in cache.markdown(res)


@pytest.mark.slow
def test_the_server_benchmark_runs() -> None:
    from benchmarks import server

    res = asyncio.run(server.measure(n=1, repeats=1))
    assert res["bare"] > 0 and res["ours"] > 0 and res["p99_ms"] > 0
    assert "| bare starlette" in server.markdown(res)


@pytest.mark.slow
def test_the_server_benchmark_measures_the_four_targets() -> None:
    from benchmarks import server

    res = asyncio.run(server.measure(n=1, repeats=1, nodes=300))
    big = res["rows"][0]["big"]
    assert big["status"] == "completed" and big["nodes_completed"] == 300
    assert big["events_received"] == res["events"] == 2 + 2 * 300 and res["lost"] == 0
    assert big["health_during"]["probes"] > 0 and res["health_max_ms"] > 0
    assert res["no_record"] > 0 and res["bare_p99_ms"] > 0
    assert set(res["met"]) == {"ratio", "p99_ms", "lost", "health_max_ms"}
    assert "| health probe during the large run" in server.markdown(res)


def test_the_user_path_benchmark_runs() -> None:
    from benchmarks import userpath

    res = asyncio.run(userpath.measure([200], 1, ["chain", "fanout"]))
    for row in res["rows"]:
        for kind in userpath.KINDS:
            assert row[kind]["us"] > 0
        assert row["planning_us"] > 0 and row["tracked_per_node"]["plan"] >= 1
    assert "| chain | 200 |" in userpath.markdown(res)
    for kind in ("floor", "user-off"):
        assert userpath.job_memory(kind, "chain", 300)["peak_mib"] >= 0
