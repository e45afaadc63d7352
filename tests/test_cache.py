"""The output cache: cached nodes run once for the same inputs, again when what they are given
changes or their entry is too old, across processes, and say why when they cannot be cached."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    Conductor,
    NodeContext,
    Parameters,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
    signals,
)
from atomiton_core.errors import NodeDefinitionError

RAN: Counter[str] = Counter()


class Add(Parameters):
    add: int = 1


@node("ca.add", params=Add, outputs={"output": int}, blocking=False, pure=True, cacheable=True)
def add(ctx: NodeContext, params: Add, input: int = 0) -> dict[str, Any]:
    """Cacheable by its type; counts its runs."""
    RAN[ctx.path] += 1
    return {"output": input + params.add}


@node("ca.plain", outputs={"output": int}, blocking=False)
def plain(ctx: NodeContext, params: Parameters, input: int = 0) -> dict[str, Any]:
    RAN[ctx.path] += 1
    return {"output": input + 100}


@node("ca.opaque", outputs={"output": object}, blocking=False)
def opaque(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
    return {"output": object()}


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [add, plain, opaque]


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


@pytest.fixture(params=["full", "off"])
def conductor(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """With the run log and without: the cache works either way."""
    with create_conductor(tmp_path / "s", plugins=[Plugin()], record=request.param) as c:
        yield c


def _flow(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] | None = None) -> Any:
    return loads_flow(
        json.dumps(
            {
                "id": "ca",
                "name": "ca",
                "nodes": nodes,
                "edges": [
                    {"source": a, "target": b, "sourceHandle": "output", "targetHandle": "input"}
                    for a, b in edges or []
                ],
            }
        )
    )


def test_a_cached_node_runs_once_until_what_it_is_given_changes(conductor: Conductor) -> None:
    seen: list[str] = []

    def on_completed(sender: Any, event: signals.NodeEvent) -> None:
        seen.append(f"{event.path}:{event.status}")

    nodes = [
        {"id": "src", "type": "ca.plain"},  # not cached: runs every time
        {"id": "c", "type": "ca.add", "parameters": {"add": 1}},
        {"id": "flagged", "type": "ca.plain", "parameters": {"cache": True}},
    ]
    edges = [("src", "c"), ("c", "flagged")]
    signals.node_completed.connect(on_completed, sender=conductor)
    try:
        results = [conductor.run(_flow(nodes, edges)) for _ in range(3)]
    finally:
        signals.node_completed.disconnect(on_completed, sender=conductor)
    assert all(r.ok for r in results)
    assert Counter({"src": 3, "c": 1, "flagged": 1}) == RAN
    assert [str(r.nodes["c"].status) for r in results] == ["completed", "cached", "cached"]
    assert results[2].outputs == results[0].outputs == {"flagged": {"output": 201}}
    assert "c:cached" in seen and "flagged:cached" in seen
    nodes[1]["parameters"]["add"] = 2  # its parameter changes: it runs, and so does flagged
    changed = conductor.run(_flow(nodes, edges))
    assert RAN["c"] == 2 and RAN["flagged"] == 2
    assert changed.outputs == {"flagged": {"output": 202}}
    nodes[1]["parameters"]["add"] = 1  # back: both entries are still there
    conductor.run(_flow(nodes, edges))
    assert RAN["c"] == 2 and RAN["flagged"] == 2


def test_an_input_change_misses_and_the_ttl_expires_entries(conductor: Conductor) -> None:
    flow = loads_flow(
        "id: v\nname: v\nvariables: {n: {defaultValue: 1}}\nnodes:\n"
        "  - {id: c, type: ca.add, parameters: {add: 1, cacheTtl: 3600}}\n"
    )
    conductor.run(flow, {"n": 1})
    conductor.run(flow, {"n": 1})
    assert RAN["c"] == 1
    conductor.run(flow, {"n": 2})  # what it sees changed
    assert RAN["c"] == 2
    store = conductor.cache_store
    assert store is not None
    for entry in Path(store.folder).glob("entries/*.json"):  # every entry is two hours old now
        data = json.loads(entry.read_text())
        data["createdAt"] -= 7200
        entry.write_text(json.dumps(data))
    conductor.run(flow, {"n": 1})
    assert RAN["c"] == 3


def test_no_cache_and_refresh(conductor: Conductor) -> None:
    flow = _flow([{"id": "c", "type": "ca.add"}])
    conductor.run(flow)
    assert str(conductor.run(flow, cache="off").nodes["c"].status) == "completed"
    assert str(conductor.run(flow, cache="refresh").nodes["c"].status) == "completed"
    assert str(conductor.run(flow).nodes["c"].status) == "cached"
    assert RAN["c"] == 3
    with pytest.raises(Exception, match="is not an option"):
        conductor.run(flow, cache="sometimes")


def test_an_input_no_codec_stores_runs_the_node_and_warns_once(
    conductor: Conductor, caplog: pytest.LogCaptureFixture
) -> None:
    flow = loads_flow(
        json.dumps(
            {
                "id": "u",
                "name": "u",
                "nodes": [
                    {"id": "o", "type": "ca.opaque"},
                    {"id": "c", "type": "ca.plain", "parameters": {"cache": True}},
                ],
                "edges": [
                    {
                        "source": "o",
                        "target": "c",
                        "sourceHandle": "output",
                        "targetHandle": "input",
                    }
                ],
            }
        )
    )

    @node("ca.takes-any", outputs={"output": int}, blocking=False)
    def takes_any(ctx: NodeContext, params: Parameters, input: Any = None) -> dict[str, Any]:
        RAN[ctx.path] += 1
        return {"output": 1}

    class More:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [takes_any]

    flow.nodes[1].type = "ca.takes-any"
    with (
        create_conductor(
            conductor.storage.url + "-u",  # type: ignore[union-attr]
            plugins=[Plugin(), More()],
        ) as c,
        caplog.at_level(logging.WARNING, "atomiton"),
    ):
        first = c.run(flow)
        second = c.run(flow)
    assert first.ok and second.ok and RAN["c"] == 2
    warnings = [r.getMessage() for r in caplog.records if "is not cached" in r.getMessage()]
    assert len(warnings) == 2  # once per run
    assert "'c'" in warnings[0] and "input" in warnings[0]


def test_cacheable_needs_pure() -> None:
    with pytest.raises(NodeDefinitionError, match="cacheable=True needs pure=True"):

        @node("ca.bad", cacheable=True)
        def bad(ctx: NodeContext, params: Parameters) -> dict[str, Any]:
            return {}


SIDE = """
with open(vars["side"], "a") as fh:
    fh.write("ran\\n")
