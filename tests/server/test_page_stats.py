"""The page's per-flow statistics and runs written by another process, in a real headless
Chromium against a real uvicorn server on a local storage folder: the statistics view shows a
node's failure rate and p50 / p95 as ``GET /api/flows/{id}/stats`` gives them, on the graph too,
and is read again when a run ends; a run started by a real ``atomiton run`` subprocess on the
server's storage appears on the page as running, is followed from its log, and ends there.
Screenshots go to test-artifacts/.

Nothing here sleeps: runs are started over HTTP with ``?wait=``, the CLI's node waits for a
file the test creates, and the page's state is waited for with Playwright's ``expect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
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
TOKEN = "page-stats-token-0123456789"

pytestmark = pytest.mark.slow


@node("page-stats.work", outputs={"output": object}, category="test")
async def work_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    """Take the run's ``ms`` milliseconds, then fail if the run's ``fail`` is true."""
    await asyncio.sleep(float(ctx.variables.get("ms") or 0) / 1000)
    if ctx.variables.get("fail"):
        raise ExecutionError("asked to fail", hint="run it with fail=false")
    return {"output": input}


class StatsPlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [work_node]


MEASURED = """\
id: measured
name: Measured
variables: {fail: {type: boolean, defaultValue: false}, ms: {type: number, defaultValue: 10}}
nodes:
  - {id: start, type: edit-fields, name: Start, parameters: {values: {n: 1}}}
  - {id: work, type: page-stats.work, name: Work}
  - {id: after, type: edit-fields, name: After, parameters: {values: {done: true}}}
edges:
  - {source: start, target: work}
  - {source: work, target: after}
"""

# Run by `atomiton run` in another process: `wait` holds until the file `gate` exists.
GATED = """\
id: gated
name: Gated
variables: {gate: {type: string, defaultValue: ""}}
nodes:
  - {id: prepare, type: edit-fields, name: Prepare, parameters: {values: {n: 1}}}
  - id: wait
    type: code
    name: Wait for the gate
    parameters:
      timeout: 120000
      cpuLimit: 120
      code: |
        import os, time
        while not os.path.exists(vars["gate"]):
            time.sleep(0.02)
        return 1
  - {id: after, type: edit-fields, name: After, parameters: {values: {done: true}}}
edges:
  - {source: prepare, target: wait}
  - {source: wait, sourceHandle: result, target: after}
"""

#: (fail, ms) of the runs of `measured`: `work` fails in 2 of 5.
RUNS = [(False, 10), (True, 30), (False, 20), (True, 40), (False, 50)]


@pytest.fixture
def site(tmp_path: Path, serve_app: Any) -> Iterator[Any]:
    """A server of its own on a local storage folder (``site.folder``), the flows stored."""
    folder = tmp_path / f"store-{uuid.uuid4().hex[:8]}"
    conductor = create_conductor(str(folder), plugins=[StatsPlugin()], autoload=False)
    assert conductor.storage is not None
    for text in (MEASURED, GATED):
        conductor.storage.save(loads_flow(text))
    with serve_app(create_app(conductor, token=TOKEN), conductor, TOKEN) as served:
        served.folder = folder
        yield served


@pytest.fixture
def page(browser: Any, site: Any, expect: Any) -> Iterator[Any]:
    """The page, connected and listening; no script error in it by the end."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{site.url}/?token={site.token}")
    expect(page.locator("#stream")).to_have_attribute("data-state", "ok")
    expect(page.locator("#message")).to_contain_text("stored flow")
    yield page
    page.close()
    assert errors == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def box(page: Any, path: str) -> Any:
    return page.locator(f"#graph svg .gnode[data-path='{path}']")


