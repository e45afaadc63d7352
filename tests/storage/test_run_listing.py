"""Listing stored runs: time-ordered run ids, a ``limit`` that reads only what it returns, and
pages with ``before`` (the Python API and the CLI; the server's in tests/server)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atomiton_core import Conductor, create_conductor, loads_flow
from atomiton_core.errors import RunNotFound
from atomiton_core.storage.runs import id_time, new_run_id

FLOWS = {
    name: loads_flow(
        f"""
id: {name}
name: {name}
variables: {{fail: {{defaultValue: false}}}}
nodes:
  - {{id: a, type: transform, parameters: {{expression: "1 / (0 if fail else 1)"}}}}
  - {{id: s, type: const, parameters: {{value: 1}}}}
edges:
  - {{source: s, target: a}}
"""
    )
    for name in ("one", "two")
}


def fill(conductor: Conductor, n: int, *, custom_every: int = 0) -> list[str]:
    """``n`` runs of the two flows, some failed, some with ids a caller chose; their ids in the
    order they ran."""

    async def go() -> list[str]:
        ids = []
        for i in range(n):
            custom = f"mine-{i:04d}" if custom_every and i % custom_every == 0 else None
            flow = FLOWS["one" if i % 3 else "two"]
            result = await conductor.execute(flow, {"fail": i % 4 == 0}, execution_id=custom)
            ids.append(result.execution_id)
        return ids

    return asyncio.run(go())


@pytest.fixture
def conductor(tmp_path: Path) -> Conductor:
    c = create_conductor(tmp_path / "store")
    yield c
    c.close()


def test_new_run_ids_sort_as_they_were_made() -> None:
    before = time.time()
    ids = [new_run_id() for _ in range(2000)]  # many within one millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 32 for i in ids)
    made = id_time(ids[0])
    assert made is not None and before - 0.01 <= made <= time.time() + 0.01
    assert id_time("mine-0001") is None
    assert id_time("0" * 12 + "7" + "0" * 3 + "8" + "0" * 15) is None  # 1970: not one of ours


def test_a_limit_gives_the_newest_of_the_whole_list_whatever_the_filters(
    conductor: Conductor,
) -> None:
    ran = fill(conductor, 60, custom_every=7)
    everything = conductor.storage.runs()
    assert [r.execution_id for r in everything] == ran[::-1]  # ids of both kinds, in run order
    for flow_id in (None, "one", "two"):
        for status in (None, "completed", "failed"):
            whole = conductor.storage.runs(flow_id=flow_id, status=status)
            assert whole, (flow_id, status)
            for limit in (0, 1, 5, len(whole), len(whole) + 3):
                got = conductor.storage.runs(flow_id=flow_id, status=status, limit=limit)
                assert [r.execution_id for r in got] == [r.execution_id for r in whole[:limit]]


def test_pages_with_before_cover_every_run_once(conductor: Conductor) -> None:
    ran = fill(conductor, 41, custom_every=5)
    seen: list[str] = []
    before = None
    while page := conductor.storage.runs(limit=6, before=before):
        seen += [r.execution_id for r in page]
        before = page[-1].execution_id
    assert seen == ran[::-1]
    failed = conductor.storage.runs(status="failed", limit=3, before=ran[30])
    assert [r.execution_id for r in failed] == [
        eid for i, eid in reversed(list(enumerate(ran[:30]))) if i % 4 == 0
    ][:3]
    with pytest.raises(RunNotFound, match="no run 'gone'"):
        conductor.storage.runs(before="gone")


_opened: list[str] | None = None  # while a list: the files opened (the audit hook below)


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], str):
        _opened.append(args[0])


sys.addaudithook(_audit)  # for the life of the process: it only records while asked to


def test_a_limit_reads_only_the_newest_records(conductor: Conductor) -> None:
    """300 runs: a page of 10 opens the records of those 10 runs, whatever the filter (each
    file the process opens is seen through an audit hook)."""
    global _opened
    ran = fill(conductor, 300)
    storage = conductor.storage
    runs_folder = storage.run_folder(ran[0]).rsplit("/", 1)[0]

    def records_read(**kwargs: object) -> tuple[list[str], set[str]]:
        global _opened
        _opened = []
        try:
            got = [r.execution_id for r in storage.runs(**kwargs)]  # type: ignore[arg-type]
        finally:
            seen, _opened = _opened, None
        return got, {p.rsplit("/", 2)[-2] for p in seen if p.startswith(runs_folder)}

    got, read = records_read(limit=10)
    assert got == ran[::-1][:10] and read == set(got)
    got, read = records_read(limit=10, before=ran[150])
    assert got == ran[149:139:-1] and read <= set(got) | {ran[150]}
    got, read = records_read(flow_id="two", limit=5)  # every third run is one of "two"
    assert len(got) == 5 and len(read) <= 16
    _, read = records_read()
    assert len(read) == 300


def test_the_cli_pages_through_runs(conductor: Conductor, tmp_path: Path) -> None:
    ran = fill(conductor, 9)

    def atomiton(*more: str) -> subprocess.CompletedProcess[str]:
        args = ["runs", "list", "--storage", str(tmp_path / "store"), "--json", "--limit", "4"]
        return subprocess.run(
            [sys.executable, "-m", "atomiton_core", *args, *more],
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = json.loads(atomiton().stdout)
    assert [r["executionId"] for r in first] == ran[::-1][:4]
    second = json.loads(atomiton("--before", first[-1]["executionId"]).stdout)
    assert [r["executionId"] for r in second] == ran[::-1][4:8]
    missing = atomiton("--before", "nope")
    assert missing.returncode != 0 and "no run 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
