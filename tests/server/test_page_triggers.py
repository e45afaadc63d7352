"""The page's Triggers panel, in a real headless Chromium against a real uvicorn server whose
triggers run in real time: each stored flow's triggers with what fires them and their next
fire; the runs an interval starts, marked in the run list as its; Pause stops them and Resume
starts them again (the API agreeing); Fire starts one run at once; a webhook called over HTTP
shows on the panel live; a flow whose triggers cannot be read, a webhook whose route another
flow holds and a run a trigger cannot start are shown with what is wrong; saving and deleting
flows changes the panel live. Screenshots go to test-artifacts/.

Nothing here sleeps: the schedule's slots come round on their own (a paused one's next fire
moves on without a run), runs are asked for over HTTP, and the page's state is waited for with
Playwright's ``expect`` and ``wait_for_function``.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from atomiton_core import create_conductor, loads_flow
from atomiton_core.server.app import create_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "page-triggers-token-0123456789"
#: The interval of the ticking schedule (seconds).
TICK_S = 0.3

pytestmark = pytest.mark.slow

GREET = """\
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}, keepOnlySet: true}
"""

TICKER = (
    """\
id: ticker
name: Ticker
variables: {who: {type: string, defaultValue: world}}
triggers:
  - {id: tick, type: schedule, interval: 300ms, description: every 300 ms}
  - {id: hook, type: webhook, path: ticker/now}
"""
    + GREET
)


def nightly(inbox: Path) -> str:
    """A flow with a cron in a time zone, a watched folder and a disabled webhook: none of them
    fires in the test."""
    return (
        f"""\
id: nightly
name: Nightly
variables: {{who: {{type: string, defaultValue: team}}, path: {{type: string}}}}
triggers:
  - {{id: morning, type: schedule, cron: '30 6 * * 1-5', timezone: Europe/Paris, missed: once}}
  - {{id: inbox, type: watch, folder: '{inbox}', glob: '*.csv'}}
  - {{id: off, type: webhook, path: nightly/off, enabled: false}}
"""
        + GREET
    )


def hooked(flow_id: str, path: str) -> str:
    return (
        f"id: {flow_id}\nname: {flow_id}\n"
        "variables: {who: {type: string, defaultValue: world}}\n"
        f"triggers:\n  - {{id: hook, type: webhook, path: {path}}}\n" + GREET
    )


# A stored flow its server can read but not run: its trigger cannot start a run.
FAILING = """\
id: failing
name: Failing
triggers:
  - {id: bad, type: webhook, path: failing}
nodes:
  - {id: a, type: no-such-type}
"""

# Written to storage as it is (a save would refuse it): its triggers cannot be read.
BROKEN = """\
id: broken
name: Broken
triggers:
  - {id: t, type: schedule, cron: '0 6 * *'}
nodes:
  - {id: a, type: edit-fields}
"""


@pytest.fixture
def start(tmp_path: Path, serve_app: Any) -> Iterator[Any]:
    """``start(*flow_texts, raw={id: text})``: a server of its own on a local storage folder,
    its triggers on, the flows saved (``raw`` ones written as they are, unchecked)."""
    with contextlib.ExitStack() as stack:

        def begin(*flows: str, raw: dict[str, str] | None = None) -> Any:
            folder = tmp_path / f"store-{uuid.uuid4().hex[:8]}"
            conductor = create_conductor(str(folder), autoload=False)
            assert conductor.storage is not None
            for text in flows:
                conductor.storage.save(loads_flow(text))
            for flow_id, text in (raw or {}).items():
                with conductor.storage.fs.open(conductor.storage.flow_location(flow_id), "w") as fh:
                    fh.write(text)
            app = create_app(conductor, token=TOKEN, triggers=True)
            return stack.enter_context(serve_app(app, conductor, TOKEN))

        yield begin


@pytest.fixture
def open_page(browser: Any, expect: Any) -> Iterator[Any]:
    """``open_page(site)``: the page, connected, listening, its triggers read; no script error
    in it by the end."""
    pages: list[tuple[Any, list[str]]] = []

    def opened(site: Any) -> Any:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        pages.append((page, errors))
        page.goto(f"{site.url}/?token={site.token}")
        expect(page.locator("#stream")).to_have_attribute("data-state", "ok")
        expect(page.locator("#triggers")).to_be_visible()
        return page

    yield opened
    for page, errors in pages:
        page.close()
        assert errors == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def row(page: Any, key: str) -> Any:
    """A trigger's rows on the panel (its state, and its notes)."""
    return page.locator(f"#triggers tbody[data-key='{key}']")


