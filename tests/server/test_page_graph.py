"""The page's graph, run list, node inspector and replay, in a real headless Chromium against a
real uvicorn server: a run started with curl appears and its graph's colours change as it goes;
a failed node's error and hint in the inspector; a past run opened from the list; the
scrubber moving its nodes' states. Screenshots of each state go to test-artifacts/.

Nothing here sleeps: a node holds until the test opens its gate (an asyncio.Event set in the
server's loop), and the page's state is waited for with Playwright's ``expect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from atomiton_core import NodeContext, create_conductor, hookimpl, loads_flow, node
from atomiton_core.errors import ExecutionError
from atomiton_core.server.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "page-graph-token-0123456789"

pytestmark = pytest.mark.slow


class HoldParams(BaseModel):
    gate: str = ""
    seconds: float = 0.0


@node("page.hold", params=HoldParams, outputs={"output": object}, category="test")
async def hold_node(ctx: NodeContext, params: HoldParams, input: Any = None) -> dict[str, Any]:
    """Half done, then hold until the test opens the gate named ``gate`` (or sleep ``seconds``)."""
    ctx.progress(0.5, "holding")
    if params.gate:
        await ctx.config["gates"][params.gate].wait()
    else:
        await asyncio.sleep(params.seconds)
    return {"output": input}


@node("page.numbers", outputs={"output": list}, category="test", blocking=False)
def numbers_node(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    """A large output: 400 numbers of 16 digits."""
    return {"output": [1234567890123456 + i for i in range(400)]}


@node("page.refuse", outputs={"output": object}, category="test")
async def refuse_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    raise ExecutionError("the service said no", hint="check the API key in the vault")


class PagePlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [hold_node, numbers_node, refuse_node]


PIPELINE = """\
id: pipeline
name: Pipeline
description: A greeting, a node that holds until the test lets it go, a group.
nodes:
  - {id: greet, type: edit-fields, name: Greet, parameters: {values: {who: page}}}
  - {id: hold, type: page.hold, name: Hold on, parameters: {gate: live}}
  - id: finish
    type: group
    name: Finish
    nodes:
      - {id: shout, type: edit-fields, parameters: {values: {done: true}}}
    edges:
      - {source: finish, sourceHandle: input, target: shout, targetHandle: input}
      - {source: shout, sourceHandle: output, target: finish, targetHandle: done}
edges:
  - {source: greet, target: hold}
  - {source: hold, target: finish, targetHandle: input}
"""

BROKEN = """\
id: broken
name: Broken
nodes:
  - {id: numbers, type: page.numbers}
  - {id: call, type: page.refuse, name: Call the service}
  - {id: after, type: edit-fields, parameters: {values: {never: true}}}
edges:
  - {source: numbers, target: call}
  - {source: call, target: after}
"""

STEPS = """\
id: steps
name: Steps
nodes:
  - {id: one, type: page.hold, parameters: {seconds: 0.15}}
  - {id: two, type: page.hold, parameters: {seconds: 0.15}}
  - {id: three, type: page.hold, parameters: {seconds: 0.15}}
edges:
  - {source: one, target: two}
  - {source: two, target: three}
"""


@pytest.fixture
def site(serve_app: Any) -> Iterator[Any]:
    """A server of its own (its runs only), with the test flows stored and a gate table."""
    gates: dict[str, asyncio.Event] = {}
    conductor = create_conductor(
        f"memory://atomiton-page-graph/{uuid.uuid4().hex}",
        plugins=[PagePlugin()],
        autoload=False,
        config={"gates": gates},
    )
    assert conductor.storage is not None
    for text in (PIPELINE, BROKEN, STEPS):
        conductor.storage.save(loads_flow(text))
    with serve_app(create_app(conductor, token=TOKEN), conductor, TOKEN) as served:
        served.gates = gates
        yield served


@contextlib.contextmanager
def opened(browser: Any, site: Any, expect: Any) -> Iterator[Any]:
    """The page, connected (token from the URL) and listening to every execution's events;
    no script error in it by the end."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{site.url}/?token={site.token}")
    expect(page.locator("#stream")).to_have_attribute("data-state", "ok")
    expect(page.locator("#message")).to_contain_text("stored flow")
    yield page
    page.close()
    assert errors == []


@pytest.fixture
def page(browser: Any, site: Any, expect: Any) -> Iterator[Any]:
    with opened(browser, site, expect) as page:
        yield page


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def box(page: Any, path: str) -> Any:
    return page.locator(f"#graph svg .gnode[data-path='{path}']")


