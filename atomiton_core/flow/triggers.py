"""What a flow's ``triggers`` section says, checked when the flow is read: durations, cron
expressions, time zones, webhook paths.

The model itself is :class:`~atomiton_core.flow.models.Trigger`; ``atomiton serve`` runs the
triggers (:mod:`atomiton_core.server.triggers`). Cron expressions are read by ``cronsim`` (the
``server`` extra) when it is installed; without it only their number of fields is checked
here, and the server checks the rest.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "MIN_INTERVAL_MS",
    "TRIGGER_TYPES",
    "check_cron",
    "check_timezone",
    "check_webhook_path",
    "duration_ms",
]

TRIGGER_TYPES = ("schedule", "webhook", "watch")
#: The shortest interval a schedule may have.
MIN_INTERVAL_MS = 50.0

_UNITS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_HOOK_PATH = re.compile(r"[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*")


def duration_ms(value: Any, what: str = "duration") -> float:
    """A duration as a flow file writes it: a number of milliseconds (as every duration in a
    flow), or a text such as ``250ms``, ``30s``, ``5m``, ``1h30m``, ``1d``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} must be milliseconds or a text such as '30s', got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    try:
        return float(text)
    except ValueError:
        pass
    total, pos = 0.0, 0
    while pos < len(text):
        match = _DURATION.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(
                f"{what} {value!r} is not a duration: give milliseconds (30000) or a text "
                "such as '250ms', '30s', '5m', '1h30m', '1d'"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise ValueError(f"{what} is empty: give milliseconds or a text such as '30s'")
    return total


def check_cron(expression: str) -> None:
    """Refuse what is not a cron expression: five fields (minute hour day month weekday), or
    six with seconds first."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron {expression!r} has {len(fields)} field(s): give five (minute hour "
            "day-of-month month day-of-week, e.g. '0 6 * * 1-5') or six (seconds first)"
        )
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:  # the server, which needs it to run the schedule, checks it then
        return
    from datetime import UTC, datetime

    try:
        CronSim(expression, datetime.now(UTC))
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"cron {expression!r} is not a valid expression: {exc}") from None


def check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {name!r} is not known: give an IANA name such as 'Europe/Paris', "
            "'America/New_York' or 'UTC'"
        ) from None


def check_webhook_path(path: str) -> str:
    """The path under ``/api/hooks/`` (a leading ``/`` is allowed), or ValueError."""
    bare = path.strip("/")
    if not _HOOK_PATH.fullmatch(bare) or any(part in (".", "..") for part in bare.split("/")):
        raise ValueError(
            f"webhook path {path!r}: give segments of letters, digits, '.', '_', '~' or '-' "
            "separated by '/' (such as 'orders/new'), without '..'"
        )
    return bare
