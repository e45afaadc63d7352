"""Durable runs: the run log and record every execution writes, reading them back (history,
interrupted runs), and resuming a run from where it stopped (real files, real processes)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomiton_core import (
    Conductor,
    NodeContext,
    Parameters,
    create_conductor,
    create_storage,
    hookimpl,
    loads_flow,
    node,
    signals,
)
from atomiton_core.errors import AtomitonError
from atomiton_core.storage.runs import RunRecord, read_events, read_events_after

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
#: How many times each node (by path) really ran, across runs.
RAN: Counter[str] = Counter()
#: Node ids that fail when they run (a test "fixes" them by emptying it).
BROKEN: set[str] = set()


class Step(Parameters):
    add: int = 1


@node("rt.step", params=Step, outputs={"output": int}, multiple=["input"], blocking=False)
def step(ctx: NodeContext, params: Step, input: list[int] | None = None) -> dict[str, Any]:
    """Sums its inputs and adds ``add``; counts its runs; fails while it is BROKEN."""
    RAN[ctx.path] += 1
    if ctx.node_id in BROKEN:
        raise ValueError(f"{ctx.node_id} is broken")
    return {"output": sum(input or []) + params.add}


@node("rt.opaque", outputs={"output": object}, blocking=False)
def opaque(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    RAN[ctx.path] += 1
    return {"output": object()}  # no codec can store it


@node("rt.bytes", outputs={"output": bytes}, blocking=False)
def big_bytes(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    RAN[ctx.path] += 1
    return {"output": bytes(range(256)) * 400}  # 100 KB: a blob


#: What rt.gate nodes wait for (set by the test that runs them, on its loop).
GATE: dict[str, asyncio.Event] = {}


@node("rt.gate", outputs={"output": int})
async def gated(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    await GATE["open"].wait()
    return {"output": 1}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [step, opaque, big_bytes, gated]


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()
    BROKEN.clear()


@pytest.fixture()
def conductor(tmp_path: Path) -> Any:
    with create_conductor(tmp_path / "store", plugins=[Plugin()], autoload=False) as c:
        yield c


def _flow(nodes: list[dict[str, Any]], edges: list[tuple[str, str]], fid: str = "rt") -> Any:
    return loads_flow(
        json.dumps(
            {
                "id": fid,
                "name": fid,
                "nodes": nodes,
                "edges": [
                    {"source": a, "target": b, "sourceHandle": "output", "targetHandle": "input"}
                    for a, b in edges
                ],
            }
        )
    )


def _chain(n: int, adds: dict[str, int] | None = None) -> Any:
    adds = adds or {}
    nodes = [
        {"id": f"n{i}", "type": "rt.step", "parameters": {"add": adds.get(f"n{i}", 1)}}
        for i in range(n)
    ]
    return _flow(nodes, [(f"n{i}", f"n{i + 1}") for i in range(n - 1)])


# -- the log and the record -------------------------------------------------------------------
def test_every_execution_leaves_a_log_and_a_record(conductor: Conductor) -> None:
    result = conductor.run(_chain(3))
    assert result.ok
    folder = Path(conductor.storage.run_folder(result.execution_id))  # type: ignore[union-attr]
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "completed" and record["record"] == "full"
    assert record["flowId"] == "rt" and len(record["flowHash"]) == 32
    assert record["writer"]["pid"] == os.getpid()
    # the file names every node in order; each one's entry is its line of the log, which
    # the reader takes from there
    assert record["nodeLog"] == ["n0", "n1", "n2"] and record["nodes"] == {}
    record = RunRecord.load(conductor.storage, result.execution_id).data  # type: ignore[arg-type]
    assert list(record["nodes"]) == ["n0", "n1", "n2"] and "nodeLog" not in record
    n2 = record["nodes"]["n2"]
    assert n2["status"] == "completed" and n2["attempts"] == 1
    assert n2["outputs"] == {"output": 3}
    assert n2["key"] and n2["inputsDigest"] and n2["outputsDigests"]["output"]
    events = read_events(conductor.storage, result.execution_id)  # type: ignore[arg-type]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "execution.started" and kinds[-1] == "execution.completed"
    # each node started and ended between two writes of the log: its completed line, which
    # has its start time too, is all it needs
    assert kinds.count("node.completed") == 3 and "node.started" not in kinds
    for event in events[1:-1]:
        assert event["startedAt"] <= event["t"]
    # the same value gives the same digest: n1 and n2's inputs differ, their keys too
    assert record["nodes"]["n1"]["key"] != n2["key"]


def test_a_node_still_running_when_the_log_is_written_has_its_started_line(
    conductor: Conductor,
) -> None:
    async def main() -> tuple[list[str], Any]:
        GATE["open"] = asyncio.Event()
        flow = _flow([{"id": "quick", "type": "rt.step"}, {"id": "wait", "type": "rt.gate"}], [])
        execution = conductor.start(flow)
        folder = conductor.storage.run_folder(execution.execution_id)  # type: ignore[union-attr]
        log = Path(folder) / "events.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the log is the run's own output: follow it
            text = log.read_text() if log.exists() else ""
            if '"type":"node.started"' in text:
                break
            await asyncio.sleep(0.005)
        seen = [f"{e['type']}:{e.get('path', '')}" for e in map(json.loads, text.splitlines())]
        GATE["open"].set()
        return seen, await execution.result()

    seen, result = asyncio.run(main())
    assert result.ok
    assert "node.started:wait" in seen and "node.started:quick" not in seen
    events = read_events(conductor.storage, result.execution_id)  # type: ignore[arg-type]
    assert [e["type"] for e in events if e.get("path") == "wait"] == [
        "node.started",
        "node.completed",
    ]


def test_a_cancelled_run_reads_back_node_by_node(conductor: Conductor) -> None:
    """Nodes that ended have their entry in the log, the others in run.json: read back, the
    record has every node of the run, in its order, with its status."""

    async def main() -> Any:
        GATE["open"] = asyncio.Event()
        flow = _flow(
            [
                {"id": "quick", "type": "rt.step"},
                {"id": "wait", "type": "rt.gate"},
                {"id": "after", "type": "rt.step"},
            ],
            [("wait", "after")],
        )
        started = asyncio.Event()
        with signals.node_started.connected_to(
            lambda _sender, event: started.set() if event.node_id == "wait" else None
        ):
            execution = conductor.start(flow)
            await started.wait()
        execution.cancel()
        return await execution.result()

    result = asyncio.run(main())
    assert str(result.status) == "cancelled"
    folder = Path(conductor.storage.run_folder(result.execution_id))  # type: ignore[union-attr]
    raw = json.loads((folder / "run.json").read_text())
    assert raw["nodeLog"] == ["quick", "wait", "after"]
    assert list(raw["nodes"]) == ["after"]  # it never started: no line of the log says it
    back = conductor.storage.record(result.execution_id).to_result()  # type: ignore[union-attr]
    assert list(back.nodes) == list(result.nodes)
    assert {p: str(r.status) for p, r in back.nodes.items()} == {
        p: str(r.status) for p, r in result.nodes.items()
    }


def test_a_listing_reads_neither_the_nodes_nor_the_log(conductor: Conductor) -> None:
    storage = conductor.storage
    assert storage is not None
    small = conductor.run(_chain(3))
    big = conductor.run(_chain(300))
    folder = Path(storage.run_folder(big.execution_id))
    log = (folder / "events.jsonl").read_bytes()
    (folder / "events.jsonl").write_bytes(b"not read by a listing")
    listed = {r.execution_id: r.summary() for r in storage.runs()}
    assert listed[big.execution_id]["nodes"] == 300
    assert listed[big.execution_id]["status"] == "completed"
    assert listed[small.execution_id]["nodes"] == 3
    (folder / "events.jsonl").write_bytes(log)
    (record,) = [r for r in storage.runs() if r.execution_id == big.execution_id]
    assert len(record.nodes) == 300  # asked for: read from the log
    assert record.nodes["n299"]["outputs"] == {"output": 300}
    assert record.to_result().outputs == big.outputs


def test_a_large_record_is_listed_from_its_summary(
    conductor: Conductor, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = conductor.storage
    assert storage is not None
    # a record over SUMMARY_FROM (64 KB: about 8,000 nodes' names) gets a summary
    monkeypatch.setattr("atomiton_core.conductor.runlog.SUMMARY_FROM", 1000)
    small = conductor.run(_chain(3))
    big = conductor.run(_chain(300))
    folder = Path(storage.run_folder(big.execution_id))
    assert (folder / "summary.json").exists()
    assert not (Path(storage.run_folder(small.execution_id)) / "summary.json").exists()
    whole = (folder / "run.json").read_bytes()
    (folder / "run.json").write_bytes(b"not read by a listing")
    listed = {r.execution_id: r.summary() for r in storage.runs()}
    assert listed[big.execution_id]["nodes"] == 300
    assert listed[big.execution_id]["status"] == "completed"
    (folder / "run.json").write_bytes(whole)
    (record,) = [r for r in storage.runs() if r.execution_id == big.execution_id]
    assert len(record.nodes) == 300  # asked for: the whole record is read
    assert record.to_result().outputs == big.outputs


def test_large_and_binary_outputs_are_blobs_referenced_from_the_record(
    conductor: Conductor,
) -> None:
    result = conductor.run(_flow([{"id": "b", "type": "rt.bytes"}], []))
    folder = Path(conductor.storage.run_folder(result.execution_id))  # type: ignore[union-attr]
    events = read_events(conductor.storage, result.execution_id)  # type: ignore[arg-type]
    (line,) = [e for e in events if e["type"] == "node.completed"]
    stored = line["outputs"]["output"]
    assert set(stored) == {"$ref"}
    assert (folder / "blobs" / stored["$ref"]).stat().st_size > 100_000
    back = conductor.storage.record(result.execution_id).to_result()  # type: ignore[union-attr]
    assert back.nodes["b"].outputs == {"output": bytes(range(256)) * 400}


def test_a_value_no_codec_stores_is_reported_once_and_the_run_goes_on(
    conductor: Conductor, caplog: pytest.LogCaptureFixture
) -> None:
    flow = _flow([{"id": "o", "type": "rt.opaque"}, {"id": "s", "type": "rt.step"}], [])
    with caplog.at_level(logging.WARNING, "atomiton.runs"):
        result = conductor.run(flow)
    assert result.ok
    [warning] = [r for r in caplog.records if "cannot be resumed" in r.getMessage()]
    assert "'o'" in warning.getMessage() and "'output'" in warning.getMessage()
    events = read_events(conductor.storage, result.execution_id)  # type: ignore[arg-type]
    [done] = [e for e in events if e["type"] == "node.completed" and e["path"] == "o"]
    assert done["key"] is None and "cannot be stored" in done["notResumable"]
    again = conductor.run(flow, resume=result.execution_id)
    assert again.nodes["o"].resumed_from is None and RAN["o"] == 2  # it ran again
    assert again.nodes["s"].resumed_from == result.execution_id and RAN["s"] == 1


def test_the_record_modes(tmp_path: Path) -> None:
    flow = _chain(2)
    for mode in ("summary", "off"):
        with create_conductor(tmp_path / mode, plugins=[Plugin()], record=mode) as c:
            result = c.run(flow)
            assert c.storage is not None
            folder = Path(c.storage.run_folder(result.execution_id))
            if mode == "off":
                assert not folder.exists()
                continue
            assert (folder / "run.json").exists() and not (folder / "events.jsonl").exists()
            assert c.storage.record(result.execution_id).nodes["n1"]["status"] == "completed"
            with pytest.raises(AtomitonError, match="recorded without its outputs"):
                c.run(flow, resume=result.execution_id)
    with pytest.raises(AtomitonError, match="is not an option"):
        create_conductor(tmp_path / "x", record="everything")


def test_a_torn_last_line_is_ignored(conductor: Conductor) -> None:
    result = conductor.run(_chain(2))
    storage = conductor.storage
    assert storage is not None
    log = Path(storage.run_folder(result.execution_id)) / "events.jsonl"
    whole = read_events(storage, result.execution_id)
    with log.open("ab") as fh:
        fh.write(b'{"type":"node.started","path":"n9","t":1')  # a write cut by a kill
    assert read_events(storage, result.execution_id) == whole


def test_a_log_is_read_on_from_where_a_reader_stopped(conductor: Conductor) -> None:
    """``read_events_after``: the lines after ``next``, so a follower decodes each line once;
    a line still being written is neither given nor counted until it is finished."""
    result = conductor.run(_chain(3))
    storage = conductor.storage
    assert storage is not None
    eid = result.execution_id
    whole = read_events(storage, eid)
    assert read_events_after(storage, eid) == (whole, len(whole))
    assert read_events_after(storage, eid, 2) == (whole[2:], len(whole))
    assert read_events_after(storage, eid, len(whole) + 5) == ([], len(whole))
    log = Path(storage.run_folder(eid)) / "events.jsonl"
    with log.open("ab") as fh:
        fh.write(b'{"type":"node.started","path":"n9"')  # half a line: its writer goes on
    assert read_events_after(storage, eid, len(whole)) == ([], len(whole))
    with log.open("ab") as fh:
        fh.write(b',"t":1}\n')
    later = read_events_after(storage, eid, len(whole))
    assert later == ([{"type": "node.started", "path": "n9", "t": 1}], len(whole) + 1)
    with pytest.raises(AtomitonError, match="after=-1"):
        read_events_after(storage, eid, -1)


def test_a_log_in_segments_is_read_on_the_same_way(tmp_path: Path) -> None:
    """On an object store the log is segments (``events/<n>.jsonl``), read on by line too."""
    with create_conductor(
        f"memory://read-on-{tmp_path.name}", plugins=[Plugin()], autoload=False
    ) as c:
        result = c.run(_chain(3))
        assert c.storage is not None
        eid = result.execution_id
        assert c.storage.fs.ls(c.storage.run_folder(eid) + "/events")
        whole = read_events(c.storage, eid)
        assert len(whole) > 3 and read_events_after(c.storage, eid, 3) == (whole[3:], len(whole))


def test_history_sorts_by_start_and_filters(conductor: Conductor) -> None:
    ok = conductor.run(_chain(2))
    BROKEN.add("n1")
    bad = conductor.run(_chain(2))
    storage = conductor.storage
    assert storage is not None
    assert [r.execution_id for r in storage.runs()] == [bad.execution_id, ok.execution_id]
    assert [r.execution_id for r in storage.runs(status="failed")] == [bad.execution_id]
    assert storage.runs(flow_id="other") == []
    assert storage.load_run(bad.execution_id)["status"] == "failed"
    storage.delete_run(ok.execution_id)
    assert [r.execution_id for r in storage.runs()] == [bad.execution_id]
    with pytest.raises(AtomitonError, match="no run"):
        storage.record(ok.execution_id)


def test_a_record_of_the_earlier_format_still_reads(conductor: Conductor) -> None:
    storage = conductor.storage
    assert storage is not None
    legacy = {
        "executionId": "old1",
        "flowId": "rt",
        "status": "completed",
        "outputs": {"n0": {"output": 1}},
        "nodes": {
            "n0": {"nodeId": "n0", "nodeType": "rt.step", "path": "n0", "status": "completed"}
        },
        "startedAt": "2026-01-01T00:00:00+00:00",
        "durationMs": 1.0,
    }
    location = Path(storage.legacy_run_location("old1"))
    location.parent.mkdir(parents=True, exist_ok=True)
    location.write_text(json.dumps(legacy))
    record = storage.record("old1")
    assert record.status == "completed" and record.mode == "summary"
    assert "old1" in [r.execution_id for r in storage.runs()]


def test_a_record_with_its_nodes_inside_still_reads(conductor: Conductor) -> None:
    """Format 2 wrote every node's entry into run.json; such records read as they did."""
    storage = conductor.storage
    assert storage is not None
    result = conductor.run(_chain(3))
    folder = Path(storage.run_folder(result.execution_id))
    nodes = storage.record(result.execution_id).data["nodes"]
    record = json.loads((folder / "run.json").read_text())
    del record["nodeLog"]
    record.update(format=2, nodes=nodes)
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "events.jsonl").write_text("")  # not read for a finished record of format 2
    back = storage.record(result.execution_id).to_result()
    assert list(back.nodes) == ["n0", "n1", "n2"]
    assert back.nodes["n2"].outputs == {"output": 3}


