"""Flows written for the original Atomiton: its parameter names, defaults and bounds.

Each test names the original file (Develonaut/atomiton, packages/@atomiton/nodes/src/, at the
commit given) the name or value comes from. Real files in tmp_path, real runs, a real HTTP
server on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import Conductor, ExecutionError, ExecutionResult, loads_flow
from atomiton_core.testing import run_node as run_fed

from atomiton_nodes_io.file_system import FileSystemParams
from atomiton_nodes_io.http_request import HttpRequestParams
from atomiton_nodes_io.spreadsheet import SpreadsheetParams

RunNode = Callable[..., ExecutionResult]


def one_node(node_type: str, parameters: dict[str, Any], *, source: bool = False) -> Any:
    """A flow with one node (and, with ``source``, an edit-fields feeding its ``input``)."""
    nodes: list[dict[str, Any]] = [{"id": "n", "type": node_type, "parameters": parameters}]
    edges: list[dict[str, Any]] = []
    if source:
        nodes.insert(0, {"id": "src", "type": "edit-fields", "parameters": {"values": {"a": 1}}})
        edges.append(
            {"source": "src", "sourceHandle": "output", "target": "n", "targetHandle": "input"}
        )
    return loads_flow(json.dumps({"id": "t", "name": "t", "nodes": nodes, "edges": edges}))


def problems_at(conductor: Conductor, flow: Any, location: str) -> list[Any]:
    return [p for p in conductor.validate(flow).errors if p.location == location]


def missing_parameter(conductor: Conductor, flow: Any, name: str) -> Any:
    """The one problem of ``flow``: a MISSING_PARAMETER of its node ``n`` at ``name``."""
    [problem] = conductor.validate(flow).errors
    assert problem.code == "MISSING_PARAMETER", problem
    assert problem.node_id == "n"
    i = [node.id for node in flow.nodes].index("n")
    assert problem.location == f"nodes[{i}].parameters.{name}"
    return problem


def run_error(node_type: str, parameters: dict[str, Any], **ports: Any) -> ExecutionError:
    """The error of a run whose ``ports`` are connected (so validation lets it run) but
    bring these values, None being nothing: the node's own check must catch it."""
    with pytest.raises(ExecutionError) as caught:
        run_fed(node_type, parameters, inputs=ports)
    return caught.value


# -- file-system ---------------------------------------------------------------------------
def test_file_system_original_write_names_and_default(run_node: RunNode, tmp_path: Path) -> None:
    """``filePath`` and ``createDirectory`` as data-transform.flow.yaml writes them; and with
    neither ``createDirectories`` nor ``createDirectory``, parent folders are created, as
    MVP_DEFAULTS.createDirectories = true did (executables/file-system/index.ts, 1c1fd775)."""
    target = tmp_path / "output" / "results.json"
    res = run_node(
        "file-system",
        {"operation": "write", "filePath": str(target), "createDirectory": True, "overwrite": True},
        input={"total": 3},
    )
    assert res.status == "completed", res.error
    assert json.loads(target.read_text()) == {"total": 3}
    deeper = tmp_path / "a" / "b" / "c.txt"
    res = run_node("file-system", {"operation": "write", "path": str(deeper), "content": "x"})
    assert res.status == "completed", res.error
    assert deeper.read_text() == "x"
    assert FileSystemParams().create_directories is True
    assert FileSystemParams().overwrite is True  # MVP_DEFAULTS.overwrite = true, same file


def test_file_system_original_name_and_ours_together_is_a_problem(conductor: Conductor) -> None:
    flow = one_node("file-system", {"filePath": "/a", "path": "/b"})
    [problem] = conductor.validate(flow).errors
    assert problem.node_id == "n"
    assert "'filePath' is the original's name for 'path'" in problem.message


