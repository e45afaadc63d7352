"""Plans of stored flows, kept between requests while their files stay the same.

Starting a stored flow reads its file, parses it, validates it and plans it: about 70 µs for
a one-node flow, and two hand-offs to a worker thread of about 100 µs each, on every
``POST /api/executions``. A plan is made to be run many times, so the server keeps the last
ones, each with the signature of the file it was made from (``os.stat``: inode, size,
modification and change times, in nanoseconds); a request whose file still has that
signature runs the kept plan at once, without leaving the loop.

What makes a plan stale:

- the file changed: any write changes its modification time, a save through any storage
  replaces it (a new inode). A file modified less than :data:`SETTLE_S` before it was read
  is not kept: a second write within the file system's clock tick could leave the same
  signature (the "racily clean" case of git's index);
- this server saved or deleted a flow (``flow.saved`` / ``flow.deleted``): every plan goes,
  since a flow's validation looks at the flows it references;
- flows that run other stored flows (``flow`` nodes) are never kept, as their validity
  depends on files other than their own.

Only local storage is cached (a stat costs about 2 µs there); other file systems always
take the full path, in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atomiton_core.conductor.conductor import Conductor
    from atomiton_core.conductor.plan import FlowPlan, GraphPlan

__all__ = ["SETTLE_S", "PlanCache"]

#: A file modified this recently (seconds) is planned but its plan not kept.
SETTLE_S = 2.0

Signature = tuple[int, int, int, int, int]


def _runs_stored_flows(graph: GraphPlan) -> bool:
    stack = [graph]
    while stack:
        for pn in stack.pop().nodes:
            if pn.type_id == "flow":
                return True
            if pn.children is not None:
                stack.append(pn.children)
    return False


class PlanCache:
    """The plans of the ``size`` stored flows run most recently."""

    def __init__(self, conductor: Conductor, size: int = 128) -> None:
        self.conductor = conductor
        self.size = size
        self._plans: OrderedDict[str, tuple[Signature, FlowPlan]] = OrderedDict()
        storage = conductor.storage
        self.local = False
        if storage is not None:
            from fsspec.implementations.local import LocalFileSystem

            self.local = isinstance(storage.fs, LocalFileSystem)
        self.hits = 0
        self.misses = 0
        #: Counts the clearings: a plan made across one is not kept.
        self._generation = 0

    def clear(self, flow_id: str | None = None) -> None:
        """Forget every plan (a stored flow was saved or deleted: ``flow_id``)."""
        self._plans.clear()
        self._generation += 1

    def _signature(self, flow_id: str) -> tuple[Signature, float] | None:
        storage = self.conductor.storage
        if storage is None or not self.local:
            return None
        try:
            st = os.stat(storage.flow_location(flow_id))
        except (OSError, ValueError):
            return None  # the full path says what is wrong (not found, a bad id...)
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev), st.st_mtime

    def _plan(self, flow_id: str) -> FlowPlan:
        storage = self.conductor.storage
        assert storage is not None
        return self.conductor.prepare(storage.load(flow_id))

    async def plan(self, flow_id: str) -> FlowPlan:
        """The plan of the stored flow ``flow_id``: the kept one while its file is unchanged,
        else loaded and planned in a worker thread (and kept)."""
        seen = self._signature(flow_id)
        if seen is not None:
            kept = self._plans.get(flow_id)
            if kept is not None and kept[0] == seen[0]:
                self._plans.move_to_end(flow_id)
                self.hits += 1
                return kept[1]
        self.misses += 1
        generation = self._generation
        plan = await asyncio.to_thread(self._plan, flow_id)
        if (
            seen is not None
            and generation == self._generation
            and time.time() - seen[1] > SETTLE_S
            and not _runs_stored_flows(plan.root)
        ):
            self._plans[flow_id] = (seen[0], plan)
            self._plans.move_to_end(flow_id)
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return plan
