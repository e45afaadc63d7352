"""file-system through the real conductor, on real local files and on memory://."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from atomiton_core import Conductor, ExecutionResult, create_conductor, loads_flow

RunNode = Callable[..., ExecutionResult]


def test_discovered_through_entry_point(conductor: Conductor) -> None:
    for type_id in ("file-system", "http-request", "spreadsheet"):
        assert conductor.catalogue[type_id].distribution == "atomiton-nodes-io"


@pytest.mark.parametrize("where", ["local", "memory"])
def test_write_read_exists_list_delete(
    run_node: RunNode, tmp_path: Path, mem_root: str, where: str
) -> None:
    root = str(tmp_path) if where == "local" else mem_root
    target = f"{root}/sub/hello.txt"
    res = run_node(
        "file-system",
        {"operation": "write", "path": target, "content": "héllo", "createDirectories": True},
    )
    assert res.status == "completed", res.error
    assert res.nodes["n"].outputs["output"]["created"] is True
    res = run_node("file-system", {"operation": "read", "path": target})
    assert res.nodes["n"].outputs["content"] == "héllo"
    res = run_node("file-system", {"operation": "exists", "path": target})
    assert res.nodes["n"].outputs["exists"] is True
    assert res.nodes["n"].outputs["output"]["type"] == "file"
    res = run_node("file-system", {"operation": "list", "path": f"{root}/sub"})
    files = res.nodes["n"].outputs["files"]
    assert [f["name"] for f in files] == ["hello.txt"]
    res = run_node("file-system", {"operation": "delete", "path": target})
    assert res.nodes["n"].outputs["output"]["deleted"] is True
    res = run_node("file-system", {"operation": "exists", "path": target})
    assert res.nodes["n"].outputs["exists"] is False


def test_write_is_atomic_and_leaves_no_temp_files(run_node: RunNode, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    res = run_node("file-system", {"operation": "write", "path": str(target), "content": "new"})
    assert res.status == "completed"
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_content_from_input_and_template(run_node: RunNode, mem_root: str) -> None:
    res = run_node(
        "file-system", {"operation": "write", "path": f"{mem_root}/a.json"}, input={"k": [1, 2]}
    )
    assert res.status == "completed", res.error
    assert json.loads(fsspec.open(f"{mem_root}/a.json", "rt").open().read()) == {"k": [1, 2]}
    res = run_node(
        "file-system",
        {
            "operation": "write",
            "path": f"{mem_root}/{{{{ $input }}}}.txt",
            "content": "got {{$input}}",
        },
        input="name",
    )
    assert res.status == "completed", res.error
    with fsspec.open(f"{mem_root}/name.txt", "rt") as fh:
        assert fh.read() == "got name"


def test_overwrite_false_refuses_existing(run_node: RunNode, tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("keep")
    res = run_node(
        "file-system",
        {"operation": "write", "path": str(target), "content": "x", "overwrite": False},
    )
    assert res.status == "failed"
    err = res.nodes["n"].error
    assert err is not None and err.code == "FILE_EXISTS"
    assert str(target) in err.message and "overwrite" in err.message
    assert target.read_text() == "keep"


def test_missing_parent_needs_create_directories(run_node: RunNode, tmp_path: Path) -> None:
    # createDirectories defaults to true, as in the original; false refuses a missing parent
    res = run_node(
        "file-system",
        {
            "operation": "write",
            "path": str(tmp_path / "no" / "x.txt"),
            "content": "x",
            "createDirectories": False,
        },
    )
    assert res.status == "failed"
    assert "createDirectories" in str(res.nodes["n"].error)


def test_encodings(run_node: RunNode, tmp_path: Path) -> None:
    target = tmp_path / "bin.dat"
    target.write_bytes(b"\x00\xffabc")
    res = run_node("file-system", {"operation": "read", "path": str(target), "encoding": "binary"})
    assert res.nodes["n"].outputs["content"] == b"\x00\xffabc"
    res = run_node("file-system", {"operation": "read", "path": str(target), "encoding": None})
    assert res.nodes["n"].outputs["content"] == b"\x00\xffabc"
    res = run_node("file-system", {"operation": "read", "path": str(target)})
    assert res.status == "failed" and "binary" in str(res.nodes["n"].error)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    res = run_node("file-system", {"operation": "read", "path": str(latin), "encoding": "latin1"})
    assert res.nodes["n"].outputs["content"] == "café"
    res = run_node("file-system", {"operation": "read", "path": str(latin), "encoding": "base64"})
    assert res.nodes["n"].outputs["content"] == "Y2Fm6Q=="


def test_unknown_encoding_and_typo_fail_validation(conductor: Conductor) -> None:
    flow = loads_flow("""
id: t
name: t
nodes:
  - id: n
    type: file-system
    parameters: {operation: read, path: x, encoding: klingon, overwrit: true}
