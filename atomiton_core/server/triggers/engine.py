"""The trigger engine: the triggers of every stored flow, kept in step with storage, and their
fires turned into runs under each trigger's overlap policy (see the package's notes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from atomiton_core import wire
from atomiton_core.conductor.runlog import triggered_by
from atomiton_core.errors import (
    AtomitonError,
    ExecutionConflict,
    FlowLoadError,
    FlowNotFound,
    RouteNotFound,
    StorageError,
    TooManyExecutions,
)
from atomiton_core.files import atomic_write_text
from atomiton_core.flow.models import Flow, trigger_id
from atomiton_core.server.triggers import schedules, watches, webhooks
from atomiton_core.server.triggers.state import (
    HOOKS_PREFIX,
    SECRET_REFERENCE,
    STATE_FORMAT,
    ActiveTrigger,
    Firing,
    Outcome,
    error_entry,
    flow_triggers,
    now_iso,
    read_state,
    retrieved,
    state_location,
)
from atomiton_core.storage.flows import FLOW_SUFFIX
from atomiton_core.storage.runs import new_run_id

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Scope

    from atomiton_core.conductor.conductor import Conductor, Execution
    from atomiton_core.server.events import EventHub
    from atomiton_core.server.plans import PlanCache
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["RELOAD_WAIT_S", "RESCAN_S", "SAVE_DELAY_S", "TriggerEngine"]

_log = logging.getLogger("atomiton.triggers")

#: How often the flows folder is listed for changes made behind the server's back (seconds).
RESCAN_S = 10.0
#: How long a request waits for the reloads under way (a flow just saved) at most.
RELOAD_WAIT_S = 10.0
#: How long after a change the trigger state is written (changes in between are joined).
SAVE_DELAY_S = 0.2


class TriggerEngine:
    """Runs the triggers of every flow in one conductor's storage (see the package's notes).

    ``plans``: the server's plan cache (a fire runs the stored flow as it is then);
    ``max_running``: the server's bound on running executions, which triggered runs count
    against too; ``read_body``: reads a request's body within the server's size limit.
    """

    def __init__(
        self,
        conductor: Conductor,
        hub: EventHub,
        plans: PlanCache,
        *,
        max_running: int = 256,
        read_body: Callable[[Request], Awaitable[bytes]] | None = None,
        rescan_s: float = RESCAN_S,
    ) -> None:
        self.conductor = conductor
        self.hub = hub
        self.plans = plans
        self.max_running = max_running
        self.read_body = read_body
        self.rescan_s = rescan_s
        #: Every trigger, by key (``<flow id>/<trigger id>``).
        self.triggers: dict[str, ActiveTrigger] = {}
        #: Webhook routes: (method, path under /api/hooks/) -> trigger.
        self.hooks: dict[tuple[str, str], ActiveTrigger] = {}
        #: Flows whose triggers cannot be read: flow id -> why.
        self.problems: dict[str, str] = {}
        #: The state file's entries, by key (kept for flows that cannot be read for now).
        self.saved: dict[str, dict[str, Any]] = {}
        self._signatures: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock: asyncio.Lock | None = None
        self._save_handle: asyncio.TimerHandle | None = None
        self._saving: asyncio.Task[None] | None = None
        self._dirty = False
        self._rescan: asyncio.Task[None] | None = None
        #: Reloads under way (a flow just saved): requests for what they bring wait for them.
        self._reloads: set[asyncio.Task[Any]] = set()
        self.running = False
        hub.on_flow_change.append(self.flow_changed)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the state file and every stored flow's triggers, and start them."""
        storage = self.conductor.storage
        self._lock = asyncio.Lock()
        self.running = True
        if storage is None:
            return
        self.saved = await asyncio.to_thread(read_state, storage)
        flows, self._signatures = await asyncio.to_thread(self._read_all, storage)
        async with self._lock:
            for flow_id, flow in flows.items():
                if isinstance(flow, Flow):
                    self._apply(flow_id, flow, startup=True)
        await self._read_last_runs(list(self.triggers.values()))
        self._rescan = self.spawn(self._rescan_loop())

    async def stop(self) -> None:
        """Stop every trigger (runs going on are the hub's to cancel) and write the state."""
        self.running = False
        if self._rescan is not None:
            self._rescan.cancel()
        for trig in list(self.triggers.values()):
            self._stop(trig)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._saving is not None:
            with contextlib.suppress(Exception):
                await self._saving
        if self._dirty:
            await self._write_state()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            _log.error("a trigger task failed: %s", exc, exc_info=exc)

    # -- flows -----------------------------------------------------------------------------
    def _read_all(self, storage: FlowStorage) -> tuple[dict[str, Flow | None], dict[str, Any]]:
        flows: dict[str, Flow | None] = {}
        signatures = self._flow_signatures(storage)
        for flow_id in signatures:
            flow = self._load(storage, flow_id)
            flows[flow_id] = flow if isinstance(flow, Flow) else None
        return flows, signatures

    def _load(self, storage: FlowStorage, flow_id: str) -> Flow | AtomitonError | None:
        """The stored flow; None if it is gone; the error if it cannot be read (said in
        ``problems`` when its triggers are what is wrong)."""
        try:
            flow = storage.load(flow_id)
        except FlowNotFound:
            self.problems.pop(flow_id, None)
            return None
        except (FlowLoadError, StorageError) as exc:
            if "triggers" in exc.message:
                self.problems[flow_id] = exc.message
                _log.error("flow %s: its triggers cannot be read: %s", flow_id, exc.message)
            else:
                self.problems.pop(flow_id, None)
            return exc
        self.problems.pop(flow_id, None)
        return flow

    @staticmethod
    def _flow_signatures(storage: FlowStorage) -> dict[str, Any]:
        folder = storage.flow_location("x").rsplit("/", 1)[0]
        try:
            entries = storage.fs.ls(folder, detail=True) if storage.fs.exists(folder) else []
        except OSError:
            return {}
        out: dict[str, Any] = {}
        for info in sorted(entries, key=lambda i: str(i["name"])):
            name = str(info["name"]).rsplit("/", 1)[-1]
            if not name.endswith(FLOW_SUFFIX) or name.startswith("."):
                continue
            stamp = info.get("mtime", info.get("LastModified", info.get("created")))
            out[name[: -len(FLOW_SUFFIX)]] = (info.get("size"), str(stamp))
        return out

    def flow_changed(self, flow_id: str) -> None:
        """A stored flow was saved or deleted (the hub calls this in the loop's thread)."""
        if self.running and self.conductor.storage is not None:
            task = self.spawn(self.reload(flow_id))
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def settled(self) -> None:
        """Wait for the reloads under way: a flow saved through this server (its PUT has
        answered) has its triggers in place once this returns."""
        if self._reloads:
            await asyncio.wait(set(self._reloads), timeout=RELOAD_WAIT_S)

    async def reload(self, flow_id: str) -> None:
        """Read a flow's triggers again and apply what changed."""
        storage = self.conductor.storage
        if storage is None or self._lock is None:
            return
        async with self._lock:
            flow = await asyncio.to_thread(self._load, storage, flow_id)
            if not self.running or isinstance(flow, AtomitonError):
                return  # unreadable for now: its triggers go on as they were
            started = self._apply(flow_id, flow, startup=False)
        await self._read_last_runs(started)

    async def _rescan_loop(self) -> None:
        storage = self.conductor.storage
        assert storage is not None
        while True:
            await asyncio.sleep(self.rescan_s)
            now = await asyncio.to_thread(self._flow_signatures, storage)
            known = self._signatures
            changed = {f for f in now.keys() | known.keys() if now.get(f) != known.get(f)}
            self._signatures = now
            for flow_id in sorted(changed):
                await self.reload(flow_id)

    def _apply(self, flow_id: str, flow: Flow | None, *, startup: bool) -> list[ActiveTrigger]:
        """Make the running triggers of ``flow_id`` those of ``flow`` (None: none): an
        unchanged trigger goes on, a changed one starts again; returns the new ones."""
        current = {t.id: t for t in self.triggers.values() if t.flow_id == flow_id}
        wanted = flow_triggers(flow) if flow is not None else []
        new: list[ActiveTrigger] = []
        kept: set[str] = set()
        for index, spec in wanted:
            tid = trigger_id(spec, index)
            old = current.get(tid)
            if old is not None and old.spec.to_data() == spec.to_data():
                assert flow is not None
                old.variables = frozenset(flow.variables)
                kept.add(tid)
                continue
            if old is not None:
                self._stop(old)
                self._remember(old)
            assert flow is not None
            trig = ActiveTrigger(flow, index, spec, self.saved.get(f"{flow_id}/{tid}", {}))
            if old is not None:
                trig.counts = old.counts
                trig.last_run_status, trig.last_run_started_at = (
                    old.last_run_status,
                    old.last_run_started_at,
                )
            self.triggers[trig.key] = trig
            kept.add(tid)
            new.append(trig)
        for tid, old in current.items():
            if tid not in kept:
                self._stop(old)
                del self.triggers[old.key]
                self.saved.pop(old.key, None)
                self._dirty = True
                self.emit_removed(old)
        for trig in new:
            self._begin(trig, startup=startup)
        if len(kept) != len(current) or new:
            self._claim_free_routes()
        if new or len(kept) != len(current):
            self.save_soon()
        return new

    def _begin(self, trig: ActiveTrigger, *, startup: bool) -> None:
        spec = trig.spec
        if not spec.enabled:
            self.emit(trig)
            return
        if spec.type == "webhook":
            route = (spec.method.upper(), spec.hook_path or "")
            holder = self.hooks.get(route)
            if holder is not None and holder.key in self.triggers and holder is not trig:
                trig.problem = (
                    f"{route[0]} {HOOKS_PREFIX}{route[1]} is already trigger {holder.key}'s; "
                    "give this one another path"
                )
                _log.error("trigger %s: %s", trig.key, trig.problem)
            else:
                self.hooks[route] = trig
                if spec.secret and "{{" in spec.secret and not SECRET_REFERENCE.match(spec.secret):
                    trig.problem = (
                        "its secret is neither a text nor one reference {{ secrets.NAME }}"
                    )
        elif spec.type == "schedule":
            trig.task = self.spawn(schedules.run_schedule(self, trig, startup=startup))
        else:
            trig.task = self.spawn(watches.run_watch(self, trig))
        self.emit(trig)

    def _claim_free_routes(self) -> None:
        """A webhook refused for a route another trigger held takes it once that one is gone."""
        for trig in self.triggers.values():
            spec = trig.spec
            if spec.type != "webhook" or trig.problem is None or not spec.enabled:
                continue
            route = (spec.method.upper(), spec.hook_path or "")
            if route not in self.hooks and "is already trigger" in trig.problem:
                self.hooks[route] = trig
                trig.problem = None
                self.emit(trig)

    def _stop(self, trig: ActiveTrigger) -> None:
        trig.stopped = True
        trig.stop_event.set()
        if trig.task is not None:
            trig.task.cancel()
        for route, holder in list(self.hooks.items()):
            if holder is trig:
                del self.hooks[route]
        while trig.queue:
            firing = trig.queue.popleft()
            if firing.started is not None and not firing.started.done():
                firing.started.set_exception(
                    ExecutionConflict(f"trigger {trig.key} was stopped before this fire ran")
                )

    def _remember(self, trig: ActiveTrigger) -> None:
        self.saved[trig.key] = trig.saved()
        self._dirty = True

    async def _read_last_runs(self, triggers: Iterable[ActiveTrigger]) -> None:
        """Fill in each trigger's last run (status, start) from the hub or its run record."""
        storage = self.conductor.storage
        for trig in triggers:
            eid = trig.last_run_id
            if eid is None or trig.last_run_status is not None:
                continue
            record = self.hub.get(eid)
            if record is not None:
                trig.last_run_status = record.status
                continue
            if storage is None:
                continue
            try:
                stored = await asyncio.to_thread(storage.record, eid)
            except (AtomitonError, OSError, ValueError):
                trig.last_run_status = "unknown"
                continue
            trig.last_run_status, trig.last_run_started_at = stored.status, stored.started_at
            self.emit(trig)

    # -- state -----------------------------------------------------------------------------
    def save_soon(self) -> None:
        self._dirty = True
        if self._save_handle is None and self.running:
            loop = asyncio.get_running_loop()
            self._save_handle = loop.call_later(SAVE_DELAY_S, self._save_due)

    def _save_due(self) -> None:
        self._save_handle = None
        if self._saving is not None and not self._saving.done():
            self.save_soon()  # one write at a time: this one after it
            return
        self._saving = self.spawn(self._write_state())

    async def _write_state(self) -> None:
        storage = self.conductor.storage
        if storage is None:
            return
        self._dirty = False
        for trig in self.triggers.values():
            self.saved[trig.key] = trig.saved()
        text = json.dumps({"format": STATE_FORMAT, "triggers": self.saved}, indent=1)
        location = state_location(storage)
        try:
            await asyncio.to_thread(atomic_write_text, location, text, fs=storage.fs)
        except OSError as exc:
            _log.error("trigger state could not be written to %s: %s", location, exc)

    def emit(self, trig: ActiveTrigger) -> None:
        """Tell ``/api/events`` listeners the trigger's state."""
        if not self.hub.global_subscribers:
            return
        event = {
            "type": "trigger.updated",
            "flowId": trig.flow_id,
            "triggerId": trig.id,
            "timestamp": now_iso(),
            "trigger": trig.state(),
        }
        self.hub._fan_out(json.dumps(event, default=str))

    def emit_removed(self, trig: ActiveTrigger) -> None:
        if not self.hub.global_subscribers:
            return
        event = {
            "type": "trigger.removed",
            "flowId": trig.flow_id,
            "triggerId": trig.id,
            "timestamp": now_iso(),
        }
        self.hub._fan_out(json.dumps(event))

    # -- what the API asks -----------------------------------------------------------------
    def states(self, flow_id: str | None = None) -> list[dict[str, Any]]:
        self.refresh_last_runs()
        return [
            t.state()
            for t in sorted(self.triggers.values(), key=lambda t: (t.flow_id, t.index))
            if flow_id is None or t.flow_id == flow_id
        ]

    def problem_list(self, flow_id: str | None = None) -> list[dict[str, str]]:
        return [
            {"flowId": f, "message": m}
            for f, m in sorted(self.problems.items())
            if flow_id is None or f == flow_id
        ]

    def refresh_last_runs(self) -> None:
        for trig in self.triggers.values():
            if trig.last_run_id is not None and trig.last_run_status == "running":
                record = self.hub.get(trig.last_run_id)
                if record is not None:
                    trig.last_run_status = record.status

    def get(self, flow_id: str, trig_id: str) -> ActiveTrigger:
        trig = self.triggers.get(f"{flow_id}/{trig_id}")
        if trig is None:
            known = sorted(t.id for t in self.triggers.values() if t.flow_id == flow_id)
            hint = (
                f"flow {flow_id!r} has the triggers {', '.join(known)}"
                if known
                else "GET /api/triggers lists the triggers (`atomiton triggers list`)"
            )
            raise RouteNotFound(f"no trigger {trig_id!r} of flow {flow_id!r}", hint=hint)
        return trig

    def pause(self, trig: ActiveTrigger) -> None:
        if not trig.paused:
            trig.paused = True
            _log.info("trigger %s paused", trig.key)
            self.save_soon()
            self.emit(trig)

    def resume(self, trig: ActiveTrigger) -> None:
        if trig.paused:
            trig.paused = False
            _log.info("trigger %s resumed", trig.key)
            self.save_soon()
            self.emit(trig)
            self.spawn(self._drain(trig))

    # -- firing ----------------------------------------------------------------------------
    def _header(self, trig: ActiveTrigger, firing: Firing) -> dict[str, Any]:
        header: dict[str, Any] = {
            "flowId": trig.flow_id,
            "id": trig.id,
            "type": trig.spec.type,
            "firedAt": wire.iso(firing.at),
        }
        if firing.source == "manual":
            header["manual"] = True
        header.update(firing.detail)
        return header

    async def fire(self, trig: ActiveTrigger, firing: Firing) -> Outcome:
        """Start a run for ``firing``, or queue or skip it as the trigger's policy says."""
        trig.counts["fired"] += 1
        trig.last_fire_at = firing.at
        self.save_soon()
        if trig.busy >= trig.limit or (trig.paused and firing.source != "manual"):
            if trig.paused and firing.source != "manual":
                reason = "it is paused"
            elif len(trig.queue) < trig.queue_bound:
                firing.started = asyncio.get_running_loop().create_future()
                # its error is the waiting request's, if one waits; else said by the log
                firing.started.add_done_callback(retrieved)
                trig.queue.append(firing)
                trig.counts["queued"] += 1
                self.emit(trig)
                return Outcome("queued", position=len(trig.queue), firing=firing)
            elif trig.spec.policy == "skip":
                reason = "a run it started is still going (overlap: skip)"
            else:
                reason = (
                    f"{trig.busy} of its runs are going and {len(trig.queue)} waiting, its "
                    f"bounds (maxRuns {trig.limit}, maxQueued {trig.queue_bound})"
                )
            trig.counts["skipped"] += 1
            _log.info("trigger %s: a %s fire was skipped: %s", trig.key, firing.source, reason)
            self.emit(trig)
            return Outcome("skipped", reason=reason, firing=firing)
        return await self._start(trig, firing)

    async def _start(self, trig: ActiveTrigger, firing: Firing) -> Outcome:
        trig.starting += 1
        try:
            plan = await self.plans.plan(trig.flow_id)
            if trig.stopped:
                raise ExecutionConflict(f"trigger {trig.key} was removed before its run began")
            if self.hub.running_count >= self.max_running:
                raise TooManyExecutions(
                    f"{self.max_running} executions are running on this server; the run of "
                    f"trigger {trig.key} was not started",
                    hint="start the server with a higher limit, or make the trigger queue",
                )
            with triggered_by(self._header(trig, firing)):
                execution = self.conductor.start(plan, firing.inputs, execution_id=new_run_id())
        except Exception as exc:
            err = (
                exc
                if isinstance(exc, AtomitonError)
                else AtomitonError(f"{type(exc).__name__}: {exc}")
            )
            trig.counts["failed"] += 1
            trig.last_error = error_entry(err)
            _log.error(
                "trigger %s could not start a run of flow %s: %s",
                trig.key,
                trig.flow_id,
                err,
                exc_info=None if isinstance(exc, AtomitonError) else exc,
            )
            if firing.started is not None and not firing.started.done():
                firing.started.set_exception(err)
            self.emit(trig)
            return Outcome("failed", error=err, firing=firing)
        finally:
            trig.starting -= 1
        self.hub.track(execution)
        eid = execution.execution_id
        trig.running[eid] = execution
        trig.counts["started"] += 1
        trig.last_run_id, trig.last_run_status = eid, "running"
        trig.last_run_started_at = time.time()
        self.save_soon()
        self.spawn(self._follow(trig, execution))
        if firing.started is not None and not firing.started.done():
            firing.started.set_result(execution)
        _log.info("trigger %s started run %s of flow %s", trig.key, eid, trig.flow_id)
        self.emit(trig)
        return Outcome("started", execution=execution, firing=firing)

    async def _follow(self, trig: ActiveTrigger, execution: Execution) -> None:
        eid = execution.execution_id
        try:
            result = await execution.result()
            status = str(result.status)
        finally:
            trig.running.pop(eid, None)
        if trig.last_run_id == eid:
            trig.last_run_status = status
        self.emit(trig)
        await self._drain(trig)

    async def _drain(self, trig: ActiveTrigger) -> None:
        """Start the queued fires there is room for."""
        while trig.queue and trig.busy < trig.limit and not trig.paused and not trig.stopped:
            await self._start(trig, trig.queue.popleft())

    # -- schedules -------------------------------------------------------------------------

    # -- watches ---------------------------------------------------------------------------

    def set_problem(self, trig: ActiveTrigger, problem: str | None) -> None:
        if trig.problem != problem:
            trig.problem = problem
            if problem is not None:
                _log.error("trigger %s: %s", trig.key, problem)
            self.emit(trig)

    # -- webhooks --------------------------------------------------------------------------

    # -- webhooks --------------------------------------------------------------------------
    @property
    def reloading(self) -> bool:
        """Flows are being read again (one just saved)."""
        return bool(self._reloads)

    def is_public(self, scope: Scope) -> bool:
        """Whether a request is for a public webhook (the token gate lets it through)."""
        return webhooks.is_public(self, scope)

    async def handle_webhook(self, request: Request) -> Response:
        """``/api/hooks/<path>`` (see :mod:`.webhooks`)."""
        return await webhooks.handle_webhook(self, request)

    # -- manual fires ----------------------------------------------------------------------
    async def fire_now(self, trig: ActiveTrigger, inputs: Mapping[str, Any]) -> Outcome:
        """Fire a trigger by hand (paused or not), with ``inputs`` under its own."""
        return await self.fire(trig, Firing("manual", {**inputs, **trig.spec.inputs}))
