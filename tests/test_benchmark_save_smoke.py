"""A tiny run of ``benchmarks/save.py`` so the benchmark cannot rot (the real run is not a test)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "benchmarks" / "save.py").exists():  # pragma: no cover - installed without repo
    pytest.skip("benchmarks/ is not beside the tests", allow_module_level=True)
sys.path.insert(0, str(ROOT))

from atomiton_core import dumps_flow, load_flow, loads_flow  # noqa: E402
from benchmarks import save  # noqa: E402


def test_save_benchmark_runs_and_reports(tmp_path: Path) -> None:
    res = asyncio.run(save.measure(40, 1))
    assert [r["case"] for r in res["rows"]] == list(save.CASES)
    for r in res["rows"]:
        for figure in ("ours_ms", "pyyaml_ms", "ratio", "bytes", "ruamel_ms"):
            assert r[figure] > 0, (r["case"], figure)
    table = save.markdown(res)
    assert "| built |" in table and "| edited |" in table


def test_the_benchmark_flows_load_back_equal(tmp_path: Path) -> None:
    flow = save.built(40)
    assert loads_flow(dumps_flow(flow)) == flow
    edited = load_flow(save.commented_file(40, tmp_path))
    save.edit(edited)
    text = dumps_flow(edited)
    assert "# a benchmark flow" in text and "# the first" in text
    assert loads_flow(text) == edited
