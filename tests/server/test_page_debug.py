"""Step-through debugging on the page, in a real headless Chromium against a real uvicorn
server: a breakpoint set on the graph pauses the run in the page with the node's inputs in the
inspector; Step runs exactly one node; Continue finishes; Abort cancels; an injected fault and
slow motion set on the page; a run started with breakpoints over plain HTTP paused and stepped
from the page. Screenshots of each state go to test-artifacts/.

Nothing here sleeps: a debugged run waits, paused, until the page tells it to go on, and the
page's state is waited for with Playwright's ``expect``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atomiton_core import create_conductor, loads_flow
from atomiton_core.server.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "page-debug-token-0123456789"

pytestmark = pytest.mark.slow

DEBUGGED = """\
id: debugged
name: Debugged
description: A chain of four steps, the last a group.
nodes:
  - {id: numbers, type: const, name: Numbers, parameters: {value: [1, 2]}}
  - {id: times, type: transform, name: Times ten, parameters: {operation: map, expression: "item * 10"}}
  - {id: plus, type: transform, name: Plus one, parameters: {operation: map, expression: "item + 1"}}
  - id: finish
    type: group
    name: Finish
    nodes:
      - {id: total, type: transform, parameters: {operation: map, expression: "item * 2"}}
    edges:
      - {source: finish, sourceHandle: input, target: total, targetHandle: input}
      - {source: total, sourceHandle: output, target: finish, targetHandle: done}
edges:
  - {source: numbers, target: times}
  - {source: times, target: plus}
  - {source: plus, target: finish, targetHandle: input}
"""
NODES = ("numbers", "times", "plus", "finish", "finish/total")

LOOPED = """\
id: looped
name: Looped
nodes:
  - {id: src, type: const, parameters: {value: [1, 2, 3]}}
  - id: each
    type: loop
    nodes:
      - {id: double, type: edit-fields, parameters: {values: {twice: "{{ item * 2 }}"}}}
    edges:
      - {source: double, sourceHandle: output, target: each, targetHandle: results}
edges:
  - {source: src, target: each, targetHandle: items}
"""


@pytest.fixture
def site(serve_app: Any) -> Iterator[Any]:
    """A server of its own (its runs only), with the test flow stored."""
    conductor = create_conductor(f"memory://atomiton-page-debug/{uuid.uuid4().hex}", autoload=False)
    assert conductor.storage is not None
    conductor.storage.save(loads_flow(DEBUGGED))
    conductor.storage.save(loads_flow(LOOPED))
    with serve_app(create_app(conductor, token=TOKEN), conductor, TOKEN) as served:
        yield served


@pytest.fixture
def page(browser: Any, site: Any, expect: Any) -> Iterator[Any]:
    """The page, connected, listening to every execution's events, the flow picked; no
    script error in it by the end."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{site.url}/?token={site.token}")
    expect(page.locator("#stream")).to_have_attribute("data-state", "ok")
    expect(page.locator("#flow-select option[value='debugged']")).to_have_count(1)
    page.select_option("#flow-select", "debugged")
    expect(box(page, "finish/total")).to_have_attribute("data-status", "pending")
    expect(page.locator("#execute")).to_be_enabled()
    yield page
    page.close()
    assert errors == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def box(page: Any, path: str) -> Any:
    return page.locator(f"#graph svg .gnode[data-path='{path}']")


def row(page: Any, path: str) -> Any:
    return page.locator(f"#nodes tr[data-path='{path}']")


def expect_states(page: Any, expect: Any, **states: str) -> None:
    """Each node (a keyword per node; ``finish__total`` for ``finish/total``) in that state,
    in the graph and in the table."""
    for name, status in states.items():
        path = name.replace("__", "/")
        expect(box(page, path)).to_have_attribute("data-status", status)
        expect(row(page, path)).to_have_attribute("data-status", status)


def statuses(page: Any) -> dict[str, str]:
    return {p: str(row(page, p).get_attribute("data-status")) for p in NODES}


