"""spreadsheet through the real conductor on files the tests write: CSV, TSV, xlsx, ods."""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import openpyxl
import pytest
from atomiton_core import Conductor, ExecutionResult, loads_flow

RunNode = Callable[..., ExecutionResult]


def _outputs(res: ExecutionResult) -> dict[str, Any]:
    assert res.status == "completed", res.error
    out: dict[str, Any] = res.nodes["n"].outputs
    return out


def _ods(rows: list[list[Any]]) -> bytes:
    """A minimal OpenDocument spreadsheet: mimetype, manifest and content.xml, two sheets."""

    def cell(v: Any) -> str:
        if isinstance(v, int | float):
            return (
                f'<table:table-cell office:value-type="float" office:value="{v}">'
                f"<text:p>{v}</text:p></table:table-cell>"
            )
        return (
            f'<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>'
        )

    body = "".join("<table:table-row>" + "".join(map(cell, r)) + "</table:table-row>" for r in rows)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Fruit">'
        f"{body}</table:table>"
        '<table:table table:name="Other"><table:table-row>'
        f"{cell('x')}</table:table-row></table:table>"
        "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        z.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _xlsx(path: Path) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Summary"
    ws.append(["only", "here"])
    data = book.create_sheet("Data")
    data.append(["name", "qty", "price", "when"])
    data.append(["apple", 3, 1.25, dt.datetime(2024, 5, 1, 12, 30)])
    data.append([None, None, None, None])
    data.append(["pear", 10, 0.5, dt.date(2024, 5, 2)])
    book.save(path)


CSV = '\ufeffname;note;qty\n"Smith; John";"said ""hi""\nthen left";007\n\nDoe;plain;2.5\n'