""")
    report = conductor.validate(flow)
    text = "\n".join(str(p) for p in report.errors)
    assert "klingon" in text and "overwrit" in text


def test_list_pattern_braces_recursive_stats(run_node: RunNode, tmp_path: Path) -> None:
    for name in ("a.jpg", "b.png", "c.gif", "d.txt", "deep/e.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"12345")
    res = run_node(
        "file-system", {"operation": "list", "path": str(tmp_path), "pattern": "*.{jpg,png}"}
    )
    assert [f["name"] for f in res.nodes["n"].outputs["files"]] == ["a.jpg", "b.png"]
    res = run_node(
        "file-system",
        {
            "operation": "list",
            "path": str(tmp_path),
            "pattern": "*.jpg",
            "recursive": True,
            "includeStats": True,
        },
    )
    files = res.nodes["n"].outputs["files"]
    assert [f["name"] for f in files] == ["a.jpg", "e.jpg"]
    assert files[1]["path"] == str(tmp_path / "deep" / "e.jpg")
    assert all(f["size"] == 5 and f["modified"] for f in files)


def test_create_copy_move(run_node: RunNode, tmp_path: Path, mem_root: str) -> None:
    res = run_node("file-system", {"operation": "create", "path": str(tmp_path / "d1" / "d2")})
    assert res.nodes["n"].outputs["output"]["created"] is True
    assert (tmp_path / "d1" / "d2").is_dir()
    src = tmp_path / "d1" / "d2" / "f.txt"
    src.write_text("data")
    # copy local -> memory, move within local, copy a directory recursively
    res = run_node(
        "file-system", {"operation": "copy", "path": str(src), "destination": f"{mem_root}/f.txt"}
    )
    assert res.status == "completed", res.error
    assert fsspec.filesystem("memory").cat_file(f"{mem_root}/f.txt".split("://")[1]) == b"data"
    res = run_node(
        "file-system",
        {
            "operation": "move",
            "path": str(src),
            "destination": str(tmp_path / "g.txt"),
            "createDirectories": True,
        },
    )
    assert res.status == "completed", res.error
    assert not src.exists() and (tmp_path / "g.txt").read_text() == "data"
    (tmp_path / "d1" / "d2" / "h.txt").write_text("h")
    res = run_node(
        "file-system",
        {"operation": "copy", "path": str(tmp_path / "d1"), "destination": str(tmp_path / "copy")},
    )
    assert res.status == "failed" and "recursive" in str(res.nodes["n"].error)
    res = run_node(
        "file-system",
        {
            "operation": "copy",
            "path": str(tmp_path / "d1"),
            "destination": str(tmp_path / "copy"),
            "recursive": True,
        },
    )
    assert res.status == "completed", res.error
    assert (tmp_path / "copy" / "d2" / "h.txt").read_text() == "h"
    res = run_node("file-system", {"operation": "delete", "path": str(tmp_path / "d1")})
    assert res.status == "failed" and "recursive" in str(res.nodes["n"].error)
    res = run_node(
        "file-system", {"operation": "delete", "path": str(tmp_path / "d1"), "recursive": True}
    )
    assert res.status == "completed" and not (tmp_path / "d1").exists()


def test_path_input_port_and_missing_file(run_node: RunNode, tmp_path: Path) -> None:
    res = run_node("file-system", {"operation": "read", "path": str(tmp_path / "nope")})
    err = res.nodes["n"].error
    assert err is not None and err.code == "FILE_NOT_FOUND" and "nope" in err.message


def test_allowed_roots_refuse_escapes(run_node: RunNode, tmp_path: Path, mem_root: str) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (inside / "link").symlink_to(outside)
    (inside / "ok.txt").write_text("ok")
    with create_conductor(
        f"memory://t-{os.getpid()}-roots",
        record_runs=False,
        config={"allowedRoots": [str(inside), mem_root]},
    ) as c:
        res = run_node(
            "file-system", {"operation": "read", "path": str(inside / "ok.txt")}, conductor=c
        )
        assert res.status == "completed", res.error
        for escape in (
            str(outside / "secret.txt"),
            f"{inside}/../outside/secret.txt",
            str(inside / "link" / "secret.txt"),
            "memory://elsewhere/x.txt",
            f"{mem_root}/../other/x.txt",
        ):
            res = run_node("file-system", {"operation": "read", "path": escape}, conductor=c)
            err = res.nodes["n"].error
            assert err is not None and err.code == "PATH_NOT_ALLOWED", escape
            assert escape in err.message and str(inside) in err.message
        res = run_node(
            "file-system",
            {
                "operation": "copy",
                "path": str(inside / "ok.txt"),
                "destination": str(outside / "stolen.txt"),
            },
            conductor=c,
        )
        assert res.nodes["n"].error.code == "PATH_NOT_ALLOWED"
        assert not (outside / "stolen.txt").exists()
        res = run_node(
            "file-system",
            {"operation": "write", "path": f"{mem_root}/fine.txt", "content": "x"},
            conductor=c,
        )
        assert res.status == "completed", res.error


def test_filesystem_errors_become_clear_errors(run_node: RunNode, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "below.txt"
    res = run_node(
        "file-system",
        {"operation": "write", "path": str(target), "content": "x", "createDirectories": True},
    )
    err = res.nodes["n"].error
    assert res.status == "failed" and err is not None
    assert err.message.startswith("write ") and "failed" in err.message
    assert str(err).startswith("node 'n': write ")  # the node is named once, by the error
    assert str(target) in err.message and "raised" not in err.message


def test_content_an_encoding_cannot_hold_is_a_clear_error(tmp_path: Path) -> None:
    from atomiton_core import create_conductor, loads_flow

    conductor = create_conductor(str(tmp_path / "s"), record_runs=False)
    flow = loads_flow(
        json.dumps(
            {
                "id": "enc",
                "name": "enc",
                "nodes": [
                    {
                        "id": "w",
                        "type": "file-system",
                        "parameters": {
                            "operation": "write",
                            "path": str(tmp_path / "a.txt"),
                            "content": "caf\u0100",
                            "encoding": "latin-1",
                        },
                    }
                ],
            }
        )
    )
    err = conductor.run(flow).nodes["w"].error
    assert err is not None and err.code == "EXECUTION_FAILED"
    assert "cannot be written as iso8859-1" in err.message and "'Ā'" in err.message
    assert not (tmp_path / "a.txt").exists()
