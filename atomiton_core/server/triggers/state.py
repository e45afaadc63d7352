"""A trigger as the server runs it (:class:`ActiveTrigger`), what fires it (:class:`Firing`),
what became of a fire (:class:`Outcome`), and the state file that outlives the server
(``triggers/state.json`` in storage: each trigger's last slot, last fire and run, paused)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atomiton_core import wire
from atomiton_core.errors import AtomitonError
from atomiton_core.flow.models import Flow, Trigger, trigger_id

if TYPE_CHECKING:
    from atomiton_core.conductor.conductor import Execution
    from atomiton_core.storage.flows import FlowStorage

__all__ = [
    "HOOKS_PREFIX",
    "SECRET_REFERENCE",
    "STATE_FORMAT",
    "ActiveTrigger",
    "Firing",
    "Outcome",
    "error_entry",
    "flow_triggers",
    "now_iso",
    "read_state",
    "retrieved",
    "state_location",
]

_log = logging.getLogger("atomiton.triggers")

#: Where webhooks are served.
HOOKS_PREFIX = "/api/hooks/"
#: The state file's format.
STATE_FORMAT = 1
#: A secret given as one reference, ``{{ secrets.NAME }}``.
SECRET_REFERENCE = re.compile(
    r"""^\s*\{\{\s*secrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:"([^"]+)"|'([^']+)')\s*\])\s*\}\}\s*$"""
)


def now_iso() -> str | None:
    return wire.iso(time.time())


def error_entry(exc: AtomitonError) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": str(exc.code), "message": exc.message, "at": now_iso()}
    if exc.hint:
        entry["hint"] = exc.hint
    return entry


@dataclass
class Firing:
    """One reason to start a run: a schedule's slot, a request, a file, a manual fire."""

    #: "schedule", "webhook", "watch" or "manual".
    source: str
    inputs: dict[str, Any]
    #: What the run record's ``trigger`` adds (the slot, the file, the request's route).
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    #: For a fire that waits in the queue: its execution once it starts (or the error).
    started: asyncio.Future[Execution] | None = None


@dataclass
class Outcome:
    """What became of a fire: "started" (``execution``), "queued" (``position``),
    "skipped" (``reason``) or "failed" (``error``: the run could not start)."""

    status: str
    execution: Execution | None = None
    reason: str | None = None
    error: AtomitonError | None = None
    position: int | None = None
    firing: Firing | None = None


class ActiveTrigger:
    """One trigger of one stored flow, as the server runs it."""

    def __init__(
        self,
        flow: Flow,
        index: int,
        spec: Trigger,
        saved: Mapping[str, Any],
    ) -> None:
        self.flow_id = flow.id
        self.index = index
        self.id = trigger_id(spec, index)
        self.key = f"{flow.id}/{self.id}"
        self.spec = spec
        #: The flow's variables (a webhook hands a request's values only to these).
        self.variables: frozenset[str] = frozenset(flow.variables)
        self.paused = bool(saved.get("paused", False))
        #: The schedule's last slot (fired, skipped or paused through).
        self.last_slot: float | None = _number(saved.get("lastSlot"))
        self.last_fire_at: float | None = _number(saved.get("lastFireAt"))
        self.last_run_id: str | None = _text(saved.get("lastRunId"))
        #: The last run's status and start, from the hub or its run record.
        self.last_run_status: str | None = None
        self.last_run_started_at: float | None = None
        self.next_at: float | None = None
        self.running: dict[str, Execution] = {}
        #: Fires between "may start" and "started" (planning the flow).
        self.starting = 0
        self.queue: deque[Firing] = deque()
        self.counts = {"fired": 0, "started": 0, "queued": 0, "skipped": 0, "failed": 0}
        self.counts["missed"] = 0
        self.last_error: dict[str, Any] | None = None
        #: Why it does not run at all (a refused folder, a webhook route taken...).
        self.problem: str | None = None
        self.task: asyncio.Task[None] | None = None
        #: Set to stop its watcher's thread (watchfiles polls it).
        self.stop_event = threading.Event()
        self.stopped = False
        #: A watch: its watcher is armed (a file landing from now on is seen).
        self.watching = False

    def __repr__(self) -> str:
        return f"<ActiveTrigger {self.key} {self.spec.type}>"

    @property
    def limit(self) -> int:
        """How many of its runs may go on at once."""
        return self.spec.max_runs if self.spec.policy == "parallel" else 1

    @property
    def queue_bound(self) -> int:
        return 0 if self.spec.policy == "skip" else self.spec.max_queued

    @property
    def busy(self) -> int:
        return len(self.running) + self.starting

    @property
    def status(self) -> str:
        if not self.spec.enabled:
            return "disabled"
        if self.problem is not None:
            return "error"
        return "paused" if self.paused else "active"

    def saved(self) -> dict[str, Any]:
        """What the state file keeps of it."""
        return {
            "lastSlot": self.last_slot,
            "lastFireAt": self.last_fire_at,
            "lastRunId": self.last_run_id,
            "paused": self.paused,
        }

    def state(self) -> dict[str, Any]:
        """What the API shows of it."""
        spec = self.spec
        last_run = None
        if self.last_run_id is not None:
            last_run = {
                "executionId": self.last_run_id,
                "status": self.last_run_status,
                "startedAt": wire.iso(self.last_run_started_at),
            }
        out: dict[str, Any] = {
            "key": self.key,
            "flowId": self.flow_id,
            "id": self.id,
            "type": spec.type,
            "when": spec.describe(),
            "description": spec.description,
            "enabled": spec.enabled,
            "paused": self.paused,
            "status": self.status,
            "problem": self.problem,
            "overlap": spec.policy,
            "maxRuns": self.limit,
            "maxQueued": self.queue_bound,
            "nextFireAt": wire.iso(self.next_at) if spec.type == "schedule" else None,
            "lastFireAt": wire.iso(self.last_fire_at),
            "lastRun": last_run,
            "running": sorted(self.running),
            "queued": len(self.queue),
            "counts": dict(self.counts),
            "lastError": self.last_error,
            "spec": _shown_spec(spec),
        }
        if spec.type == "schedule":
            out["missed"] = spec.missed
        if spec.type == "watch":
            out["watching"] = self.watching
        if spec.type == "webhook":
            out["url"] = HOOKS_PREFIX + (spec.hook_path or "")
            out["method"] = spec.method.upper()
            out["public"] = spec.public
            out["signed"] = bool(spec.secret)
        return out


def _shown_spec(spec: Trigger) -> dict[str, Any]:
    """The trigger as its flow declares it, a literal secret masked (a reference shown)."""
    data = spec.to_data()
    secret = data.get("secret")
    if isinstance(secret, str) and not SECRET_REFERENCE.match(secret):
        data["secret"] = "***"
    return data


def retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def state_location(storage: FlowStorage) -> str:
    return storage.flow_location("state").rsplit("/", 2)[0] + "/triggers/state.json"


def read_state(storage: FlowStorage) -> dict[str, dict[str, Any]]:
    location = state_location(storage)
    try:
        with storage.fs.open(location, "rb") as fh:
            data = json.loads(fh.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _log.error("trigger state %s cannot be read (%s): starting afresh", location, exc)
        return {}
    triggers = data.get("triggers") if isinstance(data, dict) else None
    if not isinstance(triggers, dict):
        return {}
    return {str(k): v for k, v in triggers.items() if isinstance(v, dict)}


def flow_triggers(flow: Flow) -> list[tuple[int, Trigger]]:
    return list(enumerate(flow.triggers))
