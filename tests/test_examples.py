"""The example flows run as shipped (they are what the README's first command runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atomiton_core import Conductor

ROOT = Path(__file__).parents[1]


def test_orders_example(conductor: Conductor) -> None:
    result = conductor.run(ROOT / "examples" / "orders.flow.yaml", {"minTotal": 20})
    assert result.ok, result.error
    assert result.outputs["total"]["output"] == pytest.approx(154.8)


def test_order_report_example_from_the_cli(tmp_path: Path) -> None:
    """spreadsheet -> transform -> loop(if/merge) -> parallel -> file-system, as a user runs it."""
    env = {**os.environ, "ATOMITON_STORAGE": str(tmp_path / "store")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "atomiton_core.cli",
            "run",
            "examples/order-report.flow.yaml",
            "--json",
            "--input",
            f"outputDir={tmp_path / 'out'}",
            "--input",
            "bigOrder=100",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    regions = result["outputs"]["report"]["output"]["regions"]
    written = json.loads((tmp_path / "out" / "order-report.json").read_text())
    assert written == regions
    # the code node ran its snippet in a worker process
    assert result["outputs"]["stats"]["result"] == {"orders": 9, "median": 75, "largest": 380.0}
    assert result["nodes"]["stats"]["peakMemory"] > 0
    assert [r["region"] for r in regions] == ["South", "East", "West", "North"]
    assert sum(r["orders"] for r in regions) == 9  # the empty order was dropped
    assert {r["region"]: r["big"] for r in regions} == {
        "South": 1,
        "East": 1,
        "West": 1,
        "North": 1,
    }
    assert result["nodes"]["tag/iteration 0/is-big"]["status"] == "completed"
    tagged = [
        k
        for k, v in result["nodes"].items()
        if k.startswith("tag/") and k.endswith(("/big", "/small")) and v["status"] == "completed"
    ]
    assert len(tagged) == 9  # exactly one branch per order
