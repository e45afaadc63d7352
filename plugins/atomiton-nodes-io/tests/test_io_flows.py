"""The package in whole flows: the example flow, and the original Atomiton flows' I/O nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from atomiton_core import Conductor

EXAMPLES = Path(__file__).parent.parent / "examples"
ORIGINAL_FLOWS = Path(__file__).parents[3] / "tests" / "fixtures" / "atomiton-flows"


def test_csv_report_example(conductor: Conductor, tmp_path: Path) -> None:
    flow = EXAMPLES / "csv-report.flow.yaml"
    assert conductor.validate(flow).ok
    out = tmp_path / "out" / "report.json"
    res = conductor.run(flow, {"inputPath": str(EXAMPLES / "sales.csv"), "outputPath": str(out)})
    assert res.status == "completed", res.error
    assert json.loads(out.read_text()) == [
        {"region": "North", "product": "Widget, large", "total": 114.0},
        {"region": "South", "product": "Gadget", "total": 75},
        {"region": "East", "product": 'Widget "Pro"', "total": 210},
    ]
    assert res.nodes["read-sales"].outputs["rowCount"] == 5


@pytest.mark.skipif(not ORIGINAL_FLOWS.is_dir(), reason="original flows not available")
@pytest.mark.parametrize(
    ("flow", "node_ids"),
    [
        ("hello-world", ["write-to-file"]),
        ("data-transform", ["csv-source", "output-file"]),
        ("image-processor", ["image-source", "save-processed"]),
    ],
)
def test_original_flows_io_nodes_validate(
    conductor: Conductor, flow: str, node_ids: list[str]
) -> None:
    report = conductor.validate(ORIGINAL_FLOWS / f"{flow}.flow.yaml")
    for problem in report.problems:
        assert problem.node_id not in node_ids, problem
