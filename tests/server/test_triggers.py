"""Triggers under a real uvicorn server on loopback, in real time, with real files.

Schedules fire on their grid; webhooks check the token and the HMAC signature and hand the
request to the run; a watched folder starts one run per file dropped into it; the overlap
policies hold while a slow run holds its gate; a restarted server keeps its triggers (paused
ones stay paused, a missed schedule runs once under ``missed: once``); saving and deleting a
flow changes its triggers at once; a trigger that cannot start its run says so.

Nothing here sleeps: the tests wait for the conductor's signals (:class:`Runs`), for the
``trigger.updated`` events of ``/api/events`` (:class:`TriggerEvents`), for run records and
for HTTP answers; a slow run holds until the test opens its gate (an asyncio.Event set in the
server's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
from pydantic import BaseModel
from websockets.sync.client import connect

from atomiton_core import NodeContext, create_conductor, hookimpl, loads_flow, node, signals
from atomiton_core.conductor.conductor import Conductor
from atomiton_core.security import Security
from atomiton_core.server.app import create_app
from atomiton_core.server.client import RemoteConductor
from atomiton_core.server.triggers import sign
from atomiton_core.storage.flows import create_storage
from atomiton_core.storage.runs import RunRecord

TOKEN = "trigger-token-0123456789"
WAIT = 30.0


class HoldParams(BaseModel):
    gate: str = ""


@node("trig.hold", params=HoldParams, outputs={"output": object}, category="test")
async def hold_node(ctx: NodeContext, params: HoldParams, input: Any = None) -> dict[str, Any]:
    """Hold until the test opens the gate named ``gate``."""
    if params.gate:
        gates: dict[str, asyncio.Event] = ctx.config["gates"]
        await gates.setdefault(params.gate, asyncio.Event()).wait()
    return {"output": input}


class TriggerNodes:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [hold_node]


def flow_text(flow_id: str, triggers: str, *, hold: str = "", variables: str = "") -> str:
    """A flow that greets ``who`` (after holding at gate ``hold``, if given)."""
    hold_node = f"  - {{id: hold, type: trig.hold, parameters: {{gate: {hold}}}}}\n" if hold else ""
    edge = "edges:\n  - {source: hold, target: greet}\n" if hold else ""
    return (
        f"id: {flow_id}\nname: {flow_id}\n"
        f"variables:\n  who: {{type: string, defaultValue: world}}\n{variables}"
        f"triggers:\n{triggers}"
        f"nodes:\n{hold_node}"
        "  - id: greet\n    type: edit-fields\n"
        "    parameters: {values: {message: 'Hello {{ who }}'}, keepOnlySet: true}\n"
        f"{edge}"
    )


class Runs:
    """Every execution of a conductor as its signals tell them (in the server's thread)."""

    def __init__(self, conductor: Conductor) -> None:
        self.conductor = conductor
        self.cond = threading.Condition()
        self.started: list[str] = []
        self.ended: dict[str, str] = {}
        #: What each execution's ``execution.started`` event said started it.
        self.triggers: dict[str, dict[str, Any] | None] = {}
        self._signals = (signals.execution_started, *signals.EXECUTION_SIGNALS[1:])
        for sig in self._signals:
            sig.connect(self._receive, sender=conductor, weak=False)

    def _receive(self, sender: Any, event: Any) -> None:
        with self.cond:
            if event.type == "execution.started":
                self.started.append(event.execution_id)
                self.triggers[event.execution_id] = event.trigger
            else:
                self.ended[event.execution_id] = event.type.split(".", 1)[1]
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), (
                f"{what}: not within {timeout} s (started {len(self.started)}, "
                f"ended {len(self.ended)})"
            )

    def wait_ended(self, count: int, timeout: float = WAIT) -> list[str]:
        """The first ``count`` executions, once they have all ended."""
        self.wait(
            lambda: (
                len(self.started) >= count and all(e in self.ended for e in self.started[:count])
            ),
            f"{count} runs ended",
            timeout,
        )
        return self.started[:count]

    def close(self) -> None:
        for sig in self._signals:
            sig.disconnect(self._receive)