def debug_state(site: Any, run_id: str) -> httpx.Response:
    return httpx.get(f"{site.url}/api/executions/{run_id}/debug", headers=site.auth)


def posted_to_debug(response: Any) -> bool:
    """The page's answer from ``POST /api/executions/{id}/debug``."""
    return bool(response.request.method == "POST" and response.url.endswith("/debug"))


def expect_paused(page: Any, expect: Any, path: str, reason: str) -> None:
    """The run paused before ``path``: the debug bar says so, the node is paused in the graph
    and the table, and the inspector is open on it."""
    bar = page.locator("#debug-bar")
    expect(bar).to_have_attribute("data-state", "paused")
    expect(bar.locator("#debug-node")).to_have_text(path)
    expect(bar.locator("#debug-reason")).to_have_text(reason)
    expect(box(page, path)).to_have_attribute("data-status", "paused")
    expect(row(page, path)).to_have_attribute("data-status", "paused")
    expect(page.locator("#inspector-body")).to_have_attribute("data-path", path)
    expect(page.locator("#inspector [data-part='timings']")).to_contain_text(
        f"before it runs ({reason})"
    )


def test_a_breakpoint_set_on_the_page_pauses_steps_and_continues(
    page: Any, site: Any, expect: Any
) -> None:
    # the dot on the box marks it; the inspector's checkbox and the table show it too
    box(page, "times").locator(".bp").click()
    expect(box(page, "times")).to_have_attribute("data-breakpoint", "on")
    expect(row(page, "times")).to_have_attribute("data-breakpoint", "on")
    expect(box(page, "plus")).to_have_attribute("data-breakpoint", "off")
    expect(page.locator("#debug-plan")).to_have_text("breakpoints: times")
    box(page, "times").click()
    expect(page.locator("#insp-breakpoint")).to_be_checked()

    page.click("#execute")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "running")
    run_id = page.locator("#exec-id").inner_text()
    expect_paused(page, expect, "times", "breakpoint")
    expect_states(page, expect, numbers="completed", plus="pending", finish__total="pending")
    # the resolved inputs, in the inspector and in the debug bar
    inputs = page.locator("#inspector [data-part='inputs']")
    expect(inputs.locator(".resolved")).to_have_text("resolved: what it will be called with")
    expect(inputs.locator(".port-head")).to_have_text("input: list of 2")
    assert [int(v) for v in inputs.locator("pre").inner_text().strip("[] \n").split(",")] == [1, 2]
    expect(page.locator("#debug-info")).to_contain_text("inputs: input: list of 2")
    expect(page.locator(f"#runs li[data-id='{run_id}'] .badge")).to_have_text("paused")
    # the server agrees: paused at times, with the breakpoint the page sent
    state = debug_state(site, run_id).json()
    assert [p["nodeId"] for p in state["paused"]] == ["times"]
    assert state["breakpoints"] == ["times"]
    assert page.locator("#graph svg .gnode[data-status='paused']").count() == 1
    shot(page, "debug-paused.png")

    # Step: times, and only it, runs; the run pauses before the next node
    page.click("#debug-step")
    expect_paused(page, expect, "plus", "step")
    expect_states(page, expect, numbers="completed", times="completed", finish="pending")
    assert statuses(page) == {
        "numbers": "completed",
        "times": "completed",
        "plus": "paused",
        "finish": "pending",
        "finish/total": "pending",
    }
    inputs = page.locator("#inspector [data-part='inputs']")
    expect(inputs.locator("pre")).to_contain_text("20")  # times' output, fed to plus
    shot(page, "debug-stepped.png")

    # Continue: no breakpoint is left ahead, so the run ends
    page.click("#debug-continue")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")
    expect_states(page, expect, plus="completed", finish="completed", finish__total="completed")
    expect(page.locator("#debug-bar")).to_have_attribute("data-state", "ended")
    expect(page.locator("#debug-step")).to_be_disabled()
    expect(page.locator("#outputs")).to_contain_text("42")  # ((2 * 10) + 1) * 2
    assert debug_state(site, run_id).status_code == 409  # over
    shot(page, "debug-continued.png")


