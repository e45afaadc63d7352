"""The flow each run ran is kept with the runs, once per content digest, and pruned with them."""

from __future__ import annotations

from pathlib import Path

from atomiton_core import create_conductor, loads_flow

FLOW = """
id: kept
name: Kept
nodes:
  - {id: a, type: const, parameters: {value: 1}}
  - {id: b, type: transform, parameters: {operation: map, expression: "item"}}
edges:
  - {source: a, target: b}
"""


def test_each_run_keeps_the_flow_it_ran(tmp_path: Path) -> None:
    with create_conductor(tmp_path / "store") as conductor:
        storage = conductor.storage
        assert storage is not None
        first = conductor.run(loads_flow(FLOW))
        again = conductor.run(loads_flow(FLOW))  # the same digest: one file for both
        changed = loads_flow(FLOW.replace("value: 1", "value: 2"))
        other = conductor.run(changed)
        conductor.log_writer.close()
    digests = {storage.record(r.execution_id).data["flowHash"] for r in (first, again, other)}
    assert len(digests) == 2
    files = sorted(p.name for p in (tmp_path / "store" / "run-flows").iterdir())
    assert files == sorted(f"{d}.json" for d in digests)
    ran = storage.run_flow(storage.record(first.execution_id).data["flowHash"])
    assert ran is not None and ran == loads_flow(FLOW)  # as it ran, edges and all
    assert storage.run_flow("0" * 64) is None


def test_pruning_runs_lets_go_of_the_flows_no_run_ran(tmp_path: Path) -> None:
    with create_conductor(tmp_path / "store") as conductor:
        storage = conductor.storage
        assert storage is not None
        old = conductor.run(loads_flow(FLOW))
        conductor.run(loads_flow(FLOW.replace("value: 1", "value: 2")))
        conductor.log_writer.close()
    old_digest = storage.record(old.execution_id).data["flowHash"]
    assert storage.prune_runs(1) == 1
    left = [p.name for p in (tmp_path / "store" / "run-flows").iterdir()]
    assert len(left) == 1 and f"{old_digest}.json" not in left