class TriggerEvents:
    """``/api/events`` of a server, read for its ``trigger.updated`` events."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._stack = contextlib.ExitStack()
        self.socket = self._stack.enter_context(
            # every message kept until read: a full buffer would stall the closing handshake
            connect(f"{site.ws_url}/api/events?token={TOKEN}", open_timeout=WAIT, max_queue=None)
        )

    def wait(
        self, key: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
    ) -> dict[str, Any]:
        """The trigger's state, once it satisfies ``predicate`` (as it is now, or as an event
        tells it later)."""
        answer = httpx.get(f"{self.site.url}/api/triggers/{key}", headers=self.site.auth)
        if answer.status_code == 200 and predicate(answer.json()):
            return dict(answer.json())
        deadline = time.monotonic() + timeout
        last = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = json.loads(self.socket.recv(timeout=left))
            except TimeoutError:
                break
            if event.get("type") != "trigger.updated" or event["trigger"]["key"] != key:
                continue
            last = event["trigger"]
            if predicate(last):
                return dict(last)
        raise AssertionError(f"trigger {key}: the state waited for did not come; last: {last}")

    def wait_removed(self, key: str, timeout: float = WAIT) -> None:
        trigger_id = key.split("/")[1]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            answer = httpx.get(f"{self.site.url}/api/triggers/{key}", headers=self.site.auth)
            if answer.status_code == 404:
                return
            event = json.loads(self.socket.recv(timeout=left))
            if event.get("type") == "trigger.removed" and event["triggerId"] == trigger_id:
                return
        raise AssertionError(f"trigger {key} was not removed")

    def close(self) -> None:
        self._stack.close()


@dataclass
class Site:
    url: str
    conductor: Conductor
    app: Any
    runs: Runs
    gates: dict[str, asyncio.Event]
    remote: RemoteConductor
    storage_url: str
    events: TriggerEvents | None = None
    #: Stops the server (as a restart does: its lifespan ends, the trigger state is written).
    stop: Callable[[], None] = lambda: None

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def open_gate(self, name: str) -> None:
        loop = self.app.state.hub.loop
        loop.call_soon_threadsafe(lambda: self.gates.setdefault(name, asyncio.Event()).set())

    def record(self, execution_id: str) -> RunRecord:
        assert self.conductor.storage is not None
        return self.conductor.storage.record(execution_id)

    def state(self, key: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/triggers/{key}", headers=self.auth)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def hook(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/api/hooks/{path}", content=body, headers=headers or {})


@pytest.fixture
def start(serve_app: Any) -> Iterator[Callable[..., Site]]:
    """``start(storage_url, *flow_texts, conductor_kw=..., rescan_s=..., **create_app_kw)``: a
    server of its own on that storage (a second call on the same storage is a restart)."""
    with contextlib.ExitStack() as stack:

        def begin(
            storage_url: str,
            *flows: str,
            conductor_kw: dict[str, Any] | None = None,
            rescan_s: float | None = None,
            **kw: Any,
        ) -> Site:
            own = contextlib.ExitStack()
            stack.callback(own.close)
            gates: dict[str, asyncio.Event] = {}
            conductor = create_conductor(
                storage_url,
                plugins=[TriggerNodes()],
                autoload=False,
                config={"gates": gates},
                **(conductor_kw or {}),
            )
            assert conductor.storage is not None
            for text in flows:
                conductor.storage.save(loads_flow(text))
            runs = Runs(conductor)
            own.callback(runs.close)
            app = create_app(conductor, token=TOKEN, **kw)
            if rescan_s is not None:
                app.state.triggers.rescan_s = rescan_s
            served = own.enter_context(serve_app(app, conductor, TOKEN))
            remote = RemoteConductor(served.url, TOKEN)
            own.callback(remote.close)
            site = Site(served.url, conductor, served.app, runs, gates, remote, storage_url)
            site.events = TriggerEvents(site)
            own.callback(site.events.close)
            site.stop = own.close
            return site

        yield begin


def memory_url() -> str:
    return f"memory://atomiton-triggers/{uuid.uuid4().hex}"


# -- schedules -------------------------------------------------------------------------------


def test_an_interval_trigger_fires_on_its_grid(start: Callable[..., Site]) -> None:
    triggers = "  - {id: tick, type: schedule, interval: 200ms}\n"
    site = start(memory_url(), flow_text("ticker", triggers))
    eids = site.runs.wait_ended(6)
    counted_at = time.time()
    records = sorted((site.record(e) for e in eids), key=lambda r: r.started_at or 0.0)
    slots = [datetime.fromisoformat(r.trigger["scheduledFor"]).timestamp() for r in records]  # type: ignore[index]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(abs(g - 0.2) < 1e-3 for g in gaps), gaps  # consecutive slots of its grid
    for record, slot in zip(records, slots, strict=True):
        assert record.trigger is not None
        assert record.trigger["flowId"] == "ticker" and record.trigger["type"] == "schedule"
        fired = datetime.fromisoformat(record.trigger["firedAt"]).timestamp()
        assert 0 <= fired - slot < 1.0, "fired on time"
        assert record.status == "completed"
    # the number of runs started is the number of slots come round since the first
    expected = int((counted_at - slots[0]) / 0.2) + 1
    started = len(site.runs.started)
    assert expected - 1 <= started <= expected + 1, (started, expected)
    state = site.state("ticker/tick")
    assert state["status"] == "active" and state["counts"]["failed"] == 0
    assert state["lastRun"]["executionId"] in site.runs.started
    assert datetime.fromisoformat(state["nextFireAt"]).timestamp() > slots[-1]
    summary = next(s for s in site.remote.runs(flow_id="ticker") if s["executionId"] == eids[0])
    assert summary["trigger"]["id"] == "tick"  # the run list says what started each run


def test_a_cron_trigger_in_a_time_zone_says_its_next_slot(start: Callable[..., Site]) -> None:
    triggers = (
        "  - {id: morning, type: schedule, cron: '30 6 * * 1-5', timezone: Europe/Paris}\n"
        "  - {id: every-second, type: schedule, cron: '* * * * * *', enabled: false}\n"
    )
    site = start(memory_url(), flow_text("crony", triggers))
    state = site.events.wait("crony/morning", lambda s: s["nextFireAt"] is not None)  # type: ignore[union-attr]
    paris = datetime.fromisoformat(state["nextFireAt"]).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    assert (paris.hour, paris.minute, paris.second) == (6, 30, 0)
    assert paris.weekday() < 5
    assert state["when"] == "cron '30 6 * * 1-5' (Europe/Paris)"
    off = site.state("crony/every-second")
    assert off["status"] == "disabled" and off["nextFireAt"] is None
    refused = httpx.post(f"{site.url}/api/triggers/crony/every-second/fire", headers=site.auth)
    assert refused.status_code == 409 and "is disabled" in refused.text  # never fires


# -- webhooks --------------------------------------------------------------------------------

HOOKS = """\
  - id: signed
    type: webhook
    path: orders/new
    secret: "{{ secrets.HOOK_KEY }}"
  - id: public
    type: webhook
    path: public/ping
    public: true
    secret: open-sesame
  - id: answer
    type: webhook
    path: greet
    method: GET
    respond: result
    timeout: 20000
