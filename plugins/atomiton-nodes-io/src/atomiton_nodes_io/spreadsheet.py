"""``spreadsheet``: read CSV/TSV, xlsx, xls, xlsb and ods into records; write CSV and xlsx.

Workbooks are read with python-calamine (fast, no formulas evaluated: cached values are
read), written with openpyxl. Files come from any fsspec URL or from raw ``data``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from atomiton_core import ExecutionError, NodeContext, atomic_write_bytes, node
from atomiton_core.nodes.definition import accepts_original_names
from pydantic import Field, field_validator

from atomiton_nodes_io._common import (
    FileMissing,
    IOParams,
    check_writable,
    fail_missing,
    locate,
    normalise_encoding,
    os_errors,
    render_str,
)

__all__ = ["SpreadsheetParams", "spreadsheet"]

Format = Literal["auto", "csv", "tsv", "xlsx", "xls", "xlsb", "ods"]
_WORKBOOKS = {"xlsx", "xlsm", "xls", "xlsb", "ods"}
_CELL = re.compile(r"^\$?([A-Za-z]{1,3})?\$?(\d+)?$")
_INT = re.compile(r"^-?(0|[1-9]\d*)$")
_FLOAT = re.compile(r"^-?(0|[1-9]\d*)?\.\d+([eE][-+]?\d+)?$|^-?(0|[1-9]\d*)[eE][-+]?\d+$")


class SpreadsheetParams(IOParams):
    """The original's names are accepted too: ``filePath`` (its spreadsheet and csv-reader)
    and ``skipEmpty`` (its csv-reader)."""

    original_names: ClassVar[Mapping[str, str]] = {
        "filePath": "path",
        "skipEmpty": "skipEmptyLines",
    }
    _original = accepts_original_names()

    operation: Literal["read", "write"] = Field("read", description="read or write")
    path: str | None = Field(
        None, description="File path or fsspec URL (a template); the `path` input port wins"
    )
    data: str | None = Field(
        None, description="read: raw CSV text instead of a file (the `data` port takes bytes)"
    )
    format: Format = Field("auto", description="auto: from the file extension or content")
    sheet_name: str | None = Field(None, description="Workbook sheet to read / write")
    sheet_index: int = Field(0, ge=0, description="Sheet to read when no sheetName (0 = first)")
    has_headers: bool = Field(True, description="The first row holds column names")
    range: str | None = Field(None, description="Cells to read, e.g. A1:C10 (also A:C, 2:10)")
    skip_empty_lines: bool = Field(True, description="Drop rows whose cells are all empty")
    delimiter: str | None = Field(
        None, description="CSV delimiter; default: tab for .tsv, else sniffed (, ; tab |)"
    )
    encoding: str = Field("utf-8", description="CSV text encoding (a BOM is skipped)")
    infer_types: bool = Field(
        True, description="CSV: turn numbers and true/false into numbers and booleans"
    )
    headers: list[str] | None = Field(
        None, description="write: the columns, in order (default: keys of the records)"
    )
    overwrite: bool = Field(True, description="write: replace an existing file")
    create_directories: bool = Field(False, description="write: create missing parent directories")

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str | None) -> str | None:
        if value is not None:
            value = {"\\t": "\t", "tab": "\t"}.get(value, value)
            if len(value) != 1:
                raise ValueError(f"delimiter must be one character, got {value!r}")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if normalise_encoding(value) in (None, "base64"):
            raise ValueError(f"encoding {value!r} is not a text encoding")
        return value

    @field_validator("range")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            parse_range(value)
        return value

    def missing_inputs(self, connected: frozenset[str]) -> list[tuple[str, str]]:
        if self.path or "path" in connected:
            return []
        if self.operation == "write":
            return [("path", "operation 'write' needs a `path` (the original's `filePath`)")]
        if self.data is not None or "data" in connected:
            return []
        return [
            (
                "path",
                "nothing to read: set `path` (the original's `filePath`) or `data`, or connect "
                "the `path` or `data` input port",
            )
        ]


_OUTPUTS = {
    "output": dict,
    "records": list,
    "headers": list,
    "rowCount": int,
    "sheetName": Any,
    "sheetNames": list,
    "path": str,
}


@node(
    "spreadsheet",
    params=SpreadsheetParams,
    outputs=_OUTPUTS,
    name="Spreadsheet",
    category="data",
    icon="table-2",
    description="Read CSV/TSV, xlsx, xls, xlsb and ods files into records; write CSV and xlsx",
)
def spreadsheet(
    ctx: NodeContext,
    params: SpreadsheetParams,
    input: Any = None,
    records: list[Any] | None = None,
    path: str | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """Read (or write) one sheet; ``output`` holds the whole result."""
    fail_missing(ctx, params, {"path": path, "data": data})
    target = path if path is not None else render_str(ctx, params.path, "path", input=input)
    if params.operation == "write":
        rows = records if records is not None else input
        out = _write(ctx, params, target, rows)
        return {
            "output": out,
            "path": out["path"],
            "rowCount": out["rowCount"],
            "headers": out["headers"],
        }
    out = _read(ctx, params, target, data)
    return {"output": out, **out}


def _fail(
    ctx: NodeContext, message: str, cls: type[ExecutionError] = ExecutionError, **kw: Any
) -> ExecutionError:
    return cls(message, node_id=ctx.node_id, **kw)


# -- reading -------------------------------------------------------------------------------
def _read(
    ctx: NodeContext, params: SpreadsheetParams, target: str | None, data: Any
) -> dict[str, Any]:
    raw: bytes | str
    source = "data"
    if data is not None:
        raw = data if isinstance(data, str) else bytes(data)
    elif params.data is not None and target is None:
        raw = params.data
    elif target:
        loc = locate(ctx, target)
        if not loc.fs.exists(loc.path) or loc.fs.isdir(loc.path):
            raise _fail(ctx, f"spreadsheet file {target!r} does not exist", cls=FileMissing)
        with os_errors(ctx, f"read {target!r}"):
            raw = loc.fs.cat_file(loc.path)
        source = target
    else:
        raise _fail(
            ctx,
            "nothing to read: no `path` and no `data`",
            hint="set `path` (a file or URL) or `data`, or connect the `path`/`data` port",
        )
    fmt = _format(params.format, target if source != "data" else None, raw)
    if fmt in _WORKBOOKS:
        if isinstance(raw, str):
            raise _fail(ctx, f"format {fmt!r} needs bytes, got text data")
        grid, sheet, names = _read_workbook(ctx, params, raw, source)
    else:
        grid = _read_csv(ctx, params, raw, source, fmt)
        sheet, names = None, []
    if params.range:
        grid = _slice(grid, parse_range(params.range))
    if params.skip_empty_lines:
        grid = [row for row in grid if any(c not in (None, "") for c in row)]
    headers: list[str] = []
    rows_out: list[Any]
    if params.has_headers and grid:
        headers = _header_names(grid[0])
        rows_out = [
            {h: (row[i] if i < len(row) else None) for i, h in enumerate(headers)}
            for row in grid[1:]
        ]
    else:
        rows_out = grid
    return {
        "records": rows_out,
        "headers": headers,
        "rowCount": len(rows_out),
        "sheetName": sheet,
        "sheetNames": names,
    }


def _format(fmt: str, target: str | None, raw: bytes | str) -> str:
    if fmt != "auto":
        return fmt
    if target:
        ext = target.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower() if "." in target else ""
        if ext in _WORKBOOKS or ext in ("csv", "tsv"):
            return ext
    if isinstance(raw, bytes) and (raw[:2] == b"PK" or raw[:4] == b"\xd0\xcf\x11\xe0"):
        return "xlsx"  # calamine tells the workbook formats apart by content
    return "csv"


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _read_workbook(
    ctx: NodeContext, params: SpreadsheetParams, raw: bytes, source: str
) -> tuple[list[list[Any]], str, list[str]]:
    import python_calamine

    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(raw))
    except Exception as exc:  # calamine raises several unrelated types
        raise _fail(ctx, f"cannot read workbook {source!r}: {exc}") from exc
    try:
        names = list(book.sheet_names)
        if params.sheet_name is not None:
            if params.sheet_name not in names:
                raise _fail(
                    ctx,
                    f"workbook {source!r} has no sheet {params.sheet_name!r}",
                    hint=f"its sheets are {names}",
                )
            name = params.sheet_name
        else:
            if params.sheet_index >= len(names):
                raise _fail(
                    ctx,
                    f"workbook {source!r} has {len(names)} sheet(s); sheetIndex "
                    f"{params.sheet_index} is out of range",
                    hint=f"its sheets are {names}",
                )
            name = names[params.sheet_index]
        sheet = book.get_sheet_by_name(name)
        grid = sheet.to_python(skip_empty_area=params.range is None)
    finally:
        book.close()
    return [[_cell(v) for v in row] for row in grid], name, names


def _typed(value: str) -> Any:
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return value


def _read_csv(
    ctx: NodeContext, params: SpreadsheetParams, raw: bytes | str, source: str, fmt: str
) -> list[list[Any]]:
    if isinstance(raw, bytes):
        encoding = normalise_encoding(params.encoding) or "utf-8"
        try:
            text = raw.decode("utf-8-sig" if encoding == "utf-8" else encoding)
        except UnicodeDecodeError as exc:
            raise _fail(
                ctx,
                f"{source!r} is not valid {params.encoding} text: {exc}",
                hint="set `encoding` to the file's encoding (e.g. latin-1)",
            ) from exc
    else:
        text = raw.removeprefix("\ufeff")
    delimiter = params.delimiter or ("\t" if fmt == "tsv" else _sniff(text))
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise _fail(ctx, f"{source!r} is not valid CSV: {exc}") from exc
    if params.infer_types:
        return [[_typed(c) for c in row] for row in rows]
    return [list(row) for row in rows]


def _sniff(text: str) -> str:
    sample = text[:8192]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _header_names(row: list[Any]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(row):
        name = str(cell).strip() if cell not in (None, "") else f"column{i + 1}"
        unique, n = name, 2
        while unique in seen:
            unique, n = f"{name}_{n}", n + 1
        seen.add(unique)
        names.append(unique)
    return names


def _column(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def parse_range(text: str) -> tuple[int, int, int | None, int | None]:
    """``A1:C10`` -> (row0, col0, row1, col1), zero-based and inclusive; open ends are None."""
    parts = text.strip().split(":")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"range {text!r} is not like A1:C10")
    cells = []
    for part in parts:
        m = _CELL.match(part.strip())
        if not m or not (m.group(1) or m.group(2)):
            raise ValueError(f"range {text!r}: {part!r} is not a cell like A1, a column or a row")
        col = _column(m.group(1)) if m.group(1) else None
        row = int(m.group(2)) - 1 if m.group(2) else None
        if row is not None and row < 0:
            raise ValueError(f"range {text!r}: rows start at 1")
        cells.append((row, col))
    (r0, c0), (r1, c1) = cells[0], cells[-1]
    if len(parts) == 1:
        r1, c1 = r0, c0
    return (r0 or 0, c0 or 0, r1, c1)


def _slice(grid: list[list[Any]], rng: tuple[int, int, int | None, int | None]) -> list[list[Any]]:
    r0, c0, r1, c1 = rng
    rows = grid[r0 : None if r1 is None else r1 + 1]
    return [row[c0 : None if c1 is None else c1 + 1] for row in rows]


# -- writing -------------------------------------------------------------------------------
def _write(
    ctx: NodeContext, params: SpreadsheetParams, target: str | None, rows: Any
) -> dict[str, Any]:
    if not target:
        raise _fail(ctx, "write needs a `path`", hint="set `path`, e.g. out/report.xlsx")
    if isinstance(rows, dict) and isinstance(rows.get("records"), list):
        rows = rows["records"]
    if not isinstance(rows, list):
        raise _fail(
            ctx,
            f"write needs a list of records, got {type(rows).__name__}",
            hint="connect a list of objects (or of lists) to the `records` or `input` port",
        )
    fmt = _format(params.format, target, b"")
    if fmt not in ("csv", "tsv", "xlsx"):
        raise _fail(ctx, f"cannot write {fmt!r} files", hint="write .csv, .tsv or .xlsx")
    headers = list(params.headers) if params.headers is not None else _keys(rows)
    table: list[list[Any]] = [list(headers)] if params.has_headers and headers else []
    for row in rows:
        if isinstance(row, dict):
            table.append([row.get(h) for h in headers])
        elif isinstance(row, list | tuple):
            table.append(list(row))
        else:
            table.append([row])
    loc = locate(ctx, target)
    with os_errors(ctx, f"write {loc.url!r}"):
        check_writable(ctx, loc, params.overwrite, params.create_directories)
    sheet = None
    if fmt == "xlsx":
        sheet = params.sheet_name or "Sheet1"
        payload = _xlsx(table, sheet)
    else:
        delimiter = params.delimiter or ("\t" if fmt == "tsv" else ",")
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
        writer.writerows([[_plain(c) for c in row] for row in table])
        encoding = normalise_encoding(params.encoding) or "utf-8"
        text = buf.getvalue()
        try:
            payload = text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise ExecutionError(
                f"the table cannot be written as {encoding}: {exc.reason} at character "
                f"{exc.start} ({text[exc.start : exc.start + 1]!r})",
                node_id=ctx.node_id,
                hint="choose an encoding that has every character, such as utf-8",
                retryable=False,
            ) from None
    with os_errors(ctx, f"write {loc.url!r}"):
        atomic_write_bytes(loc.path, payload, fs=loc.fs)
    return {
        "operation": "write",
        "path": loc.url,
        "format": fmt,
        "rowCount": len(rows),
        "headers": headers,
        "sheetName": sheet,
        "size": len(payload),
    }


def _keys(rows: list[Any]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            keys.update(dict.fromkeys(str(k) for k in row))
    return list(keys)


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _xlsx(table: list[list[Any]], sheet: str) -> bytes:
    from openpyxl import Workbook  # type: ignore[import-untyped,unused-ignore]
    from openpyxl.utils.exceptions import (  # type: ignore[import-untyped,unused-ignore]
        IllegalCharacterError,
    )

    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet)
    for number, row in enumerate(table, start=1):
        try:
            ws.append([None if c is None else _plain(c) for c in row])
        except IllegalCharacterError as exc:
            raise ExecutionError(
                f"row {number} of the sheet holds a control character an xlsx file cannot "
                f"store: {exc}",
                hint="remove control characters (\\x00-\\x1f but tab and newline) first, "
                "or write format: csv",
            ) from exc
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
