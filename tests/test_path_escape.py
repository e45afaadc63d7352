"""The path-escape corpus: every file-touching node, every operation, every way out of the
allowed root we know of; no file outside it is read, created, changed or deleted.

The root holds symlinks that point out (a file and a folder), and the outside holds a secret.
Each attempt runs through a real conductor with ``allowedRoots`` set; the node must fail
with an ``AtomitonError`` (``PATH_NOT_ALLOWED`` where it is about the path), never return
the secret, never hang. The figures are in tests/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import create_conductor, loads_flow

SECRET = "outside-secret-4f2a"


def snapshot(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[str(path)] = "dir" if path.is_dir() else "link"
    return out


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "secret.csv").write_text(f"a,b\n{SECRET},1\n")
    (outside / "nested").mkdir()
    (outside / "nested" / "deep.txt").write_text(SECRET)
    (root / "data" / "ok.txt").write_text("inside")
    (root / "data" / "ok.csv").write_text("a,b\n1,2\n")
    (root / "link-file").symlink_to(outside / "secret.txt")
    (root / "link-csv.csv").symlink_to(outside / "secret.csv")
    (root / "link-dir").symlink_to(outside, target_is_directory=True)
    (root / "tree").mkdir()
    (root / "tree" / "plain.txt").write_text("inside")
    (root / "tree" / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "dest-link").symlink_to(outside / "nested", target_is_directory=True)
    return {"root": root, "outside": outside, "tmp": tmp_path}


def escapes(world: dict[str, Path]) -> list[str]:
    root, outside, tmp = world["root"], world["outside"], world["tmp"]
    return [
        str(outside / "secret.txt"),
        f"{root}/../outside/secret.txt",
        f"{root}/data/../../outside/secret.txt",
        f"{root}//..//outside/secret.txt",
        f"{root}/./../outside/secret.txt",
        f"file://{outside}/secret.txt",
        f"file://{root}/../outside/secret.txt",
        f"{root}/link-file",
        f"{root}/link-csv.csv",
        f"{root}/link-dir/secret.txt",
        f"{root}/link-dir/nested/deep.txt",
        f"{root}/link-dir",
        f"{root}/dest-link/new.txt",
        "../outside/secret.txt",
        "/etc/passwd",
        "/proc/self/environ",
        "/dev/zero",
        "~/.bashrc",
        "$HOME/.bashrc",
        f"zip://secret.txt::{outside}/x.zip",
        "tar://x::file:///dev/zero",
        f"simplecache::file://{outside}/secret.txt",
        f"filecache::{outside}/secret.txt",
        f"dir::{outside}",
        f"memory://{outside}/secret.txt",
        f"{root}" + "/a" * 40 + "/.." * 41 + "/outside/secret.txt",
        f"{root}/data/ok.txt\x00/../../../outside/secret.txt",
        f"{tmp}/root-sibling/secret.txt",
        f"{root}-evil/secret.txt",
        f"{root}/%2e%2e/outside/secret.txt",
    ]


def operations(path: str, world: dict[str, Path]) -> list[dict[str, Any]]:
    root = world["root"]
    return [
        {"type": "file-system", "parameters": {"operation": "read", "path": path}},
        {"type": "file-system", "parameters": {"operation": "write", "path": path, "content": "x"}},
        {
            "type": "file-system",
            "parameters": {"operation": "list", "path": path, "recursive": True},
        },
        {"type": "file-system", "parameters": {"operation": "exists", "path": path}},
        {"type": "file-system", "parameters": {"operation": "create", "path": path}},
        {
            "type": "file-system",
            "parameters": {"operation": "delete", "path": path, "recursive": True},
        },
        {
            "type": "file-system",
            "parameters": {"operation": "copy", "path": path, "destination": f"{root}/data/c"},
        },
        {
            "type": "file-system",
            "parameters": {"operation": "copy", "path": f"{root}/data/ok.txt", "destination": path},
        },
        {
            "type": "file-system",
            "parameters": {"operation": "move", "path": path, "destination": f"{root}/data/m"},
        },
        {"type": "spreadsheet", "parameters": {"operation": "read", "path": path, "format": "csv"}},
        {
            "type": "spreadsheet",
            "parameters": {"operation": "write", "path": path, "format": "csv"},
        },
        {"type": "image", "parameters": {"operation": "grayscale", "inputPath": path}},
        {
            "type": "image",
            "parameters": {
                "operation": "convert",
                "inputPath": f"{root}/data/ok.txt",
                "outputPath": path,
                "format": "png",
            },
        },
    ]


def run_node(conductor: Any, spec: dict[str, Any]) -> Any:
    body: dict[str, Any] = {"id": "escape", "name": "escape", "nodes": [{"id": "n", **spec}]}
    if spec["type"] == "spreadsheet" and spec["parameters"]["operation"] == "write":
        body["nodes"].insert(
            0, {"id": "rows", "type": "edit-fields", "parameters": {"values": {"a": 1}}}
        )
        body["edges"] = [{"id": "e", "source": "rows", "target": "n", "targetHandle": "data"}]
    return conductor.run(loads_flow(json.dumps(body)))


def test_no_operation_of_any_file_node_escapes_the_root(world: dict[str, Path]) -> None:
    root, outside = world["root"], world["outside"]
    conductor = create_conductor(
        str(world["tmp"] / "store"), security={"allowedRoots": [str(root)]}
    )
    before = snapshot(outside)
    tried = refused = 0
    for path in escapes(world):
        for spec in operations(path, world):
            t0 = time.perf_counter()
            result = run_node(conductor, spec)
            assert time.perf_counter() - t0 < 10, (spec, "hung")
            tried += 1
            node = result.nodes["n"]
            assert SECRET not in json.dumps(
                {"out": node.outputs, "err": str(node.error)}, default=str
            ), spec
            if node.status == "completed":
                # allowed only when the path stayed inside: nothing outside changed
                continue
            refused += 1
            assert node.error is not None, spec
    assert snapshot(outside) == before, "a file outside the root was created, changed or deleted"
    assert tried == len(escapes(world)) * len(operations("x", world))
    assert refused >= tried * 0.9


def test_a_recursive_copy_does_not_read_through_a_symlink(world: dict[str, Path]) -> None:
    root = world["root"]
    conductor = create_conductor(
        str(world["tmp"] / "store"), security={"allowedRoots": [str(root)]}
    )
    result = run_node(
        conductor,
        {
            "type": "file-system",
            "parameters": {
                "operation": "copy",
                "path": f"{root}/tree",
                "destination": f"{root}/copy",
                "recursive": True,
            },
        },
    )
    err = result.nodes["n"].error
    assert err is not None and err.code == "PATH_NOT_ALLOWED", err
    copied = root / "copy"
    for path in copied.rglob("*") if copied.exists() else []:
        assert SECRET not in path.read_text()


def test_a_chained_url_is_refused_before_it_is_opened(world: dict[str, Path]) -> None:
    conductor = create_conductor(
        str(world["tmp"] / "store"), security={"allowedRoots": [str(world["root"])]}
    )
    fifo = world["tmp"] / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block forever
    t0 = time.perf_counter()
    result = run_node(
        conductor,
        {"type": "file-system", "parameters": {"operation": "read", "path": f"tar://x::{fifo}"}},
    )
    assert time.perf_counter() - t0 < 5
    err = result.nodes["n"].error
    assert err is not None and err.code == "PATH_NOT_ALLOWED"
    assert "chained" in err.message


def test_pruning_run_records_never_follows_a_symlink_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(3):
        (outside / f"precious-{i}.json").write_text("{}")
    store = tmp_path / "store"
    store.mkdir()
    (store / "runs").symlink_to(outside, target_is_directory=True)
    conductor = create_conductor(str(store))
    assert conductor.storage is not None
    assert conductor.storage.prune_runs(0) == 0
    assert sorted(p.name for p in outside.iterdir()) == [f"precious-{i}.json" for i in range(3)]


def test_inside_the_root_everything_still_works(world: dict[str, Path]) -> None:
    root = world["root"]
    conductor = create_conductor(
        str(world["tmp"] / "store"), security={"allowedRoots": [str(root)]}
    )
    read = run_node(
        conductor,
        {"type": "file-system", "parameters": {"operation": "read", "path": f"{root}/data/ok.txt"}},
    )
    assert read.ok, read.error
    rows = run_node(
        conductor,
        {"type": "spreadsheet", "parameters": {"operation": "read", "path": f"{root}/data/ok.csv"}},
    )
    assert rows.ok, rows.error
