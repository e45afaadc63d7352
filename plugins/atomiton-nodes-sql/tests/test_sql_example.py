"""The package's example flow: CSV (the spreadsheet node) -> transform -> insert into SQLite
-> a summary query, run as the README shows it; a second run changes nothing (upserts)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from atomiton_core import create_conductor

EXAMPLES = Path(__file__).parent.parent / "examples"
FLOW = EXAMPLES / "orders-to-sqlite.flow.yaml"

pytest.importorskip("atomiton_nodes_io", reason="the example reads its CSV with atomiton-nodes-io")


def test_the_example_flow_loads_a_csv_into_sqlite_and_sums_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLES.parent)  # the README runs it from the package's folder
    database = tmp_path / "orders.db"
    inputs = {"inputPath": "examples/orders.csv", "database": str(database), "minRevenue": 100}
    with create_conductor(f"memory://sql-example-{tmp_path.name}") as conductor:
        report = conductor.validate(FLOW)
        assert report.ok, report
        first = conductor.run(FLOW, inputs)
        assert first.ok, first.error
        again = conductor.run(FLOW, inputs)
        assert again.ok, again.error
    summary = first.outputs["summary"]
    assert summary["records"] == [
        {"region": "East", "orders": 2, "revenue": 228.0},
        {"region": "West", "orders": 1, "revenue": 150.0},
        {"region": "North", "orders": 2, "revenue": 102.0},
    ]
    assert summary["columns"] == [
        {"name": "region", "type": "text"},
        {"name": "orders", "type": "integer"},
        {"name": "revenue", "type": "real"},
    ]
    assert again.outputs["summary"]["records"] == summary["records"]
    assert first.nodes["store"].outputs["rowCount"] == 7
    db = sqlite3.connect(database)
    try:
        rows = db.execute("SELECT id, product, total FROM orders ORDER BY id").fetchall()
    finally:
        db.close()
    assert len(rows) == 7  # upserted by id: the second run added nothing
    assert rows[0] == (1001, "Widget, large", 57.0)
    assert rows[2] == (1003, 'Widget "Pro"', 210.0)