def test_csv_bom_quotes_semicolon(run_node: RunNode, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(CSV.encode("utf-8"))
    for params in ({}, {"delimiter": ";"}):
        out = _outputs(run_node("spreadsheet", {"path": str(path), **params}))
        assert out["headers"] == ["name", "note", "qty"]
        assert out["records"] == [
            {"name": "Smith; John", "note": 'said "hi"\nthen left', "qty": "007"},
            {"name": "Doe", "note": "plain", "qty": 2.5},
        ]
        assert out["rowCount"] == 2 and out["sheetName"] is None
        assert out["output"]["records"] == out["records"]
    out = _outputs(run_node("spreadsheet", {"path": str(path), "skipEmptyLines": False}))
    assert out["rowCount"] == 3
    out = _outputs(run_node("spreadsheet", {"path": str(path), "hasHeaders": False}))
    assert out["headers"] == [] and out["records"][0] == ["name", "note", "qty"]
    out = _outputs(run_node("spreadsheet", {"path": str(path), "inferTypes": False}))
    assert out["records"][1]["qty"] == "2.5"


def test_tsv_from_memory_and_raw_data(run_node: RunNode, mem_root: str) -> None:
    with fsspec.open(f"{mem_root}/t.tsv", "wb") as fh:
        fh.write(b"a\tb\n1\tx,y\n")
    out = _outputs(run_node("spreadsheet", {"path": f"{mem_root}/t.tsv"}))
    assert out["records"] == [{"a": 1, "b": "x,y"}]
    out = _outputs(run_node("spreadsheet", {"data": "k,v\none,true\n"}))
    assert out["records"] == [{"k": "one", "v": True}]


def test_xlsx_sheets_range_types(run_node: RunNode, tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    _xlsx(path)
    out = _outputs(run_node("spreadsheet", {"path": str(path), "sheetName": "Data"}))
    assert out["sheetNames"] == ["Summary", "Data"] and out["sheetName"] == "Data"
    assert out["headers"] == ["name", "qty", "price", "when"]
    assert out["records"] == [
        {"name": "apple", "qty": 3, "price": 1.25, "when": "2024-05-01T12:30:00"},
        {"name": "pear", "qty": 10, "price": 0.5, "when": "2024-05-02"},
    ]
    out = _outputs(run_node("spreadsheet", {"path": str(path), "sheetIndex": 1, "range": "A1:B2"}))
    assert out["records"] == [{"name": "apple", "qty": 3}]
    out = _outputs(run_node("spreadsheet", {"path": str(path)}))
    assert out["sheetName"] == "Summary" and out["headers"] == ["only", "here"]
    res = run_node("spreadsheet", {"path": str(path), "sheetName": "Nope"})
    assert res.status == "failed"
    assert "Nope" in str(res.nodes["n"].error) and "Summary" in str(res.nodes["n"].error)


def test_ods(run_node: RunNode, tmp_path: Path, mem_root: str) -> None:
    data = _ods([["name", "qty"], ["apple", 3], ["pear", 2.5]])
    (tmp_path / "fruit.ods").write_bytes(data)
    out = _outputs(run_node("spreadsheet", {"path": str(tmp_path / "fruit.ods")}))
    assert out["sheetNames"] == ["Fruit", "Other"]
    assert out["records"] == [{"name": "apple", "qty": 3}, {"name": "pear", "qty": 2.5}]
    with fsspec.open(f"{mem_root}/noext", "wb") as fh:  # format told apart by content
        fh.write(data)
    out = _outputs(run_node("spreadsheet", {"path": f"{mem_root}/noext", "sheetName": "Other"}))
    assert out["headers"] == ["x"] and out["records"] == []


def test_xls_legacy_workbook(run_node: RunNode, tmp_path: Path) -> None:
    """A real BIFF8 .xls written by xlwt (the test extra), read through python-calamine."""
    xlwt = pytest.importorskip("xlwt")
    book = xlwt.Workbook()
    sheet = book.add_sheet("Legacy")
    for r, row in enumerate([["name", "qty"], ["apple", 3], ["pear", 2.5]]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.add_sheet("Empty")
    book.save(str(tmp_path / "old.xls"))
    out = _outputs(run_node("spreadsheet", {"path": str(tmp_path / "old.xls")}))
    assert out["sheetNames"] == ["Legacy", "Empty"] and out["sheetName"] == "Legacy"
    assert out["records"] == [{"name": "apple", "qty": 3}, {"name": "pear", "qty": 2.5}]


def test_write_csv_and_xlsx_then_read_back(run_node: RunNode, tmp_path: Path) -> None:
    rows = [{"a": 1, "b": "x;y"}, {"a": 2, "c": [1, 2]}]
    for name in ("out.csv", "out.xlsx"):
        target = tmp_path / "sub" / name
        res = run_node(
            "spreadsheet",
            {"operation": "write", "path": str(target), "createDirectories": True},
            input=rows,
        )
        out = _outputs(res)
        assert out["rowCount"] == 2 and out["headers"] == ["a", "b", "c"]
        back = _outputs(run_node("spreadsheet", {"path": str(target)}))
        assert back["records"] == [
            {"a": 1, "b": "x;y", "c": ""},
            {"a": 2, "b": "", "c": "[1, 2]"},
        ]
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.csv", "out.xlsx"]
    res = run_node(
        "spreadsheet",
        {"operation": "write", "path": str(tmp_path / "sub" / "out.csv"), "overwrite": False},
        input=rows,
    )
    assert res.status == "failed" and res.nodes["n"].error.code == "FILE_EXISTS"


def test_a_control_character_in_an_xlsx_cell_is_a_clear_error(
    run_node: RunNode, tmp_path: Path
) -> None:
    target = tmp_path / "bad.xlsx"
    res = run_node(
        "spreadsheet",
        {"operation": "write", "path": str(target)},
        input=[{"a": "ok"}, {"a": "\x08"}],
    )
    err = res.nodes["n"].error
    assert res.status == "failed" and err.code == "EXECUTION_FAILED"
    assert "row 3" in err.message and "format: csv" in err.hint  # row 1 is the header
    assert not target.exists()  # nothing half-written


def test_bad_parameters_are_validation_problems(conductor: Conductor) -> None:
    flow = loads_flow(
        """
id: t
name: t
nodes:
  - id: n
    type: spreadsheet
    parameters: {path: x.csv, range: "1A:?", delimiter: ";;", sheetIdx: 1}
"""
    )
    text = "\n".join(str(p) for p in conductor.validate(flow).errors)
    assert "range" in text and "delimiter" in text and "sheetIdx" in text