def fill_of(page: Any, path: str) -> str:
    return str(box(page, path).locator("> .box").evaluate("el => getComputedStyle(el).fill"))


def curl_start(site: Any, body: dict[str, Any]) -> str:
    """Start an execution with a real HTTP POST from another process; its id."""
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            f"Authorization: Bearer {site.token}",
            "-H",
            "Content-Type: application/json",
            "--data",
            json.dumps(body),
            f"{site.url}/api/executions",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    started = json.loads(done.stdout)
    assert started["status"] == "running", started
    return str(started["executionId"])


def open_gate(site: Any, name: str) -> None:
    loop = site.app.state.hub.loop
    loop.call_soon_threadsafe(site.gates[name].set)


def test_a_run_started_with_curl_appears_and_its_graph_changes_live(
    page: Any, site: Any, expect: Any
) -> None:
    expect(page.locator("#flow-select option[value='pipeline']")).to_have_count(1)
    page.select_option("#flow-select", "pipeline")
    expect(box(page, "hold")).to_have_attribute("data-status", "pending")
    # the graph: nodes with their type and name, the group as a box holding its child
    expect(box(page, "hold").locator(".title")).to_have_text("Hold on")
    expect(box(page, "hold").locator(".type")).to_have_text("page.hold")
    expect(box(page, "finish/shout")).to_have_count(1)
    assert page.locator("#graph svg .gedge").count() == 4
    pending_fill = fill_of(page, "hold")

    site.gates["live"] = asyncio.Event()
    run_id = curl_start(site, {"flowId": "pipeline"})
    listed = page.locator(f"#runs li[data-id='{run_id}']")
    expect(listed).to_have_attribute("data-status", "running")
    expect(page.locator("#exec-id")).to_have_text(run_id)  # followed: on show as it runs
    expect(box(page, "greet")).to_have_attribute("data-status", "completed")
    expect(box(page, "hold")).to_have_attribute("data-status", "running")
    expect(box(page, "hold").locator(".state")).to_have_text("running 50%")
    expect(box(page, "finish/shout")).to_have_attribute("data-status", "pending")
    running_fill = fill_of(page, "hold")
    assert running_fill != pending_fill
    expect(page.locator("#scrubber")).to_be_hidden()  # nothing to replay yet
    shot(page, "graph-live-running.png")

    open_gate(site, "live")
    expect(box(page, "finish/shout")).to_have_attribute("data-status", "completed")
    expect(box(page, "hold")).to_have_attribute("data-status", "completed")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")
    expect(listed).to_have_attribute("data-status", "completed")
    assert fill_of(page, "hold") not in (pending_fill, running_fill)
    assert fill_of(page, "hold") == fill_of(page, "greet")
    expect(page.locator("#scrubber")).to_be_visible()
    shot(page, "graph-live-completed.png")

    # a container opens and collapses: collapsed, it is one box with its child count
    box(page, "finish").locator(".toggle").click()
    expect(box(page, "finish/shout")).to_have_count(0)
    expect(box(page, "finish").locator(".inside")).to_have_text("1 node inside")
    expect(box(page, "finish")).to_have_attribute("data-status", "completed")
    box(page, "finish").locator(".toggle").click()
    expect(box(page, "finish/shout")).to_have_attribute("data-status", "completed")


