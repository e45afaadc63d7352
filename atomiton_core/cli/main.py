"""The ``atomiton`` command: run, validate, list node types, manage stored flows.

Exit codes of ``run`` and ``validate``: 0 completed / valid, 1 failed or cancelled,
2 the flow is invalid or unreadable.

Defining the commands imports click alone: the engine, rich and asyncio are imported inside
the commands that use them, so ``atomiton --help`` (and a mistyped command) answers at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from atomiton_core import signals
    from atomiton_core.conductor.conductor import Conductor
    from atomiton_core.results import ExecutionResult

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

_STATUS_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "completed": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "interrupted": "bold magenta",
    "cached": "blue",
    "pinned": "blue",
    "resumed": "green",
}
_STATUS_MARK = {
    "completed": "✓",
    "failed": "✗",
    "skipped": "-",
    "cancelled": "⊘",
    "running": "…",
    "pending": " ",
    "interrupted": "✗",
    "cached": "≡",
    "pinned": "≡",
    "resumed": "↺",
}

storage_option = click.option(
    "--storage",
    "storage",
    metavar="URL",
    default=None,
    help="Flow storage: a folder or fsspec URL (default: $ATOMITON_STORAGE or the user data dir).",
)


def _console(**kw: Any) -> Console:
    from rich.console import Console

    return Console(highlight=False, **kw)


def _err_console() -> Console:
    return _console(stderr=True)


def _fail(message: str, code: int) -> None:
    _err_console().print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


def _parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--input")
        try:
            inputs[key] = json.loads(raw)
        except json.JSONDecodeError:
            inputs[key] = raw
    return inputs


def _conductor(
    storage: str | None,
    executor: str = "local",
    process_workers: int | None = None,
    memory_ceiling: float | None = None,
) -> Conductor:
    from atomiton_core.conductor.conductor import create_conductor
    from atomiton_core.errors import AtomitonError

    try:
        return create_conductor(
            storage,
            executor=executor,
            process_workers=process_workers,
            memory_ceiling=memory_ceiling,
        )
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
        raise  # unreachable


def _timing(event: signals.NodeEvent) -> str:
    """A node's wall time, and its CPU time when measured: ``12.3 ms, 10.1 ms CPU``."""
    text = f"{event.duration_ms:.1f} ms"
    if event.cpu_ms is not None:
        text += f", {event.cpu_ms:.1f} ms CPU"
    return text


