"""A flow's ``triggers`` section: kept through the lossless round trip (comments, order,
quoting, durations as written), checked when read with errors naming the file, the line and
the trigger's index, and a hypothesis round trip of flows with triggers."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomiton_core import FlowLoadError, dumps_flow, loads_flow
from atomiton_core.flow.models import Flow, Trigger, trigger_id
from atomiton_core.flow.triggers import duration_ms

TRIGGERED = """\
# a flow that starts itself
id: triggered
name: Triggered
variables:
  path: {type: string}
  who: {type: string, defaultValue: world}
triggers:
  # weekday mornings, Paris time
  - id: morning   # the morning run
    type: schedule
    cron: '30 6 * * 1-5'
    timezone: Europe/Paris
    missed: once
  - type: schedule
    interval: 90s          # written as a text, saved as one
    inputs: {who: "robot"}
  - id: orders
    type: webhook
    path: /orders/new
    secret: "{{ secrets.ORDERS_HOOK }}"
    respond: result
    timeout: 5000
    editorColour: teal     # an editor's key: kept
  - {id: inbox, type: watch, folder: ./inbox, glob: "*.csv", overlap: queue, maxQueued: 10}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}}
"""


def test_triggers_survive_the_round_trip_with_their_comments() -> None:
    flow = loads_flow(TRIGGERED, source="triggered.flow.yaml")
    assert dumps_flow(flow) == TRIGGERED  # byte for byte
    morning, every, orders, inbox = flow.triggers
    assert (morning.cron, morning.timezone, morning.missed) == (
        "30 6 * * 1-5",
        "Europe/Paris",
        "once",
    )
    assert every.interval == "90s" and every.interval_ms == 90_000
    assert [trigger_id(t, i) for i, t in enumerate(flow.triggers)] == [
        "morning",
        "schedule-1",
        "orders",
        "inbox",
    ]
    assert orders.hook_path == "orders/new" and orders.model_extra == {"editorColour": "teal"}
    assert [t.policy for t in flow.triggers] == ["skip", "skip", "parallel", "queue"]
    assert inbox.describe() == "files *.csv in ./inbox"

    every.interval = "2m"
    orders.public = True
    flow.triggers.append(Trigger(id="late", type="schedule", cron="0 23 * * *"))
    text = dumps_flow(flow)
    for kept in (
        "# weekday mornings, Paris time",
        "# the morning run",
        "# written as a text, saved as one",
        "# an editor's key: kept",
        "cron: '30 6 * * 1-5'",
    ):
        assert kept in text
    assert "interval: 2m" in text and "public: true" in text
    again = loads_flow(text)
    assert again == flow
    assert again.triggers[-1].cron == "0 23 * * *"


def test_a_flow_without_triggers_saves_none() -> None:
    flow = Flow(id="plain", name="Plain")
    assert "triggers" not in dumps_flow(flow)
    assert flow.triggers == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("cron: '30 6 * * 1-5'", "cron: '30 6 * *'"),
            "triggers[0].cron (line 11): cron '30 6 * *' has 4 field(s)",
        ),
        (
            ("cron: '30 6 * * 1-5'", "cron: '61 6 * * *'"),
            "triggers[0].cron (line 11): cron '61 6 * * *' is not a valid",
        ),
        (
            ("Europe/Paris", "Europe/Atlantis"),
            "triggers[0].timezone (line 12): time zone 'Europe/Atlantis' is not known",
        ),
        (
            ("interval: 90s", "interval: 90 parsecs"),
            "triggers[1].interval (line 15): interval '90 parsecs' is not a duration",
        ),
        (
            ("interval: 90s", "interval: 10ms"),
            "triggers[1].interval (line 15): interval '10ms' is shorter than 50 ms",
        ),
        (
            ("    missed: once\n", "    missed: twice\n"),
            "triggers[0].missed (line 13): Input should be 'skip' or 'once'",
        ),
        (
            ("path: /orders/new", "path: ../../etc"),
            "triggers[2].path (line 19): webhook path '../../etc'",
        ),
        (("    respond: result\n", "    public: true\n"), None),  # a secret is given: fine
        (
            ('    secret: "{{ secrets.ORDERS_HOOK }}"\n', "    public: true\n"),
            "triggers[2] (line 17): a public webhook needs a `secret`",
        ),
        (
            ("    timezone: Europe/Paris\n", "    timzone: Europe/Paris\n"),
            "triggers[0] (line 9): unknown key 'timzone': did you mean 'timezone'?",
        ),
        (
            ("type: watch, folder: ./inbox", "type: watch"),
            "triggers[3] (line 24): a watch trigger needs `folder`",
        ),
        (
            ("    interval: 90s", "    path: x\n    interval: 90s"),
            "triggers[1] (line 14): path: for webhook triggers, not schedule ones",
        ),
        (
            ('inputs: {who: "robot"}', 'inputs: {whom: "robot"}'),
            "triggers[1].inputs.whom (line 16): 'whom' is not a variable of the flow (did you mean 'who'?)",
        ),
        (
            ("  path: {type: string}\n", ""),
            "triggers[3].pathVariable (line 23): 'path' is not a variable of the flow",
        ),
        (
            ("id: inbox", "id: morning"),
            "triggers[3].id (line 24): id 'morning' is also triggers[0]'s",
        ),
        (
            ("type: watch", "type: cronjob"),
            "triggers[3].type (line 24): Input should be 'schedule', 'webhook' or 'watch'",
        ),
    ],
)
def test_a_broken_trigger_is_named_with_its_line(
    change: tuple[str, str], expected: str | None
) -> None:
    old, new = change
    assert old in TRIGGERED
    text = TRIGGERED.replace(old, new, 1)
    if expected is None:
        loads_flow(text)
        return
    with pytest.raises(FlowLoadError) as exc:
        loads_flow(text, source="triggered.flow.yaml")
    message = str(exc.value)
    assert message.startswith("triggered.flow.yaml: not a valid flow"), message
    assert expected in message, message


def test_a_schedule_needs_exactly_one_of_cron_and_interval() -> None:
    base = "id: f\nname: F\nnodes: []\ntriggers:\n  - {type: schedule%s}\n"
    for extra in ("", ", cron: '* * * * *', interval: 5s"):
        with pytest.raises(
            FlowLoadError, match=r"triggers\[0\] \(line 5\): a schedule trigger needs"
        ):
            loads_flow(base % extra)
    with pytest.raises(FlowLoadError, match="`timezone` goes with `cron`"):
        loads_flow(base % ", interval: 5s, timezone: UTC")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        (250, 250.0),
        ("250ms", 250.0),
        ("30s", 30_000.0),
        ("5m", 300_000.0),
        ("1h30m", 5_400_000.0),
        ("1d", 86_400_000.0),
        ("1.5s", 1500.0),
        ("2000", 2000.0),
    ],
)
def test_durations(text: Any, ms: float) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "s", "5 weeks", "-5s", "5s and more", True])
def test_what_is_not_a_duration(text: Any) -> None:
    with pytest.raises(ValueError, match=r"duration|milliseconds"):
        duration_ms(text)


# -- hypothesis: load(save(x)) == x with triggers ---------------------------------------------

_names = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=8)
_durations = st.integers(50, 10**7) | st.sampled_from(["250ms", "30s", "5m", "1h30m", "1d"])
_schedules = st.fixed_dictionaries(
    {"type": st.just("schedule")},
    optional={
        "missed": st.sampled_from(["skip", "once"]),
        "overlap": st.sampled_from(["skip", "queue", "parallel"]),
    },
).flatmap(
    lambda d: st.one_of(
        st.fixed_dictionaries(
            {
                **{k: st.just(v) for k, v in d.items()},
                "cron": st.sampled_from(["0 6 * * *", "*/5 * * * *", "0 0 1 * *", "30 * * * * *"]),
            },
            optional={"timezone": st.sampled_from(["UTC", "Europe/Paris", "America/New_York"])},
        ),
        st.fixed_dictionaries({**{k: st.just(v) for k, v in d.items()}, "interval": _durations}),
    )
)
_webhooks = st.fixed_dictionaries(
    {"type": st.just("webhook"), "path": st.lists(_names, min_size=1, max_size=3).map("/".join)},
    optional={
        "method": st.sampled_from(["POST", "get", "PUT"]),
        "secret": st.sampled_from(["s3cret", "{{ secrets.KEY }}", "yes", "1.0"]),
        "respond": st.sampled_from(["accepted", "result"]),
        "timeout": st.integers(1, 10**6),
        "maxRuns": st.integers(1, 8),
    },
)
_watches = st.fixed_dictionaries(
    {
        "type": st.just("watch"),
        "folder": st.sampled_from(["./inbox", "/data/in", "s3://bucket/in", "memory://x"]),
    },
    optional={
        "glob": st.sampled_from(["*", "*.csv", "**/*.json", "report-?.txt"]),
        "recursive": st.booleans(),
        "pollInterval": _durations,
        "debounce": st.integers(0, 5000) | st.just("1s"),
        "maxQueued": st.integers(0, 100),
    },
)


@st.composite
def triggered_flows(draw: st.DrawFn) -> Flow:
    triggers = draw(st.lists(st.one_of(_schedules, _webhooks, _watches), max_size=4))
    routes = set()
    kept = []
    for i, trigger in enumerate(triggers):
        if trigger["type"] == "webhook":
            route = (trigger.get("method", "POST").upper(), trigger["path"])
            if route in routes:
                continue
            routes.add(route)
        trigger = dict(trigger)
        if draw(st.booleans()):
            trigger["id"] = f"t{i}"
        if draw(st.booleans()):
            trigger["description"] = draw(st.text(max_size=10))
        kept.append(trigger)
    data: dict[str, Any] = {
        "id": draw(_names),
        "name": draw(st.text(max_size=8)),
        "variables": {"path": {"type": "string"}},
        "triggers": kept,
        "nodes": [{"id": "a", "type": "edit-fields", "parameters": {}}],
    }
    return Flow.from_data(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(triggered_flows())
def test_round_trip_property_with_triggers(flow: Flow) -> None:
    text = dumps_flow(flow)
    again = loads_flow(text)
    assert again == flow
    assert [t.to_data() for t in again.triggers] == [t.to_data() for t in flow.triggers]
    assert loads_flow(dumps_flow(again)) == flow
    if again.triggers:  # a loaded flow edited: the spliced text reads back as the edit
        again.triggers[0].enabled = not again.triggers[0].enabled
        again.triggers.pop()
        assert loads_flow(dumps_flow(again)) == again