def test_a_failed_node_in_the_inspector(page: Any, site: Any, expect: Any) -> None:
    ran = httpx.post(
        f"{site.url}/api/executions?wait=true", json={"flowId": "broken"}, headers=site.auth
    )
    assert ran.status_code == 200 and ran.json()["status"] == "failed", ran.text
    run_id = ran.json()["executionId"]
    page.uncheck("#follow")
    page.select_option("#filter-status", "failed")
    listed = page.locator(f"#runs li[data-id='{run_id}']")
    expect(listed).to_have_attribute("data-status", "failed")
    listed.click()
    expect(page.locator("#exec-id")).to_have_text(run_id)
    expect(box(page, "call")).to_have_attribute("data-status", "failed")
    expect(box(page, "after")).to_have_attribute("data-status", "skipped")
    expect(box(page, "numbers")).to_have_attribute("data-status", "completed")

    box(page, "call").click()
    inspector = page.locator("#inspector")
    error = inspector.locator("[data-part='error']")
    expect(error).to_contain_text("EXECUTION_FAILED: the service said no")
    expect(error).to_contain_text("hint: check the API key in the vault")
    expect(inspector.locator("[data-part='timings']")).to_contain_text("attempts")
    expect(inspector.locator("[data-part='log'] li[data-type='node.failed']")).to_have_count(1)
    # its input came from `numbers` along the edge: 400 numbers, shown cut at a line
    inputs = inspector.locator("[data-part='inputs']")
    expect(inputs.locator(".port-head")).to_have_text("input ← numbers.output")
    expect(inputs.locator(".show-all")).to_have_text("show all")
    shot(page, "inspector-failed.png")

    box(page, "numbers").click()
    outputs = inspector.locator("[data-part='outputs']")
    expect(outputs.locator(".port-head")).to_have_text("output: list of 400")
    shown = outputs.locator("pre").inner_text()
    assert "…" not in shown and "1234567890123456," in shown
    assert "1234567890123855" not in shown  # the last number is past the cut
    outputs.locator(".show-all").click()
    expect(outputs.locator("pre")).to_contain_text("1234567890123855")
    # whole numbers, never wrapped inside: the value keeps its lines as they are
    assert outputs.locator("pre").evaluate("el => getComputedStyle(el).whiteSpace") == "pre"
    shot(page, "inspector-outputs.png")

    # the node table opens the inspector too
    page.locator("#nodes tr[data-path='after']").click()
    expect(inspector.locator("#inspector-body")).to_have_attribute("data-path", "after")
    expect(inspector.locator("[data-part='timings']")).to_contain_text("run failed")


def test_a_past_run_from_the_list_and_the_scrubber(
    browser: Any, site: Any, expect: Any, serve_app: Any
) -> None:
    ran = httpx.post(
        f"{site.url}/api/executions?wait=true", json={"flowId": "steps"}, headers=site.auth
    )
    assert ran.status_code == 200 and ran.json()["status"] == "completed", ran.text
    run_id = ran.json()["executionId"]
    # another server on the same storage (as after a restart): it never saw the run, its
    # list and the run's graph, record and log come from storage
    assert site.conductor.storage is not None
    conductor = create_conductor(site.conductor.storage.url, plugins=[PagePlugin()], autoload=False)
    with (
        serve_app(create_app(conductor, token=TOKEN), conductor, TOKEN) as again,
        opened(browser, again, expect) as fresh,
    ):
        assert again.app.state.hub.get(run_id) is None
        _scrub(fresh, again, expect, run_id)


def _scrub(fresh: Any, site: Any, expect: Any, run_id: str) -> None:
    listed = fresh.locator(f"#runs li[data-id='{run_id}']")
    expect(listed).to_have_attribute("data-status", "completed")
    expect(listed.locator(".flow")).to_have_text("steps")
    expect(listed.locator(".took")).not_to_be_empty()
    listed.click()
    expect(fresh.locator("#exec-kind")).to_have_text("recorded")
    for node_id in ("one", "two", "three"):
        expect(box(fresh, node_id)).to_have_attribute("data-status", "completed")
    expect(fresh.locator("#timeline svg rect.gantt-bar")).to_have_count(3)
    expect(fresh.locator("#scrubber")).to_be_visible()
    shot(fresh, "past-run.png")

    record = httpx.get(f"{site.url}/api/executions/{run_id}", headers=site.auth).json()
    t0 = _seconds(record["startedAt"])
    span = record["durationMs"] / 1000

    def at(node_id: str) -> str:
        """The slider's value at the middle of a node's run."""
        n = record["nodes"][node_id]
        middle = _seconds(n["startedAt"]) + n["durationMs"] / 2000
        return str(round((middle - t0) / span * 1000))

    fresh.fill("#scrub", at("two"))
    expect(box(fresh, "one")).to_have_attribute("data-status", "completed")
    expect(box(fresh, "two")).to_have_attribute("data-status", "running")
    expect(box(fresh, "three")).to_have_attribute("data-status", "pending")
    expect(fresh.locator("#nodes tr[data-path='two']")).to_have_attribute("data-status", "running")
    expect(fresh.locator("#scrub-time")).to_contain_text("+")
    shot(fresh, "scrub-middle.png")

    fresh.fill("#scrub", at("one"))
    expect(box(fresh, "one")).to_have_attribute("data-status", "running")
    expect(box(fresh, "two")).to_have_attribute("data-status", "pending")
    fresh.fill("#scrub", "0")
    expect(box(fresh, "one")).to_have_attribute("data-status", "pending")
    shot(fresh, "scrub-start.png")
    fresh.fill("#scrub", "1000")
    for node_id in ("one", "two", "three"):
        expect(box(fresh, node_id)).to_have_attribute("data-status", "completed")
    expect(fresh.locator("#scrub-time")).to_contain_text("end")


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
