"""Triggers: flows that start themselves while ``atomiton serve`` runs.

A flow declares its triggers (``triggers:`` in its file, :class:`~atomiton_core.flow.models.
Trigger`); the :class:`TriggerEngine` runs those of every stored flow:

- ``schedule``: a cron expression (five fields, or six with seconds first) in a time zone,
  read by ``cronsim``; or an interval, on a grid anchored at the last slot;
- ``webhook``: a route under ``/api/hooks/<path>``. Its request must carry the bearer token,
  as the rest of the API, unless the trigger is ``public``; a ``secret`` (text, or
  ``{{ secrets.NAME }}`` looked up through the conductor's secret providers) makes it check
  ``X-Signature-256: sha256=<hex HMAC-SHA256 of the body>`` (401 when wrong or missing);
- ``watch``: a local folder, watched by ``watchfiles`` (each file fires once it has been left
  alone for ``debounce``), or any other fsspec URL, listed every ``pollInterval``.

Saving or deleting a flow through the server's storage (``flow.saved`` / ``flow.deleted``)
updates its triggers at once; files changed behind its back (another process's save) are
seen within :data:`RESCAN_S`. A trigger whose definition did not change keeps running as it
was.

Every run a trigger starts is an ordinary run: tracked by the event hub, recorded in storage,
its record's header saying what started it (``"trigger": {flowId, id, type, firedAt,
...}``, :attr:`~atomiton_core.storage.runs.RunRecord.trigger`). What a trigger keeps of its
own is only what no run record can say: when its schedule last came round, its last run's
id, and whether it is paused, in ``triggers/state.json`` in storage, so that a restarted
server knows what it missed (``missed: once`` runs it once) and what was paused.

Policies: while a run it started is still going, a trigger skips (``overlap: skip``), queues
(``queue``: one run at a time) or starts another (``parallel``, up to ``maxRuns``, then
queued); at most ``maxQueued`` fires wait. A fire that is skipped or dropped is counted and
logged; a run that cannot start (the flow is invalid, its inputs are refused, the server is
at its limit of running executions) is counted, logged at error level and kept as the
trigger's ``lastError``: nothing is dropped silently. Each change of a trigger's state is
also sent to ``/api/events`` listeners as a ``trigger.updated`` event.

Under ``--safe``, a watched folder must lie under an ``--allow-root``.

The modules: :mod:`.state` (a trigger as the server runs it, its saved state), :mod:`.engine`
(the flows' triggers, firing, policies), :mod:`.schedules`, :mod:`.webhooks`, :mod:`.watches`,
:mod:`.routes` (the API) and :mod:`.stored` (the triggers as storage holds them, no server).
"""

from __future__ import annotations

from atomiton_core.server.triggers.engine import TriggerEngine
from atomiton_core.server.triggers.routes import trigger_routes
from atomiton_core.server.triggers.schedules import next_slot
from atomiton_core.server.triggers.state import HOOKS_PREFIX, ActiveTrigger, Firing, Outcome
from atomiton_core.server.triggers.stored import stored_triggers
from atomiton_core.server.triggers.webhooks import sign

__all__ = [
    "HOOKS_PREFIX",
    "ActiveTrigger",
    "Firing",
    "Outcome",
    "TriggerEngine",
    "next_slot",
    "sign",
    "stored_triggers",
    "trigger_routes",
]