def api_trigger(site: Any, key: str) -> dict[str, Any]:
    answer = httpx.get(f"{site.url}/api/triggers/{key}", headers=site.auth)
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def api_runs(site: Any, flow_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{site.url}/api/runs?flowId={flow_id}&limit=1000", headers=site.auth)
    assert answer.status_code == 200, answer.text
    runs: list[dict[str, Any]] = answer.json()["runs"]
    return runs


def shown_count(trigger_row: Any, name: str) -> int:
    return int(trigger_row.locator(f"[data-count='{name}']").get_attribute("data-n") or "-1")


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_the_panel_shows_the_triggers_and_pause_resume_and_fire_them(
    start: Any, open_page: Any, expect: Any, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    site = start(TICKER, nightly(inbox))
    page = open_page(site)
    tick, hook = row(page, "ticker/tick"), row(page, "ticker/hook")
    morning, watch = row(page, "nightly/morning"), row(page, "nightly/inbox")
    off = row(page, "nightly/off")

    # every trigger, with what fires it, its status and when it fires next
    expect(page.locator("#triggers tbody")).to_have_count(5)
    expect(tick.locator(".trig-when")).to_contain_text("every 300ms")
    expect(tick.locator(".trig-when")).to_contain_text("overlap: skip")
    expect(tick.locator(".tdesc")).to_have_text("every 300 ms")
    expect(hook.locator(".trig-when")).to_contain_text("POST /api/hooks/ticker/now")
    expect(hook.locator(".trig-when")).to_contain_text("needs the token")
    expect(hook.locator(".trig-next .at")).to_have_text("on a request")
    expect(morning.locator(".trig-when")).to_contain_text("cron 30 6 * * 1-5 Europe/Paris")
    expect(watch.locator(".trig-when")).to_contain_text(f"*.csv in {inbox}")
    expect(watch.locator(".trig-when")).to_contain_text("watching")
    for trigger_row in (tick, hook, morning, watch):
        expect(trigger_row.locator(".trig-status .badge")).to_have_text("active")
        expect(trigger_row.locator(".flow-link")).not_to_be_empty()
    expect(off.locator(".trig-status .badge")).to_have_text("disabled")
    expect(off.locator(".trig-next .at")).to_have_text("never (disabled)")
    expect(off.locator("[data-action='fire']")).to_be_disabled()
    # the cron's next slot as the API says it, in the browser's time and in Paris time
    cron = api_trigger(site, "nightly/morning")
    expect(morning.locator(".trig-next")).to_have_attribute("data-at", cron["nextFireAt"])
    expect(morning.locator(".trig-next .rel")).to_have_text(re.compile(r"^in \d+ (d|h|min)"))
    expect(morning.locator(".trig-next .tz")).to_have_text(re.compile(r"06:30:00 Europe/Paris$"))
    # the interval's next slot: on the API's grid, counting down
    expect(tick.locator(".trig-next .rel")).to_have_text(re.compile(r"^(in <?\d+ s|due)$"))
    api_next = seconds(api_trigger(site, "ticker/tick")["nextFireAt"])
    page_next = seconds(tick.locator(".trig-next").get_attribute("data-at") or "")
    slots = (page_next - api_next) / TICK_S
    assert abs(slots - round(slots)) < 0.01, (page_next, api_next)

    # the interval's runs, in the run list, marked as its
    marked = page.locator("#runs li[data-trigger='ticker/tick']")
    expect(marked.nth(2)).to_be_visible()
    expect(marked.first.locator(".trig-mark")).to_have_text("⚑ tick · schedule")
    expect(page.locator("#runs li[data-status='completed'] .trig-mark").nth(1)).to_be_visible()
    expect(tick.locator(".last-run a")).to_be_visible()
    assert shown_count(tick, "started") >= 1
    ended = page.locator("#runs li[data-trigger='ticker/tick'][data-status='completed']")
    ids = ended.evaluate_all("lis => lis.map(li => li.dataset.id)")
    by_id = {r["executionId"]: r for r in api_runs(site, "ticker")}
    for eid in ids:
        assert by_id[eid]["trigger"]["id"] == "tick" and by_id[eid]["trigger"]["type"] == "schedule"
    assert all("scheduledFor" in by_id[eid]["trigger"] for eid in ids)
    page.uncheck("#follow")  # what is on show stays so from here
    shot(page, "triggers-panel.png")

    # Pause: no more runs, while its slots come round
    tick.locator("[data-action='pause']").click()
    expect(tick.locator(".trig-status .badge")).to_have_text("paused")
    expect(tick.locator("[data-action='resume']")).to_be_visible()
    expect(tick.locator("[data-action='pause']")).to_be_hidden()
    paused = api_trigger(site, "ticker/tick")
    assert paused["status"] == "paused" and paused["paused"] is True
    started = paused["counts"]["started"]
    expect(tick.locator("[data-count='started']")).to_have_attribute("data-n", str(started))
    page.wait_for_function(
        "limit => Date.parse(document.querySelector(\"#triggers tbody[data-key='ticker/tick']"
        ' .trig-next").dataset.at) > limit',
        arg=(seconds(paused["nextFireAt"]) + 4 * TICK_S) * 1000,
        timeout=15_000,
    )
    expect(tick.locator(".trig-next .rel")).to_contain_text("(paused: no run)")
    later = api_trigger(site, "ticker/tick")
    assert (
        later["counts"]["started"] == started
        and later["counts"]["fired"] == paused["counts"]["fired"]
    )
    runs = len(api_runs(site, "ticker"))
    assert runs == started  # every run of the flow so far: the interval's
    expect(tick.locator("[data-count='started']")).to_have_attribute("data-n", str(started))
    expect(marked).to_have_count(runs)
    shot(page, "triggers-paused.png")

    # its last run: the link opens it
    last = later["lastRun"]["executionId"]
    expect(tick.locator(".last-run a")).to_have_attribute("data-id", last)
    tick.locator(".last-run a").click()
    expect(page.locator("#exec-id")).to_have_text(last)
    expect(page.locator("#exec-trigger")).to_have_attribute("data-trigger", "ticker/tick")
    expect(page.locator("#exec-status")).to_have_attribute("data-status", "completed")

    # Fire, paused: one run at once, marked as fired by hand
    tick.locator("[data-action='fire']").click()
    expect(tick.locator(".trig-msg")).to_contain_text("fired by hand: run")
    fired_id = tick.locator(".trig-msg a").get_attribute("data-id")
    assert fired_id
    expect(tick.locator("[data-count='started']")).to_have_attribute("data-n", str(started + 1))
    fired = api_trigger(site, "ticker/tick")
    assert fired["counts"]["started"] == started + 1 and fired["status"] == "paused"
    assert fired["lastRun"]["executionId"] == fired_id
    by_hand = page.locator(f"#runs li[data-id='{fired_id}']")
    expect(by_hand).to_have_attribute("data-trigger-type", "manual")
    expect(by_hand).to_have_attribute("data-status", "completed")
    expect(by_hand.locator(".trig-mark")).to_have_text("⚑ tick · fired by hand")
    assert len(api_runs(site, "ticker")) == runs + 1

    # Resume: its runs start again
    tick.locator("[data-action='resume']").click()
    expect(tick.locator(".trig-status .badge")).to_have_text("active")
    expect(tick.locator("[data-count='started']")).not_to_have_attribute("data-n", str(started + 1))
    expect(marked.nth(runs + 1)).to_be_visible()
    assert api_trigger(site, "ticker/tick")["counts"]["started"] > started + 1
    tick.locator("[data-action='pause']").click()
    expect(tick.locator(".trig-status .badge")).to_have_text("paused")

    # the webhook: Fire from the page, then a request over HTTP, both shown live
    hook.locator("[data-action='fire']").click()
    expect(hook.locator("[data-count='started']")).to_have_attribute("data-n", "1")
    answer = httpx.post(f"{site.url}/api/hooks/ticker/now", json={"who": "Ada"}, headers=site.auth)
    assert answer.status_code == 202, answer.text
    expect(hook.locator("[data-count='started']")).to_have_attribute("data-n", "2")
    expect(hook.locator(".last-run a")).to_have_attribute("data-id", answer.json()["executionId"])
    hooked_runs = page.locator("#runs li[data-trigger='ticker/hook']")
    expect(hooked_runs).to_have_count(2)
    webhook_run = page.locator(f"#runs li[data-id='{answer.json()['executionId']}']")
    expect(webhook_run).to_have_attribute("data-trigger-type", "webhook")
    expect(webhook_run).to_have_attribute("data-status", "completed")
    expect(hook.locator(".last-run a")).to_have_attribute("data-status", "completed")
    expect(webhook_run.locator(".trig-mark")).to_have_attribute(
        "title", re.compile(r"POST /api/hooks/ticker/now from 127\.0\.0\.1")
    )
    state = api_trigger(site, "ticker/hook")
    assert state["counts"]["started"] == 2 and state["lastRun"]["status"] == "completed"


def test_problems_show_and_the_panel_follows_saves_and_deletes(
    start: Any, open_page: Any, expect: Any
) -> None:
    site = start(
        hooked("first", "shared"), hooked("second", "shared"), FAILING, raw={"broken": BROKEN}
    )
    listed = httpx.get(f"{site.url}/api/triggers", headers=site.auth).json()
    assert [p["flowId"] for p in listed["problems"]] == ["broken"]
    page = open_page(site)

    # a flow whose triggers cannot be read: said above the triggers, with the file's message
    problem = page.locator("#trigger-problems .flow-problem[data-flow='broken']")
    expect(problem).to_contain_text("its triggers cannot be read")
    expect(problem).to_contain_text("cron '0 6 * *' has 4 field(s)")
    expect(page.locator("#triggers tbody")).to_have_count(3)  # first, second, failing
    # a webhook whose route another flow's trigger holds
    second = row(page, "second/hook")
    expect(second.locator(".trig-status .badge")).to_have_text("error")
    expect(second.locator(".trig-problem")).to_contain_text(
        "POST /api/hooks/shared is already trigger first/hook's"
    )
    expect(row(page, "first/hook").locator(".trig-problem")).to_be_hidden()
    # a run its trigger cannot start: Fire says why, and the trigger keeps it as its last error
    failing = row(page, "failing/bad")
    expect(failing.locator(".trig-error")).to_be_hidden()
    failing.locator("[data-action='fire']").click()
    expect(failing.locator(".trig-msg")).to_contain_text("VALIDATION_FAILED")
    expect(failing.locator(".trig-error")).to_contain_text("last error")
    expect(failing.locator(".trig-error")).to_contain_text("VALIDATION_FAILED")
    expect(failing.locator("[data-count='failed']")).to_have_attribute("data-n", "1")
    state = api_trigger(site, "failing/bad")
    assert state["lastError"]["code"] == "VALIDATION_FAILED" and state["counts"]["started"] == 0
    expect(failing.locator(".trig-error")).to_contain_text(state["lastError"]["message"])
    expect(page.locator("#triggers-title")).to_contain_text("1 error")
    shot(page, "triggers-problems.png")

    # live: the holder deleted, the other takes its route; a flow saved, its trigger listed;
    # the broken flow mended, its problem gone
    assert httpx.delete(f"{site.url}/api/flows/first", headers=site.auth).status_code == 204
    expect(row(page, "first/hook")).to_have_count(0)
    expect(second.locator(".trig-status .badge")).to_have_text("active")
    expect(second.locator(".trig-problem")).to_be_hidden()
    saved = httpx.put(
        f"{site.url}/api/flows/third", content=hooked("third", "third/in"), headers=site.auth
    )
    assert saved.status_code == 201, saved.text
    expect(row(page, "third/hook").locator(".trig-when")).to_contain_text(
        "POST /api/hooks/third/in"
    )
    mended = BROKEN.replace("'0 6 * *'", "'0 6 * * *'")
    answer = httpx.put(f"{site.url}/api/flows/broken", content=mended, headers=site.auth)
    assert answer.status_code in (200, 201), answer.text
    expect(page.locator("#trigger-problems")).to_be_hidden()
    expect(row(page, "broken/t").locator(".trig-status .badge")).to_have_text("active")
    keys = page.locator("#triggers tbody").evaluate_all("bs => bs.map(b => b.dataset.key)")
    assert keys == [
        t["key"]
        for t in httpx.get(f"{site.url}/api/triggers", headers=site.auth).json()["triggers"]
    ]