# -- resume ----------------------------------------------------------------------------------
def test_resume_after_a_failure_runs_only_what_did_not_complete(conductor: Conductor) -> None:
    BROKEN.add("n5")
    first = conductor.run(_chain(10))
    assert first.status == "failed"
    BROKEN.clear()
    second = conductor.run(_chain(10), resume=first.execution_id)
    assert second.ok
    clean = create_conductor(
        conductor.storage.url + "-clean",  # type: ignore[union-attr]
        plugins=[Plugin()],
    ).run(_chain(10))
    assert second.outputs == clean.outputs
    reused = {p for p, r in second.nodes.items() if r.resumed_from == first.execution_id}
    assert reused == {f"n{i}" for i in range(5)}
    assert all(RAN[f"n{i}"] == 2 for i in range(5))  # once here, once in the clean run
    assert RAN["n5"] == 3  # failed, resumed, clean
    record = conductor.storage.record(second.execution_id)  # type: ignore[union-attr]
    assert record.data["resumedFrom"] == first.execution_id
    assert record.nodes["n0"]["resumedFrom"] == first.execution_id


def test_editing_one_parameter_reruns_exactly_that_node_and_its_dependants(
    conductor: Conductor,
) -> None:
    #     a -> b -> d
    #     a -> c -> d -> e ;  f alone
    nodes = [{"id": x, "type": "rt.step", "parameters": {"add": 1}} for x in "abcdef"]
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e")]
    first = conductor.run(_flow(nodes, edges))
    RAN.clear()
    nodes[2]["parameters"]["add"] = 5  # c changes
    second = conductor.run(_flow(nodes, edges), resume=first.execution_id)
    assert second.ok
    assert set(RAN) == {"c", "d", "e"} and set(RAN.values()) == {1}
    assert {p for p, r in second.nodes.items() if r.resumed_from} == {"a", "b", "f"}
    assert second.nodes["e"].outputs == {"output": (2 + 6 + 1) + 1}