def test_step_from_the_start_a_breakpoint_set_while_paused_and_abort(
    page: Any, site: Any, expect: Any
) -> None:
    page.check("#step-start")
    page.click("#execute")
    expect_paused(page, expect, "numbers", "step")
    run_id = page.locator("#exec-id").inner_text()
    assert debug_state(site, run_id).json()["breakpoints"] == []

    # a breakpoint set on the page during the run is sent to it: on the group's child
    with page.expect_response(posted_to_debug) as answer:
        row(page, "finish/total").locator(".bp").click()
    assert answer.value.json()["breakpoints"] == ["finish/total"]
    expect(box(page, "finish/total")).to_have_attribute("data-breakpoint", "on")
    expect(page.locator("#debug-info")).to_contain_text("breakpoints: finish/total")
    assert debug_state(site, run_id).json()["breakpoints"] == ["finish/total"]
    page.click("#debug-continue")
    expect_paused(page, expect, "finish/total", "breakpoint")
    expect_states(page, expect, numbers="completed", times="completed", plus="completed")
    expect(page.locator("#inspector [data-part='inputs'] pre")).to_contain_text("21")
    shot(page, "debug-breakpoint-in-group.png")

    page.click("#debug-abort")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#error")).to_contain_text("aborted in the debugger")
    expect(page.locator("#debug-bar")).to_have_attribute("data-state", "ended")
    expect(page.locator("#debug-what")).to_have_text("the run ended: cancelled")
    expect(page.locator("#graph svg .gnode[data-status='paused']")).to_have_count(0)
    expect(page.locator(f"#runs li[data-id='{run_id}']")).to_have_attribute(
        "data-status", "cancelled"
    )
    record = httpx.get(f"{site.url}/api/executions/{run_id}", headers=site.auth).json()
    assert record["status"] == "cancelled" and "aborted in the debugger" in str(record["error"])
    shot(page, "debug-aborted.png")


def test_faults_and_slow_motion_set_on_the_page(page: Any, site: Any, expect: Any) -> None:
    box(page, "times").click()
    page.select_option("#insp-inject", "error")
    expect(box(page, "times")).to_have_attribute("data-injected", "error")
    box(page, "numbers").click()
    page.select_option("#insp-inject", "delay")
    expect(page.locator("#insp-delay")).to_be_visible()
    page.fill("#insp-delay", "40")
    page.locator("#insp-delay").press("Enter")
    expect(row(page, "numbers")).to_have_attribute("data-injected", "delay:40")
    expect(page.locator("#debug-plan")).to_have_text("inject: times=error, numbers=delay:40")
    page.fill("#slow-mo", "20")

    page.click("#execute")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "failed")
    run_id = page.locator("#exec-id").inner_text()
    expect_states(page, expect, numbers="completed", times="failed", plus="skipped")
    expect(row(page, "times")).to_have_attribute("data-injected", "error")
    expect(row(page, "times").locator(".inj")).to_have_text("⚡ error")
    expect(row(page, "numbers").locator(".inj")).to_have_text("⚡ delay:40")
    expect(box(page, "times").locator(".inj")).to_have_text("⚡error")
    expect(page.locator("#debug-bar")).to_have_attribute("data-state", "ended")
    box(page, "times").click()
    inspector = page.locator("#inspector")
    expect(inspector.locator("[data-part='error']")).to_contain_text(
        "INJECTED_FAULT: transform failed: an error was injected into node 'times'"
    )
    expect(inspector.locator("[data-part='timings']")).to_contain_text("injectederror")
    expect(page.locator("#error")).to_contain_text("INJECTED_FAULT")
    shot(page, "debug-injected.png")

    result = httpx.get(f"{site.url}/api/executions/{run_id}", headers=site.auth).json()
    assert result["nodes"]["times"]["injected"] == "error"
    assert result["nodes"]["numbers"]["injected"] == "delay:40"
    assert result["nodes"]["numbers"]["durationMs"] >= 40
    assert site.conductor.storage.record(run_id).data["slowMoMs"] == 20