def run(site: Any, flow_id: str, **inputs: Any) -> dict[str, Any]:
    """Run a stored flow over HTTP, waiting for its end; its result."""
    answer = httpx.post(
        f"{site.url}/api/executions?wait=60",
        json={"flowId": flow_id, "inputs": inputs},
        headers=site.auth,
        timeout=90,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def api_stats(site: Any, flow_id: str, last: int | None = None) -> dict[str, Any]:
    query = f"?last={last}" if last else ""
    answer = httpx.get(f"{site.url}/api/flows/{flow_id}/stats{query}", headers=site.auth)
    assert answer.status_code == 200, answer.text
    stats: dict[str, Any] = answer.json()
    return stats


def node_stats(stats: dict[str, Any], place: str) -> dict[str, Any]:
    (found,) = [n for n in stats["nodes"] if n["node"] == place]
    return found


def shown_ms(text: str) -> tuple[float, float]:
    """The milliseconds a duration on the page says ("23.4 ms", "1.25 s"), and how far from
    the exact figure its rounding may be (half its last digit)."""
    number, unit = text.split()
    scale = {"ms": 1.0, "s": 1000.0}[unit]
    decimals = len(number.partition(".")[2])
    return float(number) * scale, 0.5 * 10**-decimals * scale + 1e-9


def assert_shows_ms(text: str, exact: float) -> None:
    shown, slack = shown_ms(text)
    assert abs(shown - exact) <= slack, (text, exact)


def percent(rate: float) -> str:
    return f"{round(rate * 100)}%"


def stats_row(page: Any, place: str) -> Any:
    return page.locator(f"#stats-nodes tbody tr[data-node='{place}']")


def check_table(page: Any, expect: Any, stats: dict[str, Any]) -> None:
    """The table and the run figures on the page say what the API says."""
    summary = page.locator("#stats-summary")
    expect(summary.locator("[data-fact='runs']")).to_contain_text(f"{stats['runs']} (of the last")
    assert_shows_ms(summary.locator("[data-fact='p50']").inner_text(), stats["p50Ms"])
    assert_shows_ms(summary.locator("[data-fact='p95']").inner_text(), stats["p95Ms"])
    for status, count in stats["statuses"].items():
        expect(summary.locator(f".badge[data-status='{status}']")).to_have_text(f"{count} {status}")
    for entry in stats["nodes"]:
        row = stats_row(page, entry["node"])
        expect(row.locator(".failure")).to_have_text(percent(entry["failureRate"]))
        expect(row.locator(".ran-in")).to_have_text(str(entry["runs"]))
        assert_shows_ms(row.locator(".p50").inner_text(), entry["p50Ms"])
        assert_shows_ms(row.locator(".p95").inner_text(), entry["p95Ms"])


def test_the_stats_view_and_the_graph_overlay(page: Any, site: Any, expect: Any) -> None:
    for fail, ms in RUNS:
        assert run(site, "measured", fail=fail, ms=ms)["status"] == (
            "failed" if fail else "completed"
        )
    stats = api_stats(site, "measured")
    work = node_stats(stats, "work")
    assert stats["runs"] == 5 and work["failureRate"] == 0.4 and work["p50Ms"] < work["p95Ms"]

    page.uncheck("#follow")
    page.select_option("#flow-select", "measured")
    expect(page.locator("#stats-title")).to_have_text("measured")
    expect(stats_row(page, "work").locator(".failure")).to_have_text("40%")
    check_table(page, expect, stats)
    expect(stats_row(page, "after").locator(".skipped")).to_have_text("2")
    # ordered by the flow at first; by p95, slowest first, when its header is clicked
    rows = page.locator("#stats-nodes tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.node)") == ["start", "work", "after"]
    page.locator("#stats-nodes th[data-sort='p95'] button").click()
    expect(page.locator("#stats-nodes th[data-sort='p95']")).to_have_attribute(
        "aria-sort", "descending"
    )
    slowest = max(stats["nodes"], key=lambda n: n["p95Ms"])["node"]
    expect(rows.first).to_have_attribute("data-node", slowest)
    page.locator("#stats-card").scroll_into_view_if_needed()
    shot(page, "stats-view.png")

    # on the graph: each box's p95 and failure rate, coloured by how slow it is
    expect(box(page, "work").locator(".stat")).to_have_count(0)
    page.check("#stats-overlay")
    label = box(page, "work").locator(".stat")
    expect(label).to_have_count(1)
    p95_text = stats_row(page, "work").locator(".p95").inner_text()
    expect(label.locator("text")).to_have_text(f"p95 {p95_text} · ✗ 40%")
    assert float(label.get_attribute("data-p95") or "nan") == pytest.approx(work["p95Ms"])
    assert label.get_attribute("data-heat") == "1.000"  # the slowest node here
    start_label = box(page, "start").locator(".stat")
    expect(start_label).to_have_class("stat")
    assert "✗" not in start_label.locator("text").text_content() or ""
    heats = {
        p: float(box(page, p).locator(".stat").get_attribute("data-heat") or 0)
        for p in ("start", "after")
    }
    assert all(h < 1 for h in heats.values()), heats
    expect(page.locator("#stats-key")).to_contain_text("p95")
    shot(page, "stats-overlay.png")

    # a run of the flow ends: the figures are read again
    assert run(site, "measured", fail=False, ms=60)["status"] == "completed"
    expect(stats_row(page, "work").locator(".failure")).to_have_text("33%")
    check_table(page, expect, api_stats(site, "measured"))
    expect(label.locator("text")).to_contain_text("✗ 33%")
    # over the last 5 of the 6 runs
    page.select_option("#stats-last", "5")
    last5 = api_stats(site, "measured", last=5)
    assert node_stats(last5, "work")["failureRate"] == 0.4
    expect(stats_row(page, "work").locator(".failure")).to_have_text("40%")
    check_table(page, expect, last5)
    # a row opens the node in the inspector
    stats_row(page, "work").click()
    expect(page.locator("#inspector-body")).to_have_attribute("data-path", "work")


@contextlib.contextmanager
def cli_run(site: Any, gate: Path) -> Iterator[subprocess.Popen[str]]:
    """``atomiton run gated`` on the server's storage folder, in its own process; let go and
    ended on the way out if the test did not."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atomiton_core.cli",
            "run",
            "gated",
            "--storage",
            str(site.folder),
            "--input",
            f"gate={gate}",
            "--process-workers",
            "1",
            "--quiet",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ATOMITON_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    try:
        yield proc
    finally:
        gate.touch()
        if proc.poll() is None:
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def test_a_run_started_by_the_cli_appears_live_and_ends(
    page: Any, site: Any, expect: Any, tmp_path: Path
) -> None:
    page.select_option("#flow-select", "gated")
    expect(box(page, "wait")).to_have_attribute("data-status", "pending")
    expect(page.locator("#runs-note")).to_have_text("no runs match")  # the list was read
    gate = tmp_path / "gate"
    with cli_run(site, gate) as proc:
        listed = page.locator("#runs li[data-flow='gated']")
        # found in storage by the page's poll, as running, while `wait` holds
        expect(listed).to_have_count(1, timeout=60_000)
        expect(listed).to_have_attribute("data-status", "running")
        run_id = listed.get_attribute("data-id")
        assert run_id
        stored = httpx.get(f"{site.url}/api/runs?flowId=gated", headers=site.auth).json()
        assert [(r["executionId"], r["status"]) for r in stored["runs"]] == [(run_id, "running")]
        assert site.app.state.hub.get(run_id) is None  # not this server's: another process's
        # followed: on show, its nodes' states from its log
        expect(page.locator("#exec-id")).to_have_text(run_id)
        expect(page.locator("#exec-kind")).to_have_text("live, from its log")
        expect(box(page, "prepare")).to_have_attribute("data-status", "completed")
        expect(box(page, "wait")).to_have_attribute("data-status", "running")
        expect(box(page, "after")).to_have_attribute("data-status", "pending")
        expect(page.locator("#exec-status")).to_have_attribute("data-status", "running")
        assert proc.poll() is None
        shot(page, "cli-run-live.png")

        gate.touch()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        result = json.loads(out)
        assert result["executionId"] == run_id and result["status"] == "completed"

    expect(listed).to_have_attribute("data-status", "completed")
    expect(listed.locator(".took")).not_to_be_empty()
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")
    for node_id in ("prepare", "wait", "after"):
        expect(box(page, node_id)).to_have_attribute("data-status", "completed")
    # opened from the list: as recorded, its graph, nodes and timeline
    listed.click()
    expect(page.locator("#exec-kind")).to_have_text("recorded")
    expect(page.locator("#exec-id")).to_have_text(run_id)
    for node_id in ("prepare", "wait", "after"):
        expect(box(page, node_id)).to_have_attribute("data-status", "completed")
        expect(page.locator(f"#nodes tr[data-path='{node_id}']")).to_have_attribute(
            "data-status", "completed"
        )
    expect(page.locator("#timeline svg rect.gantt-bar")).to_have_count(3)
    # the run ended: the flow's statistics count it
    expect(page.locator("#stats-summary [data-fact='runs']")).to_contain_text("1 (of the last")
    expect(stats_row(page, "wait").locator(".failure")).to_have_text("0%")
