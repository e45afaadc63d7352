"""``atomiton runs`` and ``atomiton cache``: the history of executions and the output cache kept
in storage (see atomiton_core.storage.runs and atomiton_core.storage.cache).

As in :mod:`atomiton_core.cli.main`, the storage, the engine and rich are imported by the
commands, not when they are defined.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from atomiton_core.cli.main import (
    _STATUS_STYLE,
    EXIT_FAILED,
    _escape,
    _fail,
    _fail_on,
    storage_option,
)

if TYPE_CHECKING:
    from rich.console import Console

    from atomiton_core.storage.flows import FlowStorage
    from atomiton_core.storage.runs import RunRecord

#: How often ``runs logs --follow`` looks for new lines.
FOLLOW_POLL_S = 0.2


def _storage(url: str | None) -> FlowStorage:
    from atomiton_core.errors import AtomitonError
    from atomiton_core.storage.flows import create_storage

    try:
        return create_storage(url)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)


def _record(store: FlowStorage, execution_id: str) -> RunRecord:
    from atomiton_core.errors import AtomitonError

    try:
        return store.record(execution_id)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)


def _when(epoch: Any) -> str:
    from datetime import datetime

    if not isinstance(epoch, int | float):
        return ""
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value:.1f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def _console() -> Console:
    """Tables at the terminal's width; piped, wide enough that ids and statuses never fold."""
    from rich.console import Console

    return Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 160)


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status, "")
    return f"[{style}]{_escape(status)}[/]" if style else _escape(status)


@click.group()
def runs() -> None:
    """Past executions: list, show, logs, stats, delete, prune."""


