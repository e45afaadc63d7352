"""Schedules: the next slot of a cron expression in its time zone (``cronsim``) or of an
interval's grid, the slots missed while the server was down, and the loop that fires them."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from atomiton_core import wire
from atomiton_core.flow.models import Trigger
from atomiton_core.server.triggers.state import Firing

if TYPE_CHECKING:
    from atomiton_core.server.triggers.engine import TriggerEngine
    from atomiton_core.server.triggers.state import ActiveTrigger

__all__ = ["MISSED_COUNTED", "next_slot", "run_schedule"]

_log = logging.getLogger("atomiton.triggers")

#: Missed slots counted at most, at start (a cron every second, down for a week).
MISSED_COUNTED = 100_000


def _tz(name: str | None) -> Any:
    from datetime import UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(name) if name else UTC


def next_slot(spec: Trigger, anchor: float, after: float) -> float:
    """A schedule's first slot strictly after ``after`` (epoch seconds): the next cron time in
    its time zone, or the next point of the interval's grid through ``anchor``."""
    interval = spec.interval_ms
    if interval is not None:
        step = interval / 1000
        k = math.floor((after - anchor) / step) + 1
        slot = anchor + k * step
        return slot if slot > after else slot + step
    assert spec.cron is not None
    try:
        from cronsim import CronSim
    except ImportError as exc:
        raise ImportError(
            "cron schedules need cronsim: pip install 'atomiton-core[server]'"
        ) from exc
    from datetime import datetime

    start = datetime.fromtimestamp(after, _tz(spec.timezone))
    return float(next(CronSim(spec.cron, start)).timestamp())


def _missed(spec: Trigger, last: float, now: float) -> tuple[int, float | None]:
    """How many slots came between ``last`` and ``now``, and the latest of them."""
    count, latest, slot = 0, None, last
    while count < MISSED_COUNTED:
        slot = next_slot(spec, last, slot)
        if slot > now:
            break
        count, latest = count + 1, slot
    return count, latest


async def _sleep_until(when: float) -> None:
    """Sleep until the wall clock says ``when`` (looking again at least every minute, so a
    clock set forward or back is followed)."""
    while (left := when - time.time()) > 0:
        await asyncio.sleep(min(left, 60.0))


async def run_schedule(engine: TriggerEngine, trig: ActiveTrigger, *, startup: bool) -> None:
    spec = trig.spec
    now = time.time()
    anchor = now
    if startup and trig.last_slot is not None:
        anchor = trig.last_slot
        missed, latest = _missed(spec, trig.last_slot, now)
        if missed and latest is not None:
            trig.counts["missed"] += missed
            trig.last_slot = latest
            engine.save_soon()
            if spec.missed == "once" and not trig.paused:
                _log.info(
                    "trigger %s: %d slot(s) missed while the server was down: running once",
                    trig.key,
                    missed,
                )
                detail = {"scheduledFor": wire.iso(latest), "missed": missed}
                await engine.fire(trig, Firing("schedule", dict(spec.inputs), detail))
            else:
                _log.info(
                    "trigger %s: %d slot(s) missed while the server was down, skipped (missed: %s)",
                    trig.key,
                    missed,
                    spec.missed,
                )
    after = now
    while True:
        slot = next_slot(spec, anchor, after)
        trig.next_at = slot
        engine.emit(trig)
        await _sleep_until(slot)
        trig.last_slot = slot
        engine.save_soon()
        if not trig.paused:
            detail = {"scheduledFor": wire.iso(slot)}
            await engine.fire(trig, Firing("schedule", dict(spec.inputs), detail))
        after = max(slot, time.time())