return 42
"""


def test_an_entry_one_process_wrote_is_hit_by_another(tmp_path: Path) -> None:
    """Two CLI runs (two processes) of a code node with ``cache: true``: the second is cached,
    its side effect happened once; --no-cache runs it; ``atomiton cache`` lists and clears."""
    side = tmp_path / "side.txt"
    flow_file = tmp_path / "f.flow.json"
    flow_file.write_text(
        json.dumps(
            {
                "id": "side",
                "name": "side",
                "variables": {"side": {"defaultValue": str(side)}},
                "nodes": [
                    {
                        "id": "c",
                        "type": "code",
                        "parameters": {"code": textwrap.dedent(SIDE), "cache": True},
                    }
                ],
            }
        )
    )
    store = str(tmp_path / "store")

    def atomiton(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "atomiton_core.cli", *args, "--storage", store],
            capture_output=True,
            text=True,
            timeout=120,
        )

    runs = [json.loads(atomiton("run", str(flow_file), "--json").stdout) for _ in range(2)]
    assert [r["nodes"]["c"]["status"] for r in runs] == ["completed", "cached"]
    assert runs[1]["outputs"]["c"]["result"] == 42
    assert side.read_text() == "ran\n"
    fresh = json.loads(atomiton("run", str(flow_file), "--json", "--no-cache").stdout)
    assert fresh["nodes"]["c"]["status"] == "completed" and side.read_text() == "ran\n" * 2
    both = atomiton("run", str(flow_file), "--no-cache", "--refresh-cache")
    assert both.returncode == 2 and "contradict" in both.stderr
    listed = json.loads(atomiton("cache", "list", "--json").stdout)
    assert [e["nodeType"] for e in listed] == ["code"]
    assert "deleted 1 cache entry" in atomiton("cache", "clear").stdout
    again = json.loads(atomiton("run", str(flow_file), "--json").stdout)
    assert again["nodes"]["c"]["status"] == "completed" and side.read_text() == "ran\n" * 3
    shown = atomiton("runs", "show", runs[1]["executionId"])  # the record says so too
    assert shown.returncode == 0 and "cached" in shown.stdout


class Text(Parameters):
    text: str = ""


@node("ca.echo", params=Text, outputs={"output": str}, blocking=False)
def echo(ctx: NodeContext, params: Text, input: Any = None) -> dict[str, Any]:
    RAN[ctx.path] += 1
    return {"output": str(ctx.render(params.text, input=input))}


def test_the_key_covers_the_parameters_as_they_render(tmp_path: Path) -> None:
    """A template reading the time never hits; one reading the node's input hits for the
    same input; one reading a secret misses when the secret changes."""

    class More:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [echo]

    vault = tmp_path / "vault.json"
    vault.write_text('{"TOKEN": "first-token"}')
    flow = _flow(
        [
            {"id": "src", "type": "ca.add", "parameters": {"add": 1}},
            {"id": "clock", "type": "ca.echo", "parameters": {"text": "{{ now }}", "cache": True}},
            {
                "id": "uses",
                "type": "ca.echo",
                "parameters": {"text": "{{ input }}!", "cache": True},
            },
            {
                "id": "secret",
                "type": "ca.echo",
                "parameters": {"text": "{{ secrets.TOKEN | length }}", "cache": True},
            },
        ],
        [("src", "uses")],
    )
    with create_conductor(
        tmp_path / "s", plugins=[Plugin(), More()], secrets=[f"file:{vault}"]
    ) as c:
        runs = [c.run(flow) for _ in range(2)]
        vault.write_text('{"TOKEN": "a-much-longer-second-token"}')
        third = c.run(flow)
    assert all(r.ok for r in [*runs, third])
    assert RAN["clock"] == 3  # `now` differs every run
    assert RAN["uses"] == 1 and str(runs[1].nodes["uses"].status) == "cached"
    assert RAN["secret"] == 2 and third.nodes["secret"].outputs == {"output": "26"}