@runs.command("list")
@click.option("--flow", "flow_id", default=None, metavar="ID", help="Only runs of this flow.")
@click.option("--status", default=None, help="Only runs in this status (failed, interrupted...).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many.")
@click.option(
    "--before",
    default=None,
    metavar="RUN",
    help="Only runs that started before this one (the last of the previous page).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@storage_option
def runs_list(
    flow_id: str | None,
    status: str | None,
    limit: int | None,
    before: str | None,
    as_json: bool,
    storage: str | None,
) -> None:
    """List stored runs, newest first."""
    from rich.table import Table

    from atomiton_core.errors import AtomitonError

    store = _storage(storage)
    try:
        found = store.runs(flow_id=flow_id, status=status, limit=limit, before=before)
    except AtomitonError as exc:  # --before a run that is not there
        _fail(str(exc), EXIT_FAILED)
    if as_json:
        click.echo(json.dumps([r.summary() for r in found], indent=2))
        return
    table = Table(title=f"{len(found)} runs in {_escape(store.url)}", title_justify="left")
    table.add_column("execution", no_wrap=True)
    for column in ("flow", "status", "started", "duration", "nodes", "error"):
        table.add_column(column, overflow="fold")
    for record in found:
        s = record.summary()
        table.add_row(
            _escape(s["executionId"]),
            _escape(s["flowId"]),
            _status(s["status"]),
            _when(record.started_at),
            _ms(s["durationMs"]),
            str(s["nodes"]),
            _escape(s["error"] or ""),
        )
    _console().print(table)


@runs.command("show")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@storage_option
def runs_show(execution_id: str, as_json: bool, storage: str | None) -> None:
    """Show one run: its status and a table of its nodes."""
    from rich.table import Table

    store = _storage(storage)
    record = _record(store, execution_id)
    if as_json:
        click.echo(json.dumps(record.data, indent=2, default=str))
        return
    data = record.data
    console = _console()
    console.print(
        f"run {_escape(execution_id)} of flow {_escape(record.flow_id)}: "
        f"{_status(record.status)}, started {_when(record.started_at)}, "
        f"{_ms(data.get('durationMs')) or 'still going'}"
    )
    if data.get("resumedFrom"):
        console.print(f"resumed from {_escape(str(data['resumedFrom']))}")
    error = data.get("error")
    if isinstance(error, dict):
        console.print(
            f"[red]{_escape(str(error.get('code')))}: {_escape(str(error.get('message')))}[/]"
        )
        if error.get("hint"):
            console.print(f"hint: {_escape(str(error['hint']))}")
    table = Table(title_justify="left")
    for column in ("node", "type", "status", "attempts", "duration", "detail"):
        table.add_column(column, overflow="fold")
    for path, entry in record.nodes.items():
        status = str(entry.get("status", ""))
        detail = ""
        if entry.get("resumedFrom"):
            status, detail = "resumed", f"from {entry['resumedFrom']}"
        elif isinstance(entry.get("error"), dict):
            detail = str(entry["error"].get("message", ""))
        elif entry.get("reason"):
            detail = str(entry["reason"])
        table.add_row(
            _escape(path),
            _escape(str(entry.get("nodeType", ""))),
            _status(status),
            str(entry.get("attempts", "")),
            _ms(entry.get("durationMs")),
            _escape(detail),
        )
    console.print(table)


def _describe(event: dict[str, Any]) -> str:
    kind = str(event.get("type", "?"))
    parts = [_when(event.get("t")), kind]
    if "path" in event:
        parts.append(str(event["path"]))
    if isinstance(event.get("attempt"), int) and kind == "node.started":
        parts.append(f"attempt {event['attempt']}")
    if isinstance(event.get("durationMs"), int | float):
        parts.append(_ms(event["durationMs"]))
    if "fraction" in event:
        parts.append(f"{float(event['fraction']):.0%} {event.get('message') or ''}".strip())
    if event.get("resumedFrom"):
        parts.append(f"resumed from {event['resumedFrom']}")
    error = event.get("error")
    if isinstance(error, dict):
        parts.append(f"{error.get('code')}: {error.get('message')}")
    if event.get("reason"):
        parts.append(str(event["reason"]))
    return "  ".join(p for p in parts if p)


@runs.command("logs")
@click.argument("execution_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@storage_option
def runs_logs(execution_id: str, follow: bool, as_json: bool, storage: str | None) -> None:
    """Print a run's log: its events in order."""
    from atomiton_core.storage.runs import read_events_after

    store = _storage(storage)
    record = _record(store, execution_id)
    if record.mode != "full":
        _fail(
            f"run {execution_id!r} was recorded without a log (record={record.mode!r})",
            EXIT_FAILED,
        )
    seen = 0  # the log's lines printed so far: each poll decodes only the lines after them
    while True:
        events, lines = read_events_after(store, execution_id, seen)
        for event in events:
            line = json.dumps(event) if as_json else _describe(event)
            click.echo(line)
            if str(event.get("type", "")).startswith("execution.") and event["type"] not in (
                "execution.started",
            ):
                return
        seen = lines
        if not follow:
            return
        if store.record(execution_id).status != "running":  # ended, or its writer died
            for event in read_events_after(store, execution_id, seen)[0]:
                click.echo(json.dumps(event) if as_json else _describe(event))
            return
        sys.stdout.flush()
        time.sleep(FOLLOW_POLL_S)


@runs.command("delete")
@click.argument("execution_ids", nargs=-1, required=True)
@storage_option
def runs_delete(execution_ids: tuple[str, ...], storage: str | None) -> None:
    """Delete runs (their record, log and stored outputs)."""
    from atomiton_core.errors import AtomitonError

    store = _storage(storage)
    for eid in execution_ids:
        try:
            store.delete_run(eid)
        except AtomitonError as exc:
            _fail(str(exc), EXIT_FAILED)
        click.echo(f"deleted {eid}")


@runs.command("prune")
@click.option("--keep", type=click.IntRange(0), required=True, help="How many newest runs stay.")
@storage_option
def runs_prune(keep: int, storage: str | None) -> None:
    """Delete all but the newest runs (runs still going are kept)."""
    store = _storage(storage)
    deleted = store.prune_runs(keep)
    click.echo(f"deleted {deleted} run(s), kept the newest {keep}")


def _fine_ms(value: float | None) -> str:
    """A duration as :func:`_ms` shows it, a fast node's to the microsecond."""
    if value is not None and value < 1:
        return f"{value:.3f} ms"
    return _ms(value)


@runs.command("stats")
@click.argument("flow_id", metavar="FLOW")
@click.option(
    "--last",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    metavar="N",
    help="Over the flow's N newest runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@storage_option
def runs_stats(flow_id: str, last: int, as_json: bool, storage: str | None) -> None:
    """Each node's p50/p95 duration and failure rate over a flow's last runs (FLOW: its id)."""
    from rich.table import Table

    from atomiton_core import wire
    from atomiton_core.errors import AtomitonError, RunNotFound

    store = _storage(storage)
    try:
        stats = store.stats(flow_id, last=last)
    except AtomitonError as exc:
        _fail_on(exc, as_json)
    if not stats.runs:
        _fail_on(
            RunNotFound(
                f"flow {flow_id!r} has no runs in storage {store.url}",
                hint=f"run it (`atomiton run {flow_id} --storage {store.url}`)",
            ),
            as_json,
        )
    if as_json:
        click.echo(json.dumps(wire.dump(stats), indent=2))
        return
    console = _console()
    counts = ", ".join(f"{n} {_status(s)}" for s, n in sorted(stats.statuses.items()))
    console.print(
        f"flow {_escape(flow_id)}: its last {stats.runs} run(s) (--last {last}): {counts}; "
        f"started {_when(stats.since)} to {_when(stats.until)}"
    )
    if stats.finished:
        console.print(f"run duration: p50 {_ms(stats.p50_ms)}, p95 {_ms(stats.p95_ms)}")
    if stats.unfinished:
        console.print(
            f"{stats.unfinished} run(s) still going or interrupted: not in the figures below"
        )
    table = Table(title_justify="left")
    table.add_column("node", overflow="fold")
    table.add_column("type", overflow="fold")
    for column in ("runs", "ran", "p50", "p95", "failed", "cached", "skipped", "attempts"):
        table.add_column(column, justify="right", no_wrap=True)
    for node in stats.nodes:
        rate = (
            f"{node.failure_rate:.0%} ({node.failed}/{node.ran})"
            if node.failure_rate is not None
            else ""
        )
        table.add_row(
            _escape(node.node),
            _escape(node.node_type),
            str(node.runs),
            str(node.ran),
            _fine_ms(node.p50_ms),
            _fine_ms(node.p95_ms),
            f"[bold red]{rate}[/]" if node.failed else rate,
            str(node.cached),
            str(node.skipped),
            f"{node.mean_attempts:.2f}" if node.mean_attempts is not None else "",
        )
    console.print(table)
    console.print(
        "p50/p95: nearest-rank percentiles of the times a node ran (completed or failed); "
        "failed: of those times"
    )


@click.group()
def cache() -> None:
    """The output cache in storage: list, clear."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@storage_option
def cache_list(as_json: bool, storage: str | None) -> None:
    """List cache entries, newest first."""
    from rich.table import Table

    from atomiton_core.storage.cache import CacheStore

    entries = CacheStore(_storage(storage)).entries()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    table = Table(title=f"{len(entries)} cache entries", title_justify="left")
    table.add_column("key", no_wrap=True)
    for column in ("node type", "version", "stored by run", "created", "bytes"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            _escape(e["key"]),
            _escape(e["nodeType"]),
            _escape(e["typeVersion"]),
            _escape(e["executionId"]),
            _when(e["createdAt"]),
            str(e["bytes"]),
        )
    _console().print(table)


@cache.command("clear")
@click.option("--type", "node_type", default=None, metavar="TYPE", help="Only this node type's.")
@storage_option
def cache_clear(node_type: str | None, storage: str | None) -> None:
    """Delete cache entries (all, or one node type's)."""
    from atomiton_core.storage.cache import CacheStore

    deleted = CacheStore(_storage(storage)).clear(node_type)
    click.echo(f"deleted {deleted} cache entr{'y' if deleted == 1 else 'ies'}")


@click.command()
@click.argument("run_id")
@click.option("--flow", "flow", default=None, metavar="FILE", help="The flow as it is now.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@storage_option
def replay(run_id: str, flow: str | None, as_json: bool, storage: str | None) -> None:
    """Replay a recorded run: nodes that are not pure are answered from the recording, the
    rest run; every node whose outputs now differ is named (exit 1 if any)."""
    from atomiton_core.conductor.conductor import create_conductor
    from atomiton_core.errors import AtomitonError

    try:
        conductor = create_conductor(storage)
        report = conductor.replay(run_id, flow)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    conductor.close()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "recordedId": report.recorded_id,
                    "executionId": report.result.execution_id,
                    "ok": report.ok,
                    "answered": report.answered,
                    "differences": [
                        {"path": d.path, "ports": d.ports, "why": d.why} for d in report.differences
                    ],
                },
                indent=2,
            )
        )
    else:
        click.echo(report.summary())
    sys.exit(0 if report.ok else EXIT_FAILED)