"""


@pytest.fixture
def hooks(start: Callable[..., Site], tmp_path: Path) -> Site:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"HOOK_KEY": "s3cret-key-value"}))
    variables = "  count: {type: number, defaultValue: 0}\n  headers: {type: object}\n"
    return start(
        memory_url(),
        flow_text("orders", HOOKS, variables=variables),
        conductor_kw={"secrets": [f"file:{secrets_file}"]},
    )


def test_a_signed_webhook_starts_a_run_with_the_body_as_inputs(hooks: Site) -> None:
    body = json.dumps({"who": "Ada", "count": "3", "unknown": 1}).encode()
    headers = {
        **hooks.auth,
        "Content-Type": "application/json",
        "X-Signature-256": sign("s3cret-key-value", body),
        "X-Event": "order.created",
    }
    answer = hooks.hook("orders/new", body, headers)
    assert answer.status_code == 202, answer.text
    data = answer.json()
    assert data["status"] == "running" and data["ignored"] == ["unknown"]
    assert answer.headers["location"] == f"/api/executions/{data['executionId']}"
    (eid,) = hooks.runs.wait_ended(1)
    assert eid == data["executionId"]
    record = hooks.record(eid)
    assert record.status == "completed"
    inputs = record.data["inputs"]
    assert inputs["who"] == "Ada" and inputs["count"] == 3  # converted to the variable's type
    assert inputs["headers"]["x-event"] == "order.created"
    assert "authorization" not in inputs["headers"] and "x-signature-256" not in inputs["headers"]
    assert record.trigger is not None
    assert record.trigger["type"] == "webhook" and record.trigger["path"] == "orders/new"
    assert hooks.runs.triggers[eid] == record.trigger  # the live event says so as it starts
    result = hooks.remote.get(eid)
    assert result.outputs["greet"]["output"] == {"message": "Hello Ada"}


def test_a_wrong_or_missing_signature_or_token_gets_401(hooks: Site) -> None:
    body = b'{"who": "Mallory"}'
    wrong = {**hooks.auth, "X-Signature-256": sign("not-the-key", body)}
    assert hooks.hook("orders/new", body, wrong).status_code == 401
    missing = hooks.hook("orders/new", body, dict(hooks.auth))
    assert missing.status_code == 401 and "X-Signature-256" in missing.json()["error"]["message"]
    no_token = {"X-Signature-256": sign("s3cret-key-value", body)}
    assert hooks.hook("orders/new", body, no_token).status_code == 401  # the token gate
    tampered = {**hooks.auth, "X-Signature-256": sign("s3cret-key-value", body + b" ")}
    assert hooks.hook("orders/new", body, tampered).status_code == 401
    assert hooks.runs.started == []
    assert hooks.state("orders/signed")["counts"]["fired"] == 0


def test_a_public_webhook_needs_no_token_but_its_signature(hooks: Site) -> None:
    body = b'{"who": "Grace"}'
    assert hooks.hook("public/ping", body).status_code == 401  # unsigned
    signed = hooks.hook("public/ping", body, {"X-Signature-256": sign("open-sesame", body)})
    assert signed.status_code == 202, signed.text
    (eid,) = hooks.runs.wait_ended(1)
    assert hooks.record(eid).data["inputs"]["who"] == "Grace"
    # the other routes still need the token
    assert httpx.get(f"{hooks.url}/api/triggers").status_code == 401
    assert (
        hooks.hook(
            "orders/new", body, {"X-Signature-256": sign("s3cret-key-value", body)}
        ).status_code
        == 401
    )
    state = hooks.state("orders/public")
    assert state["public"] and state["spec"]["secret"] == "***"  # a literal secret is not shown
    assert hooks.state("orders/signed")["spec"]["secret"] == "{{ secrets.HOOK_KEY }}"


def test_a_webhook_can_answer_with_the_flows_outputs(hooks: Site) -> None:
    answer = httpx.get(f"{hooks.url}/api/hooks/greet?who=Linus", headers=hooks.auth, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["status"] == "completed"
    assert data["outputs"] == {"greet": {"output": {"message": "Hello Linus"}}}
    assert httpx.post(f"{hooks.url}/api/hooks/greet", headers=hooks.auth).status_code == 405
    assert httpx.post(f"{hooks.url}/api/hooks/nowhere", headers=hooks.auth).status_code == 404


def test_a_run_a_trigger_cannot_start_is_reported(
    hooks: Site, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"count": "many"}).encode()
    headers = {**hooks.auth, "X-Signature-256": sign("s3cret-key-value", body)}
    answer = hooks.hook("orders/new", body, headers)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "INVALID_VARIABLE"
    state = hooks.state("orders/signed")
    assert state["counts"]["failed"] == 1 and state["counts"]["started"] == 0
    assert (
        state["lastError"]["code"] == "INVALID_VARIABLE"
        and "count" in state["lastError"]["message"]
    )
    assert any("could not start a run" in r.getMessage() for r in caplog.records)


def test_a_schedule_that_cannot_start_its_run_says_so(start: Callable[..., Site]) -> None:
    broken = (
        "id: broken\nname: Broken\n"
        "triggers:\n  - {id: tick, type: schedule, interval: 100ms}\n"
        "nodes:\n  - {id: a, type: no-such-type}\n"
    )
    site = start(memory_url(), broken)
    state = site.events.wait("broken/tick", lambda s: s["counts"]["failed"] >= 2)  # type: ignore[union-attr]
    assert state["lastError"]["code"] == "VALIDATION_FAILED"
    assert state["counts"]["started"] == 0 and site.runs.started == []
    listed = site.remote.triggers(flow_id="broken")
    assert listed[0]["lastError"]["code"] == "VALIDATION_FAILED"


# -- watches ---------------------------------------------------------------------------------


def test_files_dropped_into_a_watched_folder_start_one_run_each(
    start: Callable[..., Site], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    triggers = f"  - {{id: inbox, type: watch, folder: '{inbox}', glob: '*.csv', debounce: 100}}\n"
    variables = "  path: {type: string}\n"
    site = start(memory_url(), flow_text("importer", triggers, variables=variables))
    site.events.wait("importer/inbox", lambda s: s["watching"])  # type: ignore[union-attr]
    (inbox / "notes.txt").write_text("not a csv")
    (inbox / ".partial.csv").write_text("hidden: still being written")
    names = ["a.csv", "b.csv", "c.csv"]
    for name in names:
        with open(inbox / name, "w") as fh:  # written in two steps: still one run
            fh.write("id,qty\n")
            fh.flush()
            fh.write("1,2\n")
    eids = site.runs.wait_ended(3)
    paths = sorted(site.record(e).data["inputs"]["path"] for e in eids)
    assert paths == [str(inbox / n) for n in names]
    for eid in eids:
        trigger = site.record(eid).trigger
        assert trigger is not None and trigger["type"] == "watch" and trigger["change"] == "added"
    # a changed file runs again; the others do not
    (inbox / "b.csv").write_text("id,qty\n1,5\n")
    (fourth,) = site.runs.wait_ended(4)[3:]
    assert site.record(fourth).data["inputs"]["path"] == str(inbox / "b.csv")
    state = site.state("importer/inbox")
    assert state["counts"]["started"] == 4 and state["counts"]["fired"] == 4


def test_a_watched_fsspec_url_is_listed_for_new_files(start: Callable[..., Site]) -> None:
    folder = f"memory://atomiton-drop/{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(f"{folder}/old.json", b"{}")  # there before: not new
    triggers = (
        f"  - {{id: drop, type: watch, folder: '{folder}', glob: '*.json', pollInterval: 100}}\n"
    )
    site = start(memory_url(), flow_text("dropper", triggers, variables="  path: {type: string}\n"))
    state = site.events.wait("dropper/drop", lambda s: s["watching"])  # type: ignore[union-attr]
    assert state["problem"] is None and state["status"] == "active"
    # the first listing is the baseline; files piped after it are new
    fs.pipe_file(f"{folder}/one.json", b"{}")
    fs.pipe_file(f"{folder}/two.json", b"{}")
    fs.pipe_file(f"{folder}/skip.txt", b"")
    eids = site.runs.wait_ended(2)
    paths = sorted(site.record(e).data["inputs"]["path"] for e in eids)
    assert paths == [f"{folder}/one.json", f"{folder}/two.json"]


def test_under_safe_roots_a_folder_outside_them_is_refused(
    start: Callable[..., Site], tmp_path: Path
) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    triggers = f"  - {{id: outside, type: watch, folder: '{other}'}}\n"
    site = start(
        memory_url(),
        flow_text("nosy", triggers, variables="  path: {type: string}\n"),
        conductor_kw={"security": Security(allowed_roots=(str(allowed),))},
    )
    state = site.events.wait("nosy/outside", lambda s: s["status"] == "error")  # type: ignore[union-attr]
    assert "outside the allowed roots" in state["problem"]


# -- overlap policies ------------------------------------------------------------------------


def test_skip_drops_fires_while_a_slow_run_goes_on(start: Callable[..., Site]) -> None:
    triggers = "  - {id: tick, type: schedule, interval: 100ms, overlap: skip}\n"
    site = start(memory_url(), flow_text("slow", triggers, hold="slow"))
    events = site.events
    assert events is not None
    state = events.wait("slow/tick", lambda s: s["counts"]["skipped"] >= 3)
    assert state["counts"]["started"] == 1 and len(state["running"]) == 1
    assert len(site.runs.started) == 1
    first = site.runs.started[0]
    site.open_gate("slow")
    site.runs.wait(lambda: len(site.runs.started) >= 2, "a run after the slow one")
    site.remote.pause_trigger("slow", "tick")
    assert site.runs.started[0] == first and site.record(first).status == "completed"
    assert site.runs.started[1] != first


def test_queue_runs_fires_one_after_another_and_bounds_the_queue(
    start: Callable[..., Site],
) -> None:
    triggers = "  - {id: jobs, type: webhook, path: jobs, overlap: queue, maxQueued: 2}\n"
    site = start(memory_url(), flow_text("queued", triggers, hold="queue"))
    answers = [site.hook("jobs", json.dumps({"who": str(i)}).encode(), site.auth) for i in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429], [a.text for a in answers]
    assert answers[0].json()["status"] == "running"
    assert [a.json().get("position") for a in answers[1:3]] == [1, 2]
    state = site.state("queued/jobs")
    assert state["queued"] == 2 and len(state["running"]) == 1 and state["counts"]["skipped"] == 1
    site.open_gate("queue")
    eids = site.runs.wait_ended(3)
    records = [site.record(e) for e in eids]
    assert [r.data["inputs"]["who"] for r in records] == ["0", "1", "2"]  # in the order fired
    for before, after in itertools.pairwise(records):
        assert after.started_at >= before.data["endedAt"]  # type: ignore[operator]  # one at a time


def test_parallel_runs_up_to_its_bound(start: Callable[..., Site]) -> None:
    triggers = (
        "  - {id: fan, type: webhook, path: fan, overlap: parallel, maxRuns: 2, maxQueued: 0}\n"
    )
    site = start(memory_url(), flow_text("fanout", triggers, hold="fan"))
    answers = [site.hook("fan", b"{}", site.auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert len(site.state("fanout/fan")["running"]) == 2
    site.open_gate("fan")
    site.runs.wait_ended(2)


# -- pause, resume, fire -----------------------------------------------------------------------


def test_pause_resume_and_fire_through_the_client(hooks: Site) -> None:
    remote = hooks.remote
    assert remote.pause_trigger("orders", "answer")["status"] == "paused"
    paused = httpx.get(f"{hooks.url}/api/hooks/greet", headers=hooks.auth)
    assert paused.status_code == 409 and "paused" in paused.json()["error"]["message"]
    fired = remote.fire_trigger("orders", "answer", {"who": "Hand"})  # by hand: paused or not
    assert fired["status"] == "running"
    (eid,) = hooks.runs.wait_ended(1)
    assert eid == fired["executionId"]
    record = hooks.record(eid)
    assert record.trigger is not None and record.trigger["manual"] is True
    assert record.data["inputs"]["who"] == "Hand"
    assert remote.resume_trigger("orders", "answer")["status"] == "active"
    listed = {t["key"]: t for t in remote.triggers(flow_id="orders")}
    assert set(listed) == {"orders/signed", "orders/public", "orders/answer"}
    assert listed["orders/answer"]["lastRun"]["executionId"] == eid
    answer = remote.webhook("orders/new", {"who": "Client"}, secret="s3cret-key-value")
    assert answer["status"] == "running"
    with pytest.raises(Exception, match="no trigger 'nope'"):
        remote.pause_trigger("orders", "nope")


# -- live changes and restarts -----------------------------------------------------------------


def test_saving_and_deleting_a_flow_changes_its_triggers_at_once(
    start: Callable[..., Site],
) -> None:
    site = start(memory_url())
    events = site.events
    assert events is not None
    text = flow_text("live", "  - {id: hook, type: webhook, path: live/one}\n")
    saved = httpx.put(f"{site.url}/api/flows/live", content=text, headers=site.auth)
    assert saved.status_code == 201, saved.text
    events.wait("live/hook", lambda s: s["url"] == "/api/hooks/live/one")
    assert site.hook("live/one", b"{}", site.auth).status_code == 202
    moved = text.replace("live/one", "live/two")
    assert (
        httpx.put(f"{site.url}/api/flows/live", content=moved, headers=site.auth).status_code == 200
    )
    events.wait("live/hook", lambda s: s["url"] == "/api/hooks/live/two")
    assert site.hook("live/one", b"{}", site.auth).status_code == 404
    assert site.hook("live/two", b"{}", site.auth).status_code == 202
    assert httpx.delete(f"{site.url}/api/flows/live", headers=site.auth).status_code == 204
    events.wait_removed("live/hook")
    assert site.hook("live/two", b"{}", site.auth).status_code == 404
    site.runs.wait_ended(2)


def test_two_flows_cannot_hold_one_webhook_route(start: Callable[..., Site]) -> None:
    hook = "  - {id: hook, type: webhook, path: shared}\n"
    site = start(memory_url(), flow_text("first", hook), flow_text("second", hook))
    assert site.events is not None
    second = site.state("second/hook")
    assert second["status"] == "error"
    assert "POST /api/hooks/shared is already trigger first/hook's" in second["problem"]
    assert httpx.delete(f"{site.url}/api/flows/first", headers=site.auth).status_code == 204
    site.events.wait("second/hook", lambda s: s["status"] == "active")
    answer = site.hook("shared", b"{}", site.auth)
    assert answer.status_code == 202 and answer.json()["trigger"] == "second/hook"
    site.runs.wait_ended(1)


def test_a_flow_saved_behind_the_servers_back_is_picked_up(
    start: Callable[..., Site], tmp_path: Path
) -> None:
    """Another process's save sends this server no signal: its look at the flows folder
    finds it (every 10 s; here every 0.1 s)."""
    storage = str(tmp_path / "shared")
    site = start(storage, rescan_s=0.1)
    elsewhere = create_storage(storage)  # as `atomiton flows save` in another process
    elsewhere.save(loads_flow(flow_text("outside", "  - {id: hook, type: webhook, path: out}\n")))
    assert site.events is not None
    site.events.wait("outside/hook", lambda s: s["status"] == "active")
    assert site.hook("out", b"{}", site.auth).status_code == 202
    elsewhere.delete("outside")
    site.events.wait_removed("outside/hook")
    site.runs.wait_ended(1)


def test_a_restart_keeps_the_triggers_and_runs_a_missed_schedule_once(
    start: Callable[..., Site], tmp_path: Path
) -> None:
    storage = str(tmp_path / "storage")
    daily = (
        "  - {id: daily, type: schedule, cron: '0 6 * * *', missed: once}\n"
        "  - {id: hook, type: webhook, path: restart}\n"
    )
    lazy = "  - {id: daily, type: schedule, cron: '0 6 * * *', missed: skip}\n"
    first = start(storage, flow_text("nightly", daily), flow_text("lazy", lazy))
    assert first.events is not None
    first.events.wait("nightly/daily", lambda s: s["nextFireAt"] is not None)
    first.events.wait("lazy/daily", lambda s: s["nextFireAt"] is not None)
    first.remote.pause_trigger("nightly", "hook")
    ran = first.remote.fire_trigger("nightly", "daily")
    first.runs.wait_ended(1)
    # the server goes down (its state written on the way), and stays down two days: its state
    # says the last 06:00 it saw was two slots ago
    first.stop()
    state_file = tmp_path / "storage" / "triggers" / "state.json"
    saved = json.loads(state_file.read_text())
    assert saved["triggers"]["nightly/hook"]["paused"] is True
    now = datetime.now(UTC)
    latest = now.replace(hour=6, minute=0, second=0, microsecond=0)
    if latest > now:
        latest -= timedelta(days=1)
    two_ago = (latest - timedelta(days=2)).timestamp()
    for key in ("nightly/daily", "lazy/daily"):
        saved["triggers"][key]["lastSlot"] = two_ago
    state_file.write_text(json.dumps(saved))

    second = start(storage)
    (eid,) = second.runs.wait_ended(1)
    record = second.record(eid)
    assert record.trigger is not None and record.trigger["id"] == "daily"
    assert record.trigger["missed"] == 2
    assert record.trigger["scheduledFor"] == latest.isoformat()
    assert second.events is not None
    lazy_state = second.events.wait("lazy/daily", lambda s: s["nextFireAt"] is not None)
    assert lazy_state["counts"]["missed"] == 2 and lazy_state["counts"]["started"] == 0
    hook = second.state("nightly/hook")
    assert hook["paused"] is True and hook["status"] == "paused"
    assert second.hook("restart", b"{}", second.auth).status_code == 409
    daily_state = second.state("nightly/daily")
    assert daily_state["lastRun"]["executionId"] == eid
    assert ran["executionId"] != eid
