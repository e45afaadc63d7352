"""The live page in a real headless Chromium: token, pick a flow, execute, watch, timeline.

Needs Debian's ``chromium`` (/usr/bin/chromium) and the ``playwright`` Python package; no
``playwright install`` (the browser is the system one).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

SHOWCASE = """\
id: showcase
name: Showcase
description: Two sleeping branches after a greeting, joined by a transform.
variables: {who: {type: string, defaultValue: world}}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}, keepOnlySet: true}
  - id: fetch-a
    type: test.sleep
    parameters: {seconds: 0.6, steps: 6}
  - id: fetch-b
    type: test.sleep
    parameters: {seconds: 1.2, steps: 6}
  - id: shout
    type: transform
    parameters: {operation: map, expression: "item.message | upper"}
edges:
  - {source: greet, target: fetch-a, sourceHandle: output, targetHandle: input}
  - {source: greet, target: fetch-b, sourceHandle: output, targetHandle: input}
  - {source: fetch-b, target: shout, sourceHandle: output, targetHandle: input}
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def showcase(served: Any) -> Any:
    response = httpx.put(f"{served.url}/api/flows/showcase", content=SHOWCASE, headers=served.auth)
    assert response.status_code in (200, 201), response.text
    return served


def test_execute_a_flow_and_watch_it_live(browser: Any, showcase: Any) -> None:
    served = showcase
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(served.url + "/")
    assert page.locator("#conn").inner_text() == "not connected"

    page.fill("#token", served.token)
    page.click("#save-token")
    page.wait_for_selector("#flow-select option[value='showcase']", state="attached")
    assert page.locator("#conn").get_attribute("data-state") == "ok"
    page.select_option("#flow-select", "showcase")
    page.wait_for_selector("tr[data-path='fetch-b'][data-status='pending']")
    assert '"who": "world"' in page.input_value("#inputs")
    page.fill("#inputs", '{"who": "browser"}')

    page.click("#execute")
    # live: a node is seen running with partial progress before the run ends
    page.wait_for_selector("tr[data-path='fetch-b'][data-status='running']", timeout=10_000)
    page.wait_for_function(
        "() => { const d = document.querySelector(\"tr[data-path='fetch-b'] .detail\");"
        " return d && d.textContent.startsWith('step'); }",
        timeout=10_000,
    )
    assert page.locator("#exec-status").get_attribute("data-status") == "running"
    page.wait_for_selector("#exec-status[data-status='completed']", timeout=15_000)
    for node_id in ("greet", "fetch-a", "fetch-b", "shout"):
        row = page.locator(f"tr[data-path='{node_id}']")
        assert row.get_attribute("data-status") == "completed"
    assert "HELLO BROWSER" in page.inner_text("#outputs")
    bars = page.locator("#timeline svg rect.gantt-bar")
    assert bars.count() == 4
    widths = {
        bars.nth(i).get_attribute("data-path"): float(bars.nth(i).get_attribute("width") or 0)
        for i in range(4)
    }
    assert widths["fetch-b"] > widths["fetch-a"] > widths["greet"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    assert errors == []
    page.close()


def test_token_from_the_url_and_errors_are_shown(browser: Any, showcase: Any) -> None:
    served = showcase
    page = browser.new_page()
    page.goto(f"{served.url}/?token={served.token}")
    page.wait_for_selector("#flow-select option[value='demo']", state="attached")
    assert "token=" not in page.url  # taken out of the address bar, kept in sessionStorage
    assert page.evaluate("sessionStorage.getItem('atomiton.token')") == served.token
    page.wait_for_selector("#message:has-text('stored flow')")
    page.select_option("#flow-select", "demo")
    # picking a flow disables Execute until the flow has loaded (and filled in its inputs)
    page.wait_for_selector("#execute:enabled")
    page.wait_for_selector("tr[data-path='shout']")
    page.fill("#inputs", "{not json")
    page.click("#execute")
    page.wait_for_selector("#message.bad:has-text('not valid JSON')")

    page.fill("#token", "wrong")
    page.click("#save-token")
    page.wait_for_selector("#conn[data-state='bad']")
    page.wait_for_selector("#message.bad:has-text('401')")
    page.close()


def test_chromium_is_the_system_one() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    assert shutil.which("chromium") is not None
