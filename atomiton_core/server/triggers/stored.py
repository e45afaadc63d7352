"""The triggers of the stored flows as a server would list them, read from storage alone:
for ``atomiton triggers list --storage`` when no server runs."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from atomiton_core.errors import AtomitonError, FlowLoadError, StorageError
from atomiton_core.flow.models import trigger_id
from atomiton_core.server.triggers.schedules import next_slot
from atomiton_core.server.triggers.state import ActiveTrigger, flow_triggers, read_state

if TYPE_CHECKING:
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["stored_triggers"]


def stored_triggers(storage: FlowStorage) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The triggers of the stored flows as a server would list them before it starts (next
    schedule slot, paused, last fire and run from the state file), and the flows whose
    triggers cannot be read: for ``atomiton triggers list --storage``."""
    saved = read_state(storage)
    out: list[dict[str, Any]] = []
    problems: list[dict[str, str]] = []
    for summary in storage.list():
        try:
            flow = storage.load(summary.id)
        except (FlowLoadError, StorageError) as exc:
            if "triggers" in exc.message:
                problems.append({"flowId": summary.id, "message": exc.message})
            continue
        for index, spec in flow_triggers(flow):
            tid = trigger_id(spec, index)
            trig = ActiveTrigger(flow, index, spec, saved.get(f"{flow.id}/{tid}", {}))
            if spec.type == "schedule" and spec.enabled:
                with contextlib.suppress(ImportError):
                    now = time.time()
                    trig.next_at = next_slot(spec, trig.last_slot or now, now)
            if trig.last_run_id is not None:
                with contextlib.suppress(AtomitonError, OSError, ValueError):
                    record = storage.record(trig.last_run_id)
                    trig.last_run_status = record.status
                    trig.last_run_started_at = record.started_at
            out.append(trig.state())
    return out, problems
