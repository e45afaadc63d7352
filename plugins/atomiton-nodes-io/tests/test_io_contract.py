"""The node contract (atomiton_core.testing.check_node) for the three node types.

Parameters are drawn from strategies confined to a fresh memory:// root (also set as the
conductor's allowedRoots) and to the loopback test server, so nothing outside is touched.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import strategies as st

try:
    from atomiton_core.testing import check_node  # type: ignore[attr-defined,unused-ignore]
except ImportError:
    try:
        from atomiton_core.testing.contract import check_node
    except ImportError:  # the testing kit is not there (yet)
        check_node = None

pytestmark = pytest.mark.skipif(
    check_node is None, reason="atomiton_core.testing.check_node missing"
)

_NAMES = st.sampled_from(["a.txt", "b.csv", "dir", "dir/c.json", "x.xlsx", "../up.txt"])
_TEXT = st.one_of(st.none(), st.text(max_size=30), st.lists(st.integers(), max_size=3))


def _memory_root() -> str:
    root = f"memory://contract-{uuid.uuid4().hex}"
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"{root}/a.txt", b"hello")
    fs.pipe_file(f"{root}/b.csv", b"k,v\n1,2\n")
    fs.pipe_file(f"{root}/dir/c.json", b"{}")
    return root


def test_file_system_contract() -> None:
    root = _memory_root()
    params = st.fixed_dictionaries(
        {
            "operation": st.sampled_from(
                ["read", "write", "list", "exists", "create", "delete", "copy", "move"]
            ),
            "path": _NAMES.map(lambda n: f"{root}/{n}"),
        },
        optional={
            "destination": _NAMES.map(lambda n: f"{root}/copy/{n}"),
            "content": _TEXT,
            "encoding": st.sampled_from(["utf8", "latin-1", "base64", "binary", None]),
            "overwrite": st.booleans(),
            "createDirectories": st.booleans(),
            "recursive": st.booleans(),
            "pattern": st.sampled_from(["*.txt", "*.{csv,json}", "[", "{a,b"]),
            "includeStats": st.booleans(),
        },
    ).filter(  # copy / move without a destination is a validation error, not a run
        lambda p: p["operation"] not in ("copy", "move") or "destination" in p
    )
    inputs = st.fixed_dictionaries({}, optional={"input": _TEXT})
    check_node(
        "file-system",
        params=params,
        inputs=inputs,
        config={"allowedRoots": [root]},
        max_examples=40,
    )


def test_spreadsheet_contract() -> None:
    root = _memory_root()
    params = st.fixed_dictionaries(
        {"operation": st.sampled_from(["read", "write"])},
        optional={
            "path": _NAMES.map(lambda n: f"{root}/{n}"),
            "data": st.text(max_size=40),
            "hasHeaders": st.booleans(),
            "range": st.sampled_from(["A1:B2", "B:C", "2:3", "C3"]),
            "skipEmptyLines": st.booleans(),
            "delimiter": st.sampled_from([",", ";", "\t"]),
            "sheetIndex": st.integers(0, 2),
        },
    )
    records: st.SearchStrategy[Any] = st.lists(
        st.dictionaries(st.sampled_from(["a", "b"]), st.one_of(st.integers(), st.text(max_size=5))),
        max_size=3,
    )
    inputs = st.fixed_dictionaries(
        {}, optional={"input": st.one_of(records, st.text(max_size=10), st.none())}
    )
    check_node(
        "spreadsheet",
        params=params,
        inputs=inputs,
        config={"allowedRoots": [root]},
        max_examples=40,
    )


@pytest.mark.slow
def test_http_request_contract(base_url: str) -> None:
    params = st.fixed_dictionaries(
        {
            "url": st.sampled_from(
                [
                    "/json",
                    "/text",
                    "/binary",
                    "/echo",
                    "/redirect",
                    "/status/500",
                    "/slow/3",
                    "/big/100000",
                ]
            ).map(lambda p: base_url + p),
        },
        optional={
            "method": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
            "responseType": st.sampled_from(["auto", "json", "text", "binary"]),
            "failOnHttpError": st.booleans(),
            "followRedirects": st.booleans(),
            "maxResponseBytes": st.integers(1, 200_000),
            "body": _TEXT,
            "params": st.dictionaries(st.sampled_from(["q", "n"]), st.text(max_size=5)),
        },
    )
    inputs = st.fixed_dictionaries({}, optional={"input": _TEXT})
    check_node("http-request", params=params, inputs=inputs, max_examples=25)