def test_file_system_target_path_and_missing_destination(
    conductor: Conductor, tmp_path: Path
) -> None:
    """``targetPath`` is the original's copy/move target (schemas/file-system/index.ts,
    46b0171c); copy and move without one are reported before the run, naming it."""
    src = tmp_path / "a.txt"
    src.write_text("data")
    flow = one_node(
        "file-system", {"operation": "copy", "path": str(src), "targetPath": str(tmp_path / "b")}
    )
    res = conductor.run(flow)
    assert res.status == "completed", res.error
    assert (tmp_path / "b").read_text() == "data"
    for op in ("copy", "move"):
        flow = one_node("file-system", {"operation": op, "path": str(src)})
        [problem] = problems_at(conductor, flow, "nodes[0].parameters.destination")
        assert problem.node_id == "n" and "targetPath" in problem.message


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images" / "input"
    for name in ("a.jpg", "b.png", "c.gif", "d.txt", ".hidden.jpg", "sub/e.jpg", ".cache/f.png"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"12345")
    return folder


def test_file_system_list_as_the_image_processor_flow(run_node: RunNode, images: Path) -> None:
    """image-processor.flow.yaml's ``image-source``: ``filePath``, ``pattern: "*.{jpg,png,gif}"``,
    ``recursive: false``, ``includeStats: true``. Names starting with '.' are left out, as the
    original's listing did (includeHidden = false, executables/file-system/index.ts, 1c1fd775;
    directoryOperations.ts, 259a5052)."""
    params = {
        "operation": "list",
        "filePath": str(images),
        "pattern": "*.{jpg,png,gif}",
        "recursive": False,
        "includeStats": True,
    }
    files = run_node("file-system", params).nodes["n"].outputs["files"]
    assert [f["name"] for f in files] == ["a.jpg", "b.png", "c.gif"]
    assert all(f["size"] == 5 and f["modified"] for f in files)
    assert files[0]["path"] == str(images / "a.jpg")
    files = run_node("file-system", {**params, "recursive": True}).nodes["n"].outputs["files"]
    assert [f["name"] for f in files] == ["a.jpg", "b.png", "c.gif", "e.jpg"]
    hidden = run_node("file-system", {**params, "recursive": True, "includeHidden": True})
    names = [f["name"] for f in hidden.nodes["n"].outputs["files"]]
    assert names == ["f.png", ".hidden.jpg", "a.jpg", "b.png", "c.gif", "e.jpg"]


def test_file_system_file_filter_and_full_paths(
    run_node: RunNode, conductor: Conductor, images: Path
) -> None:
    """``fileFilter`` (a regular expression) and ``fullPaths`` (schemas/file-system/index.ts,
    46b0171c): strings instead of entries, full or relative to ``path``."""
    base = {"operation": "list", "path": str(images), "recursive": True}
    out = run_node("file-system", {**base, "fileFilter": r"\.(png|gif)$", "fullPaths": True})
    assert out.nodes["n"].outputs["files"] == [str(images / "b.png"), str(images / "c.gif")]
    out = run_node("file-system", {**base, "fileFilter": "^[de]", "fullPaths": False})
    assert out.nodes["n"].outputs["files"] == ["d.txt", "sub/e.jpg"]
    flow = one_node("file-system", {**base, "fileFilter": "(unclosed"})
    [problem] = problems_at(conductor, flow, "nodes[0].parameters.fileFilter")
    assert "not a regular expression" in problem.message


def test_file_system_original_encodings(run_node: RunNode, tmp_path: Path) -> None:
    """The original's encodings: utf8, base64, binary, ascii, hex
    (schemas/file-system/index.ts, 46b0171c)."""
    target = tmp_path / "x.bin"
    res = run_node(
        "file-system",
        {"operation": "write", "path": str(target), "content": "00ff41", "encoding": "hex"},
    )
    assert res.status == "completed", res.error
    assert target.read_bytes() == b"\x00\xffA"
    read = run_node("file-system", {"operation": "read", "path": str(target), "encoding": "hex"})
    assert read.nodes["n"].outputs["content"] == "00ff41"
    text = tmp_path / "t.txt"
    text.write_text("plain")
    read = run_node("file-system", {"operation": "read", "path": str(text), "encoding": "ascii"})
    assert read.nodes["n"].outputs["content"] == "plain"