class _LiveView:
    """A table of node states, redrawn as signals arrive."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.progress = 0.0

    def update(self, event: signals.NodeEvent) -> None:
        row = self.rows.setdefault(event.path, {"type": event.node_type, "detail": ""})
        row["status"] = event.status
        if event.resumed_from is not None:
            row["status"] = "resumed"
            row["detail"] = f"from {event.resumed_from}"
        elif event.type == "node.progress" and event.fraction is not None:
            row["detail"] = f"{event.fraction:.0%} {event.message or ''}".strip()
        elif event.error:
            row["detail"] = event.error.message
        elif event.duration_ms is not None:
            row["detail"] = _timing(event)
        elif event.type == "node.retrying":
            row["detail"] = f"retrying (attempt {event.attempt})"
        self.progress = max(self.progress, event.progress)

    def __rich__(self) -> Table:
        from rich.table import Table

        table = Table(title=f"progress {self.progress:.0%}", title_justify="left", expand=False)
        table.add_column("node")
        table.add_column("type", style="dim")
        table.add_column("status")
        table.add_column("detail", overflow="fold", max_width=60)
        for path, row in self.rows.items():
            status = row.get("status", "pending")
            style = _STATUS_STYLE.get(status, "")
            table.add_row(path, row["type"], f"[{style}]{status}[/]", row["detail"])
        return table


@contextmanager
def _watch(conductor: Conductor, live: bool, quiet: bool) -> Iterator[None]:
    """Show node events: a live table on a terminal, one line per event otherwise."""
    from rich.live import Live

    from atomiton_core import signals

    console = _err_console()
    if quiet:
        yield
        return
    view = _LiveView()

    def on_event(sender: Any, event: signals.NodeEvent) -> None:
        if live:
            view.update(event)
        elif event.type != "node.progress" or event.message:
            mark = _STATUS_MARK.get(event.status, "·")
            detail = ""
            if event.resumed_from is not None:
                mark = _STATUS_MARK["resumed"]
                detail = f" (resumed from {event.resumed_from})"
            elif event.error:
                detail = f" — {event.error.message}"
            elif event.duration_ms is not None and event.type == "node.completed":
                detail = f" ({_timing(event)})"
            elif event.type == "node.progress":
                detail = f" {event.fraction:.0%} {event.message}"
            console.print(
                f"{mark} {event.path} [{event.node_type}] {event.type[5:]}{detail}",
                markup=False,
                highlight=False,
            )

    for sig in signals.NODE_SIGNALS:
        sig.connect(on_event, sender=conductor)
    try:
        if live:
            with Live(view, console=console, refresh_per_second=12, transient=False):
                yield
        else:
            yield
    finally:
        for sig in signals.NODE_SIGNALS:
            sig.disconnect(on_event)


async def _execute_with_signals(
    conductor: Conductor,
    flow: Any,
    inputs: dict[str, Any],
    resume: str | None = None,
    cache: str | None = None,
) -> ExecutionResult:
    import asyncio
    import signal as os_signal

    execution = conductor.start(flow, inputs, resume=resume, cache=cache)
    loop = asyncio.get_running_loop()
    try:
        # Ctrl-C, a kill, a closed terminal: the run is cancelled, so its programs are killed
        for sig in (os_signal.SIGINT, os_signal.SIGTERM, os_signal.SIGHUP):
            loop.add_signal_handler(sig, execution.cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    return await execution.result()


def _print_summary(result: ExecutionResult, console: Console) -> None:
    from atomiton_core import wire

    colour = _STATUS_STYLE.get(str(result.status), "")
    console.print(
        f"[{colour}]{result.status}[/] in {result.duration_ms or 0:.1f} ms "
        f"(execution {result.execution_id})"
    )
    if result.error is not None:
        console.print(f"[red]{result.error.code}: {result.error}[/]", soft_wrap=True)
    if result.outputs:
        console.print_json(json.dumps(wire.jsonable(result.outputs)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atomiton-core", prog_name="atomiton")
def main() -> None:
    """Atomiton: run, validate and manage flows of nodes."""


@main.command()
@click.argument("flow")
@click.argument("pin_nodes", nargs=-1, metavar="[NODE]...")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a flow variable (VALUE is parsed as JSON when it can be). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No per-node progress.")
@click.option(
    "--executor",
    default="local",
    metavar="SPEC",
    help="Where blocking nodes run: local (threads), dask (a new local cluster), "
    "or a Dask scheduler address (tcp://host:8786).",
)
@click.option(
    "--process-workers",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Worker processes for isolated nodes (isolation: process, the code node); "
    "default: one per CPU.",
)
@click.option(
    "--memory-ceiling",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="MB",
    help="Fail the run if this process and its workers use more memory.",
)
@click.option(
    "--resume",
    metavar="RUN_ID",
    default=None,
    help="Resume a stored run: nodes it completed, unchanged since, are not run again.",
)
@click.option(
    "--pin-from",
    metavar="RUN_ID",
    default=None,
    help="Pin the outputs the NODEs had in a stored run into the flow (its file, or the "
    "stored flow), then run it: pinned nodes do not run.",
)
@click.option("--no-cache", is_flag=True, help="Run cached nodes; use and store no cache entry.")
@click.option(
    "--refresh-cache", is_flag=True, help="Run cached nodes and store fresh cache entries."
)
@storage_option
def run(
    flow: str,
    inputs: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    executor: str,
    process_workers: int | None,
    memory_ceiling: float | None,
    resume: str | None,
    pin_nodes: tuple[str, ...],
    pin_from: str | None,
    no_cache: bool,
    refresh_cache: bool,
    storage: str | None,
) -> None:
    """Run FLOW: a flow file, a URL, or the id of a stored flow.

    With ``--pin-from RUN_ID NODE...``, the outputs those nodes had in that run are first
    pinned into the flow (``pins`` in its file, comments kept; or the stored flow).
    """
    import asyncio

    from atomiton_core import wire
    from atomiton_core.errors import AtomitonError, FlowLoadError, FlowValidationError

    if no_cache and refresh_cache:
        _fail("--no-cache and --refresh-cache contradict each other: give one", EXIT_INVALID)
    cache = "off" if no_cache else "refresh" if refresh_cache else None
    conductor = _conductor(storage, executor, process_workers, memory_ceiling)
    if pin_nodes or pin_from:
        _pin(conductor, flow, pin_from, pin_nodes)
    values = _parse_inputs(inputs)
    try:
        plan = conductor.prepare(flow)
    except (FlowValidationError, FlowLoadError) as exc:
        if as_json:
            click.echo(json.dumps({"status": "invalid", "error": wire.dump(exc)}, indent=2))
        _fail(str(exc), EXIT_INVALID)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    live = sys.stderr.isatty() and not as_json
    with _watch(conductor, live=live, quiet=quiet or as_json):
        try:
            result = asyncio.run(_execute_with_signals(conductor, plan, values, resume, cache))
        except AtomitonError as exc:  # the run to resume is not there, or cannot be
            conductor.close()
            _fail(str(exc), EXIT_FAILED)
    conductor.close()
    if as_json:
        click.echo(wire.dumps(result, indent=2))
    else:
        _print_summary(result, _console())
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _pin(conductor: Conductor, flow: str, run_id: str | None, nodes: tuple[str, ...]) -> None:
    """Write the outputs ``nodes`` had in stored run ``run_id`` into the flow as pins."""
    from pathlib import Path

    from atomiton_core.errors import AtomitonError
    from atomiton_core.flow.yaml_io import load_flow, save_flow

    if run_id is None:
        _fail(f"nodes {' '.join(nodes)} are given to pin: give --pin-from RUN_ID", EXIT_INVALID)
    if not nodes:
        _fail("--pin-from needs the ids of the nodes to pin after the flow", EXIT_INVALID)
    store = conductor.storage
    assert store is not None
    path = Path(flow)
    try:
        if path.is_file():
            target = load_flow(str(path))
        elif store.exists(flow):
            target = store.load(flow)
        else:
            _fail(f"{flow!r} is neither a flow file nor a stored flow: no pins written", 1)
        past = store.record(str(run_id)).to_result()
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    pins = dict(target.pins)
    for node_id in nodes:
        res = past.nodes.get(node_id)
        if res is None or str(res.status) not in ("completed", "cached", "pinned"):
            state = "is not in it" if res is None else f"was {res.status} there"
            _fail(f"cannot pin node {node_id!r} from run {run_id}: it {state}", EXIT_FAILED)
            raise  # unreachable
        outputs = res.outputs if isinstance(res.outputs, dict) else {}
        try:
            json.dumps(outputs, allow_nan=False)
        except (TypeError, ValueError) as exc:
            _fail(
                f"cannot pin node {node_id!r}: its outputs are not plain data a flow file "
                f"holds ({exc})",
                EXIT_FAILED,
            )
        pins[node_id] = outputs
    target.pins = pins
    try:
        if path.is_file():
            save_flow(target, str(path))
        else:
            store.save(target)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    _err_console().print(
        f"pinned {', '.join(nodes)} from run {run_id} into {flow}", markup=False, highlight=False
    )


@main.command()
@click.argument("flow")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@storage_option
def validate(flow: str, as_json: bool, storage: str | None) -> None:
    """Check FLOW and report every problem at once."""
    from atomiton_core import wire
    from atomiton_core.errors import AtomitonError, FlowLoadError

    conductor = _conductor(storage)
    try:
        report = conductor.validate(flow)
    except (FlowLoadError, AtomitonError) as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "error": wire.dump(exc)}, indent=2))
        _fail(str(exc), EXIT_INVALID)
    if as_json:
        click.echo(wire.dumps(report, indent=2))
    else:
        _console().print(str(report), markup=False, soft_wrap=True)
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print node types (with schemas) as JSON.")
def nodes(as_json: bool) -> None:
    """List the installed node types and the distribution each came from."""
    from rich.table import Table

    from atomiton_core import wire
    from atomiton_core.conductor.conductor import create_conductor

    conductor = create_conductor("memory://atomiton-cli-nodes", record_runs=False)
    catalogue = conductor.catalogue
    if as_json:
        click.echo(
            json.dumps(
                {
                    "nodeTypes": [wire.dump(catalogue[t]) for t in sorted(catalogue)],
                    "problems": [wire.dump(p) for p in catalogue.problems],
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"{len(catalogue)} node types")
    for column in ("type", "name", "category", "distribution"):
        table.add_column(column)
    for type_id in sorted(catalogue):
        nt = catalogue[type_id]
        table.add_row(nt.id, nt.name, nt.category, nt.distribution or "")
    console = _console()
    console.print(table)
    for problem in catalogue.problems:
        console.print(f"[yellow]warning:[/] {problem.message}", soft_wrap=True)


@main.group()
def flows() -> None:
    """Manage stored flows."""


@flows.command("list")
@click.option("--json", "as_json", is_flag=True)
@storage_option
def flows_list(as_json: bool, storage: str | None) -> None:
    """List stored flows."""
    from rich.table import Table

    from atomiton_core import wire

    store = _conductor(storage).storage
    assert store is not None
    found = store.list()
    if as_json:
        click.echo(json.dumps([wire.dump(s) for s in found], indent=2))
        return
    table = Table(title=f"{len(found)} flows in {store.url}")
    for column in ("id", "name", "description"):
        table.add_column(column)
    for summary in found:
        table.add_row(summary.id, summary.name or "", summary.description or "")
    _console().print(table)


@flows.command("show")
@click.argument("flow_id")
@storage_option
def flows_show(flow_id: str, storage: str | None) -> None:
    """Print a stored flow as YAML."""
    from atomiton_core.errors import AtomitonError
    from atomiton_core.flow.yaml_io import dumps_flow

    store = _conductor(storage).storage
    assert store is not None
    try:
        click.echo(dumps_flow(store.load(flow_id)), nl=False)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)


@flows.command("save")
@click.argument("path")
@storage_option
def flows_save(path: str, storage: str | None) -> None:
    """Store the flow file PATH under its id (comments and layout kept)."""
    from atomiton_core.errors import AtomitonError, FlowLoadError
    from atomiton_core.flow.yaml_io import load_flow

    store = _conductor(storage).storage
    assert store is not None
    try:
        flow = load_flow(path)
        location = store.save(flow)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_INVALID if isinstance(exc, FlowLoadError) else EXIT_FAILED)
    click.echo(f"saved {flow.id} -> {location}")


@flows.command("delete")
@click.argument("flow_id")
@storage_option
def flows_delete(flow_id: str, storage: str | None) -> None:
    """Delete a stored flow."""
    from atomiton_core.errors import AtomitonError

    store = _conductor(storage).storage
    assert store is not None
    try:
        store.delete(flow_id)
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    click.echo(f"deleted {flow_id}")