def test_resume_reuses_completed_loop_iterations(conductor: Conductor) -> None:
    BROKEN.add("i")
    loop = {
        "id": "l",
        "type": "loop",
        "parameters": {"array": [1, 2, 3], "breakOnError": True},
        "nodes": [{"id": "i", "type": "rt.step", "parameters": {"add": 1}}],
    }
    flow = _flow([loop], [])
    # iterations 0 and 1 pass, 2 fails: break it only on the third
    calls: list[str] = []

    @node("rt.third", outputs={"output": int}, blocking=False)
    def third(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
        RAN[ctx.path] += 1
        calls.append(ctx.path)
        if ctx.path.endswith("iteration 2/t") and BROKEN:
            raise ValueError("third iteration fails")
        return {"output": len(ctx.path)}

    class More:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [third]

    loop["nodes"] = [{"id": "t", "type": "rt.third"}]
    storage = conductor.storage.url  # type: ignore[union-attr]
    with create_conductor(storage, plugins=[Plugin(), More()], autoload=False) as c:
        flow = _flow([loop], [])
        first = c.run(flow)
        assert first.status == "failed"
        BROKEN.clear()
        second = c.run(flow, resume=first.execution_id)
    assert second.ok, second.error
    assert RAN["l/iteration 0/t"] == 1 and RAN["l/iteration 1/t"] == 1
    assert RAN["l/iteration 2/t"] == 2
    assert second.nodes["l/iteration 0/t"].resumed_from == first.execution_id
    assert second.nodes["l"].resumed_from is None  # the loop itself ran again


def test_changed_inputs_rerun_everything_they_reach(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: v\nname: v\nvariables: {k: {defaultValue: 1}}\nnodes:\n"
        "  - {id: a, type: rt.step, parameters: {add: 1}}\n"
    )
    first = conductor.run(flow, {"k": 1})
    same = conductor.run(flow, {"k": 1}, resume=first.execution_id)
    other = conductor.run(flow, {"k": 2}, resume=first.execution_id)
    assert same.nodes["a"].resumed_from == first.execution_id
    assert other.nodes["a"].resumed_from is None  # variables are part of what a node sees


def test_a_missing_run_cannot_be_resumed(conductor: Conductor) -> None:
    with pytest.raises(AtomitonError, match="no run 'nope'"):
        conductor.run(_chain(1), resume="nope")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.data(),
    n=st.integers(2, 12),
)
def test_property_fix_the_failures_and_resume_gives_the_clean_run(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, n: int
) -> None:
    """Random DAGs with randomly failing nodes (some failing on, some failing the run):
    fixed and resumed, the outputs are a clean run's, and no node that completed on inputs
    that are the same again ran again (one downstream of a node that failed on saw other
    inputs then, and must run)."""
    edges = []
    for b in range(1, n):
        for a in sorted(data.draw(st.sets(st.integers(0, b - 1), max_size=3))):
            edges.append((f"n{a}", f"n{b}"))
    adds = {f"n{i}": data.draw(st.integers(-3, 3)) for i in range(n)}
    broken = data.draw(st.sets(st.sampled_from([f"n{i}" for i in range(n)]), max_size=3))
    nodes = [
        {
            "id": f"n{i}",
            "type": "rt.step",
            "parameters": {"add": adds[f"n{i}"], "continueOnFail": data.draw(st.booleans())},
        }
        for i in range(n)
    ]
    flow = _flow(nodes, edges)
    store = tmp_path_factory.mktemp("prop")
    RAN.clear()
    BROKEN.clear()
    BROKEN.update(broken)
    with create_conductor(store / "s", plugins=[Plugin()], autoload=False) as c:
        first = c.run(flow)
        # the record read back (its nodes' entries from the log) is the run, node by node
        assert c.storage is not None
        back = c.storage.record(first.execution_id).to_result()
        assert list(back.nodes) == list(first.nodes)
        for path, res in first.nodes.items():
            again = back.nodes[path]
            assert (again.status, again.attempts, again.outputs) == (
                res.status,
                res.attempts,
                res.outputs,
            ), path
            assert (again.error and again.error.code) == (res.error and res.error.code), path
        completed = {p for p, r in first.nodes.items() if r.status == "completed"}
        before = Counter(RAN)
        BROKEN.clear()
        resumed = c.run(flow, resume=first.execution_id)
    with create_conductor(store / "clean", plugins=[Plugin()], autoload=False) as c:
        clean = c.run(flow)
    assert resumed.ok and clean.ok
    assert resumed.outputs == clean.outputs
    preds: dict[str, set[str]] = {f"n{i}": set() for i in range(n)}
    for a, b in edges:
        preds[b].add(a)

    def settled(path: str) -> bool:  # it and everything upstream completed the first time
        return path in completed and all(settled(p) for p in preds[path])

    for path in filter(settled, completed):
        # a completed node ran in the first run and the clean one only (both count here)
        assert RAN[path] == before[path] + 1, path
        assert resumed.nodes[path].resumed_from == first.execution_id