def test_file_system_without_a_path_fails_naming_it() -> None:
    """The original's ``path`` is required ("Path is required", schemas/file-system): a
    connected ``path`` port that brings nothing fails the run, naming it; so does a write
    whose ``input`` brings nothing to write."""
    err = run_error("file-system", {"operation": "read"}, path=None)
    assert err.node_id == "node" and err.context["parameter"] == "path"
    assert "needs a `path`" in err.message
    err = run_error("file-system", {"operation": "write", "path": "memory://x/y"}, input=None)
    assert err.context["parameter"] == "content" and "nothing to write" in err.message
    assert FileSystemParams().missing_inputs(frozenset({"path"})) == []
    write = FileSystemParams(operation="write", path="x")
    assert [n for n, _ in write.missing_inputs(frozenset())] == ["content"]
    assert write.missing_inputs(frozenset({"input"})) == []


def test_file_system_without_a_path_is_a_validation_problem(conductor: Conductor) -> None:
    problem = missing_parameter(conductor, one_node("file-system", {"operation": "read"}), "path")
    assert "needs a `path`" in problem.message and "filePath" in problem.message
    write = one_node("file-system", {"operation": "write", "path": "memory://x/y"})
    assert "nothing to write" in missing_parameter(conductor, write, "content").message
    fed = one_node("file-system", {"operation": "write", "path": "memory://x/y"}, source=True)
    assert conductor.validate(fed).ok


# -- http-request --------------------------------------------------------------------------
def test_http_request_validate_ssl_and_default_timeout(conductor: Conductor, base_url: str) -> None:
    """``validateSSL`` (schemas/http-request/index.ts, 46b0171c) is our ``verifySsl``; the
    original's ``timeout`` default of 30000 ms (same file) is the type's default setting."""
    assert HttpRequestParams.model_validate({"validateSSL": False}).verify_ssl is False
    flow = one_node("http-request", {"url": f"{base_url}/json", "validateSSL": True})
    res = conductor.run(flow)
    assert res.status == "completed", res.error
    assert res.nodes["n"].outputs["result"] == {"hello": "world", "n": 1}
    assert conductor.prepare(flow).root.nodes[0].settings.timeout == 30_000
    own = one_node("http-request", {"url": f"{base_url}/json", "timeout": 5000})
    assert conductor.prepare(own).root.nodes[0].settings.timeout == 5000


def test_http_request_url_must_be_a_url(conductor: Conductor) -> None:
    """``url: v.string().url("Must be a valid URL")`` (schemas/http-request/index.ts,
    46b0171c): a static URL that is none is reported before the run, naming ``url``."""
    for bad in ("example.com/api", "ftp://example.com/x", "http://"):
        flow = one_node("http-request", {"url": bad})
        [problem] = problems_at(conductor, flow, "nodes[0].parameters.url")
        assert problem.node_id == "n" and "absolute http(s) URL" in problem.message
    templated = one_node("http-request", {"url": "{{ input.a }}"}, source=True)
    assert conductor.validate(templated).ok


def test_http_request_without_a_url_fails_naming_it() -> None:
    """A connected ``url`` port that brings nothing fails the run, naming ``url``."""
    err = run_error("http-request", {}, url=None)
    assert err.node_id == "node" and err.context["parameter"] == "url"
    assert "no url given" in err.message
    assert HttpRequestParams().missing_inputs(frozenset({"url"})) == []
    assert [n for n, _ in HttpRequestParams().missing_inputs(frozenset({"input"}))] == ["url"]


def test_http_request_without_a_url_is_a_validation_problem(conductor: Conductor) -> None:
    """The original's ``url`` is required (schemas/http-request/index.ts, 46b0171c)."""
    problem = missing_parameter(conductor, one_node("http-request", {}), "url")
    assert "no url given" in problem.message