def test_a_run_started_over_http_with_breakpoints_is_stepped_from_the_page(
    page: Any, site: Any, expect: Any
) -> None:
    with httpx.Client(base_url=site.url, headers=site.auth, timeout=30) as http:
        started = http.post("/api/executions", json={"flowId": "debugged", "breakpoints": ["plus"]})
        assert started.status_code == 202, started.text
        run_id = started.json()["executionId"]
        expect(page.locator("#exec-id")).to_have_text(run_id)  # followed as it started
        expect_paused(page, expect, "plus", "breakpoint")
        expect_states(page, expect, numbers="completed", times="completed")
        # the run's breakpoints, as the server holds them, drawn on the graph
        expect(box(page, "plus")).to_have_attribute("data-breakpoint", "on")
        expect(box(page, "times")).to_have_attribute("data-breakpoint", "off")
        expect(page.locator("#inspector [data-part='inputs'] pre")).to_contain_text("20")
        shot(page, "debug-http-paused.png")

        page.click("#debug-step")
        expect_paused(page, expect, "finish", "step")
        assert statuses(page) == {
            "numbers": "completed",
            "times": "completed",
            "plus": "completed",
            "finish": "paused",
            "finish/total": "pending",
        }
        state = http.get(f"/api/executions/{run_id}/debug").json()
        assert [(p["path"], p["reason"]) for p in state["paused"]] == [("finish", "step")]
        page.click("#debug-continue")
        done = http.get(f"/api/executions/{run_id}?wait=30").json()
        assert done["status"] == "completed", done
        expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")
        expect_states(page, expect, finish="completed", finish__total="completed")


def test_a_run_without_debugging_shows_no_debug_bar(page: Any, site: Any, expect: Any) -> None:
    page.click("#execute")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")
    expect(page.locator("#debug-bar")).to_be_hidden()
    run_id = page.locator("#exec-id").inner_text()
    assert debug_state(site, run_id).status_code == 409


def test_a_breakpoint_in_a_loop_pauses_each_item_until_it_is_taken_off(
    page: Any, site: Any, expect: Any
) -> None:
    page.select_option("#flow-select", "looped")
    expect(box(page, "each/double")).to_have_attribute("data-status", "pending")
    box(page, "each/double").locator(".bp").click()
    expect(page.locator("#debug-plan")).to_have_text("breakpoints: each/double")
    page.click("#execute")
    bar = page.locator("#debug-bar")
    expect(bar).to_have_attribute("data-state", "paused")
    expect(bar.locator("#debug-node")).to_have_text("each/iteration 0/double")
    expect(bar.locator("#debug-reason")).to_have_text("breakpoint")
    expect(box(page, "each/double")).to_have_attribute("data-status", "paused")
    expect(page.locator("#inspector-body")).to_have_attribute(
        "data-path", "each/iteration 0/double"
    )
    run_id = page.locator("#exec-id").inner_text()
    # one box for the loop's child, one breakpoint for each of its runs
    assert debug_state(site, run_id).json()["breakpoints"] == ["each/*/double"]
    expect(box(page, "each/double")).to_have_attribute("data-breakpoint", "on")

    page.click("#debug-continue")
    expect(bar.locator("#debug-node")).to_have_text("each/iteration 1/double")
    expect(row(page, "each/iteration 0/double")).to_have_attribute("data-status", "completed")
    # taken off in the inspector during the run: the rest runs through
    with page.expect_response(posted_to_debug) as answer:
        page.uncheck("#insp-breakpoint")
    assert answer.value.json()["breakpoints"] == []
    expect(box(page, "each/double")).to_have_attribute("data-breakpoint", "off")
    expect(page.locator("#debug-info")).to_contain_text("no breakpoints")
    assert debug_state(site, run_id).json()["breakpoints"] == []
    page.click("#debug-continue")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")
    expect(row(page, "each/iteration 2/double")).to_have_attribute("data-status", "completed")
    expect(box(page, "each/double")).to_have_attribute("data-status", "completed")
    shot(page, "debug-loop.png")