# -- a killed CLI ------------------------------------------------------------------------------
SIDE_EFFECT = """
with open(vars["side"], "a") as fh:
    fh.write("{node}\\n")
return inputs.get("input", 0) + 1
"""
SLOW = (
    """
import time
time.sleep(120)
"""
    + SIDE_EFFECT
)


def _killable_flow(path: Path, n: int, slow: int) -> None:
    nodes = []
    for i in range(n):
        body = (SLOW if i == slow else SIDE_EFFECT).format(node=f"n{i}")
        params: dict[str, Any] = {"code": textwrap.dedent(body)}
        if i == slow:
            params["timeout"] = 300_000
            params["cpuLimit"] = 300
        nodes.append({"id": f"n{i}", "type": "code", "parameters": params})
    edges = [
        {
            "source": f"n{i}",
            "target": f"n{i + 1}",
            "sourceHandle": "result",
            "targetHandle": "input",
        }
        for i in range(n - 1)
    ]
    path.write_text(
        json.dumps(
            {
                "id": "killable",
                "name": "killable",
                "variables": {"side": {"defaultValue": ""}},
                "nodes": nodes,
                "edges": edges,
            }
        )
    )


def _atomiton(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atomiton_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


@pytest.mark.slow
def test_a_sigkilled_cli_run_is_interrupted_and_resumes_running_every_node_once(
    tmp_path: Path,
) -> None:
    n, slow = 100, 60
    flow_file = tmp_path / "killable.flow.json"
    _killable_flow(flow_file, n, slow)
    side = tmp_path / "side.txt"
    store = tmp_path / "store"
    args = ["run", str(flow_file), "--storage", str(store), "--input", f"side={side}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "atomiton_core.cli", *args, "--process-workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the run log says n60 started (so everything before it is in the log): kill then
        deadline = time.monotonic() + 120
        log = None
        while time.monotonic() < deadline:
            if log is None:
                found = list(store.glob("runs/*/events.jsonl"))
                log = found[0] if found else None
            if log is not None and f'"path":"n{slow}","nodeId"' in log.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        else:
            raise AssertionError("the run never reached the slow node")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    eid = log.parent.name
    shown = _atomiton("runs", "show", eid, "--storage", str(store))
    assert shown.returncode == 0, shown.stderr
    assert "interrupted" in shown.stdout
    listed = _atomiton("runs", "list", "--json", "--storage", str(store))
    assert json.loads(listed.stdout)[0]["status"] == "interrupted"
    record = RunRecord.load(create_storage(str(store)), eid)
    assert record.nodes[f"n{slow}"]["status"] == "interrupted"
    assert sum(1 for e in record.nodes.values() if e["status"] == "completed") == slow
    lines_before = side.read_text().split()
    assert lines_before == [f"n{i}" for i in range(slow)]
    # resume it, with the slow node made quick: it, and everything after, runs
    _killable_flow(flow_file, n, slow=-1)
    resumed = _atomiton(*args, "--resume", eid, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["status"] == "completed"
    assert result["outputs"][f"n{n - 1}"]["result"] == n
    assert side.read_text().split() == [f"n{i}" for i in range(n)]  # every node ran once
    reused = [p for p, r in result["nodes"].items() if r.get("resumedFrom") == eid]
    assert sorted(reused) == sorted(f"n{i}" for i in range(slow))


def test_a_sub_flow_edited_since_reruns_its_changed_nodes(conductor: Conductor) -> None:
    storage = conductor.storage
    assert storage is not None
    inner = {"id": "x", "type": "rt.step", "parameters": {"add": 1}}
    other = {"id": "y", "type": "rt.step", "parameters": {"add": 1}}
    storage.save(_flow([inner, other], [], fid="inner"))
    outer = _flow([{"id": "s", "type": "flow", "parameters": {"flowId": "inner"}}], [])
    first = conductor.run(outer)
    assert first.outputs == {"s": {"x": {"output": 1}, "y": {"output": 1}}}
    inner["parameters"]["add"] = 10
    storage.save(_flow([inner, other], [], fid="inner"))
    RAN.clear()
    second = conductor.run(outer, resume=first.execution_id)
    assert second.outputs == {"s": {"x": {"output": 10}, "y": {"output": 1}}}
    assert dict(RAN) == {"s/x": 1}  # y, unchanged, was reused
    assert second.nodes["s/y"].resumed_from == first.execution_id


def test_a_record_from_another_host_is_judged_by_its_heartbeat(conductor: Conductor) -> None:
    storage = conductor.storage
    assert storage is not None
    result = conductor.run(_chain(1))
    record = Path(storage.run_folder(result.execution_id)) / "run.json"
    data = json.loads(record.read_text())
    now = time.time()
    for beat, expected in ((now - 5, "running"), (now - 3600, "interrupted")):
        data.update(
            status="running",
            heartbeatAt=beat,
            writer={"host": "another-machine", "pid": 1, "processStart": 0},
        )
        record.write_text(json.dumps(data))
        assert storage.record(result.execution_id).status == expected


@pytest.mark.slow
def test_a_cli_killed_at_any_point_leaves_a_record_that_loads(tmp_path: Path) -> None:
    """SIGKILL at twelve points of a run (by how much of its log is written, from before
    the first line to after the end): every time the record loads, as interrupted unless the
    run had finished, its log reads, and its nodes match the log."""
    n = 3000
    flow_file = tmp_path / "many.flow.json"
    nodes = [
        {"id": f"n{i}", "type": "edit-fields", "parameters": {"values": {"i": i}}} for i in range(n)
    ]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    flow_file.write_text(json.dumps({"id": "many", "name": "many", "nodes": nodes, "edges": edges}))
    storage = create_storage(str(tmp_path / "store"))
    for k, lines in enumerate((0, 1, 2, 5, 50, 200, 800, 1500, 3000, 4500, 5990, 6100)):
        proc = subprocess.Popen(
            [*ATOMITON, "run", str(flow_file), "--quiet", "--storage", storage.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            log = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                found = Path(storage.url).glob("runs/*/events.jsonl")
                new = [p for p in found if p.parent.name not in _seen_runs]
                if new:
                    log = new[0]
                    if log.read_bytes().count(b"\n") >= lines:
                        break
                time.sleep(0.001)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        if log is None:
            continue  # it died before its first line: nothing to read, nothing lost
        eid = log.parent.name
        _seen_runs.add(eid)
        record = storage.record(eid)
        events = read_events(storage, eid)
        assert record.status in ("interrupted", "completed"), (k, record.status)
        done = {e["path"] for e in events if e["type"] == "node.completed"}
        assert {p for p, e in record.nodes.items() if e["status"] == "completed"} == done
        assert record.to_result().execution_id == eid


_seen_runs: set[str] = set()


def test_the_records_flow_outputs_refer_to_blobs_too(conductor: Conductor) -> None:
    result = conductor.run(_flow([{"id": "b", "type": "rt.bytes"}], []))
    storage = conductor.storage
    assert storage is not None
    record = json.loads((Path(storage.run_folder(result.execution_id)) / "run.json").read_text())
    assert set(record["outputs"]["b"]["output"]) == {"$ref"}  # not 100 KB inline
    back = storage.record(result.execution_id).to_result()
    assert back.outputs == {"b": {"output": bytes(range(256)) * 400}}
    assert storage.load_run(result.execution_id)["status"] == "completed"


def test_a_blob_reference_that_is_not_a_digest_is_refused(conductor: Conductor) -> None:
    """A record edited by hand cannot lead a reader (or a resume) out of the run's folder."""
    result = conductor.run(_flow([{"id": "b", "type": "rt.bytes"}], []))
    storage = conductor.storage
    assert storage is not None
    for name in ("run.json", "events.jsonl"):
        path = Path(storage.run_folder(result.execution_id)) / name
        path.write_text(path.read_text().replace('"$ref":"', '"$ref":"../../../../etc/passwd#'))
    back = storage.record(result.execution_id).to_result()
    shown = back.outputs["b"]["output"]
    assert isinstance(shown, dict) and shown["$ref"].startswith("../")  # shown as stored
    again = conductor.run(_flow([{"id": "b", "type": "rt.bytes"}], []), resume=result.execution_id)
    assert again.ok and again.nodes["b"].resumed_from is None  # not reused: it ran
    assert RAN["b"] == 2