# -- spreadsheet (and the original's csv-reader) -------------------------------------------
def test_spreadsheet_as_the_data_transform_flow(run_node: RunNode, tmp_path: Path) -> None:
    """data-transform.flow.yaml's ``csv-source``: ``filePath``, ``hasHeaders``, ``delimiter``,
    ``encoding``; defaults as spreadsheetDefaults (definitions/spreadsheet/index.ts, bfae3ce6):
    hasHeaders true, skipEmptyLines true, sheetIndex 0."""
    sample = tmp_path / "sample.csv"
    sample.write_text("name,active,amount\nada,true,3.5\n\nbob,false,2\n")
    params = {"filePath": str(sample), "hasHeaders": True, "delimiter": ",", "encoding": "utf-8"}
    out = run_node("spreadsheet", params).nodes["n"].outputs
    assert out["records"] == [
        {"name": "ada", "active": True, "amount": 3.5},
        {"name": "bob", "active": False, "amount": 2},
    ]
    defaults = SpreadsheetParams()
    assert (defaults.has_headers, defaults.skip_empty_lines, defaults.sheet_index) == (
        True,
        True,
        0,
    )


def test_spreadsheet_takes_the_csv_readers_skip_empty(run_node: RunNode, tmp_path: Path) -> None:
    """csv-reader's ``skipEmpty`` (definitions/csv-reader/index.ts, 259a5052) is our
    ``skipEmptyLines``; ``atomiton migrate`` turns a csv-reader node into a spreadsheet one."""
    sample = tmp_path / "s.csv"
    sample.write_text("a,b\n1,2\n,\n3,4\n")
    kept = run_node("spreadsheet", {"filePath": str(sample), "skipEmpty": False})
    assert kept.nodes["n"].outputs["rowCount"] == 3
    dropped = run_node("spreadsheet", {"filePath": str(sample), "skipEmpty": True})
    assert dropped.nodes["n"].outputs["rowCount"] == 2


def test_csv_reader_is_not_a_node_type(conductor: Conductor) -> None:
    """The original replaced csv-reader with spreadsheet (executables/registry.ts, 25e39b83);
    its nodes are migrated, not run under the old name."""
    assert conductor.catalogue.get("csv-reader") is None
    [problem] = conductor.validate(one_node("csv-reader", {"filePath": "x.csv"})).errors
    assert problem.code == "NODE_TYPE_NOT_FOUND" and problem.node_id == "n"


def test_spreadsheet_fods_is_reported(conductor: Conductor) -> None:
    """The original's formats include fods (schemas/spreadsheet/index.ts, 245a57bf), which
    calamine cannot read: reported before the run, naming ``format``."""
    flow = one_node("spreadsheet", {"path": "x.fods", "format": "fods"})
    [problem] = problems_at(conductor, flow, "nodes[0].parameters.format")
    assert problem.node_id == "n"


def test_spreadsheet_without_path_or_data_fails_naming_it() -> None:
    """Connected ``path`` / ``data`` ports that bring nothing fail the run, naming ``path``."""
    for ports in ({"path": None}, {"data": None}, {"path": None, "data": None}):
        err = run_error("spreadsheet", {}, **ports)
        assert err.node_id == "node" and err.context["parameter"] == "path", ports
        assert "nothing to read" in err.message
    err = run_error("spreadsheet", {"operation": "write"}, path=None, input=[{"a": 1}])
    assert err.context["parameter"] == "path" and "needs a `path`" in err.message
    assert SpreadsheetParams().missing_inputs(frozenset({"data"})) == []
    write = SpreadsheetParams(operation="write", data="a,b")
    assert [n for n, _ in write.missing_inputs(frozenset({"data"}))] == ["path"]


def test_spreadsheet_without_path_or_data_is_a_validation_problem(conductor: Conductor) -> None:
    problem = missing_parameter(conductor, one_node("spreadsheet", {}), "path")
    assert "nothing to read" in problem.message
    write = one_node("spreadsheet", {"operation": "write"}, source=True)
    assert "needs a `path`" in missing_parameter(conductor, write, "path").message
    assert conductor.validate(one_node("spreadsheet", {"data": "a,b\n1,2"})).ok
