"""Recorded runs as regression tests: :func:`assert_replays` replays a run kept in a storage
(see atomiton_core.conductor.replay) and fails naming every node whose outputs differ.

A team keeps a storage folder of recorded runs beside its tests (``record="full"``, the
default, writes them) and replays them in CI::

    def test_the_order_report_still_gives_what_it_gave(atomiton_replay):
        atomiton_replay("tests/recorded", "4f1c…", flow="flows/order-report.flow.yaml")
"""

from __future__ import annotations

import os
from typing import Any

from atomiton_core.conductor.conductor import FlowLike, create_conductor
from atomiton_core.conductor.replay import ReplayReport

__all__ = ["assert_replays"]


def assert_replays(
    storage: str | os.PathLike[str],
    run_id: str,
    flow: FlowLike | None = None,
    *,
    plugins: Any = (),
) -> ReplayReport:
    """Replay ``run_id`` from ``storage`` (with the installed node types and ``plugins``);
    AssertionError listing the differences if there are any, else the report."""
    with create_conductor(storage, plugins=plugins) as conductor:
        report = conductor.replay(run_id, flow)
    if not report.ok:
        raise AssertionError(report.summary())
    return report
