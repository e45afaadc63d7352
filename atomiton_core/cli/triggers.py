"""``atomiton triggers``: the triggers of the stored flows (schedules, webhooks, watches), as a
running ``atomiton serve`` runs them: list, pause, resume, fire.

The commands ask the server (``--server``, ``$ATOMITON_SERVER``, default
``http://127.0.0.1:8000``, with ``--token`` / ``$ATOMITON_TOKEN``) through
:class:`~atomiton_core.server.client.RemoteConductor`; ``list --storage URL`` reads the flows
and the triggers' saved state from storage instead, for when no server runs. As in
:mod:`atomiton_core.cli.main`, the client, the engine and rich are imported by the commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import click

from atomiton_core.cli.main import (
    _STATUS_STYLE,
    EXIT_FAILED,
    EXIT_USAGE,
    _escape,
    _fail,
    _fail_on,
    _parse_inputs,
)

if TYPE_CHECKING:
    from rich.console import Console

    from atomiton_core.server.client import RemoteConductor

DEFAULT_SERVER = "http://127.0.0.1:8000"
_TRIGGER_STYLE = {"active": "green", "paused": "yellow", "disabled": "dim", "error": "bold red"}


def server_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--token",
        envvar="ATOMITON_TOKEN",
        default=None,
        help="The server's bearer token (default: $ATOMITON_TOKEN).",
    )(fn)
    return click.option(
        "--server",
        "server",
        envvar="ATOMITON_SERVER",
        default=DEFAULT_SERVER,
        show_default=True,
        metavar="URL",
        help="The running `atomiton serve` to ask (default: $ATOMITON_SERVER).",
    )(fn)


@contextmanager
def _remote(server: str, token: str | None, as_json: bool = False) -> Iterator[RemoteConductor]:
    """A client of the server; a server that cannot be reached, or refuses, ends the command."""
    import httpx

    from atomiton_core.errors import AtomitonError
    from atomiton_core.server.client import RemoteConductor

    remote = RemoteConductor(server, token)
    try:
        yield remote
    except httpx.TransportError as exc:
        _no_server(server, exc)
    except AtomitonError as exc:
        _fail_on(exc, as_json)
    finally:
        remote.close()


def _no_server(server: str, exc: Exception) -> NoReturn:
    _fail(
        f"no server answers at {server} ({exc}); start one with `atomiton serve`, give its "
        "address with --server (or $ATOMITON_SERVER), or list the stored triggers with "
        "`atomiton triggers list --storage URL`",
        EXIT_FAILED,
    )


def _console() -> Console:
    """Tables at the terminal's width; piped, wide enough that a row stays on its line."""
    from rich.console import Console

    return Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else 200)


def _status(status: str) -> str:
    style = _TRIGGER_STYLE.get(status) or _STATUS_STYLE.get(status, "")
    return f"[{style}]{_escape(status)}[/]" if style else _escape(status)


def _when(iso: Any) -> str:
    if not isinstance(iso, str):
        return ""
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.group()
def triggers() -> None:
    """Triggers of the stored flows, run by `atomiton serve`: list, pause, resume, fire."""


@triggers.command("list")
@click.option("--flow", "flow_id", default=None, metavar="ID", help="Only this flow's triggers.")
@click.option("--json", "as_json", is_flag=True, help="Print the triggers as JSON.")
@click.option(
    "--storage",
    metavar="URL",
    default=None,
    help="Read the triggers from this storage (folder or fsspec URL) instead of asking a "
    "server: what they are and their saved state.",
)
@server_options
def triggers_list(
    flow_id: str | None, as_json: bool, storage: str | None, server: str, token: str | None
) -> None:
    """List the triggers: status, next and last fire, last run, counts, last error."""
    from rich.table import Table

    if storage is not None:
        found, problems = _stored(storage, flow_id)
        title = f"{len(found)} triggers in {_escape(storage)} (as stored; no server asked)"
    else:
        with _remote(server, token, as_json) as remote:
            found = remote.triggers(flow_id=flow_id)
            problems = remote.trigger_problems(flow_id=flow_id)
        title = f"{len(found)} triggers on {_escape(server)}"
    if as_json:
        click.echo(json.dumps({"triggers": found, "problems": problems}, indent=2))
        return
    table = Table(title=title, title_justify="left")
    table.add_column("trigger", no_wrap=True)
    for column in ("when", "status", "next fire", "last fire", "last run", "runs", "problem"):
        table.add_column(column, overflow="fold")
    for t in found:
        last = t.get("lastRun") or {}
        counts = t.get("counts") or {}
        ran = "/".join(str(counts.get(k, 0)) for k in ("started", "skipped", "failed"))
        problem = t.get("problem") or (t.get("lastError") or {}).get("message") or ""
        table.add_row(
            _escape(t["key"]),
            _escape(t["when"]),
            _status(t["status"]),
            _when(t.get("nextFireAt")),
            _when(t.get("lastFireAt")),
            (_status(str(last["status"])) + " " + _escape(str(last["executionId"])[:12]))
            if last
            else "",
            ran,
            _escape(problem),
        )
    console = _console()
    console.print(table)
    if found:
        console.print("runs: started/skipped/failed", style="dim")
    for p in problems:
        console.print(f"[red]flow {_escape(p['flowId'])}:[/] {_escape(p['message'])}")


def _stored(url: str, flow_id: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from atomiton_core.errors import AtomitonError
    from atomiton_core.server.triggers import stored_triggers
    from atomiton_core.storage.flows import create_storage

    try:
        found, problems = stored_triggers(create_storage(url))
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    return (
        [t for t in found if flow_id is None or t["flowId"] == flow_id],
        [p for p in problems if flow_id is None or p["flowId"] == flow_id],
    )


def _which(remote: RemoteConductor, flow_id: str, trigger_id: str | None) -> str:
    """The trigger named, or the flow's only one."""
    if trigger_id is not None:
        return trigger_id
    ids = [t["id"] for t in remote.triggers(flow_id=flow_id)]
    if len(ids) == 1:
        return str(ids[0])
    if not ids:
        _fail(f"flow {flow_id!r} has no trigger on this server", EXIT_FAILED)
    _fail(f"flow {flow_id!r} has {len(ids)} triggers: name one of {', '.join(ids)}", EXIT_USAGE)


def _say(state: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(state, indent=2))
    else:
        click.echo(f"{verb} {state['key']} ({state['status']})")


@triggers.command("pause")
@click.argument("flow_id")
@click.argument("trigger_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the trigger's state as JSON.")
@server_options
def triggers_pause(
    flow_id: str, trigger_id: str | None, as_json: bool, server: str, token: str | None
) -> None:
    """Pause a trigger of FLOW_ID (TRIGGER_ID may be left out when it has one): it fires no
    more, across restarts too, until resumed; runs going on go on."""
    with _remote(server, token, as_json) as remote:
        state = remote.pause_trigger(flow_id, _which(remote, flow_id, trigger_id))
    _say(state, as_json, "paused")


@triggers.command("resume")
@click.argument("flow_id")
@click.argument("trigger_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the trigger's state as JSON.")
@server_options
def triggers_resume(
    flow_id: str, trigger_id: str | None, as_json: bool, server: str, token: str | None
) -> None:
    """Resume a paused trigger (a schedule's slots missed while paused are not run)."""
    with _remote(server, token, as_json) as remote:
        state = remote.resume_trigger(flow_id, _which(remote, flow_id, trigger_id))
    _say(state, as_json, "resumed")


@triggers.command("fire")
@click.argument("flow_id")
@click.argument("trigger_id", required=False)
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a flow variable for this run (VALUE is parsed as JSON when it can be); the "
    "trigger's own inputs stand. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@server_options
def triggers_fire(
    flow_id: str,
    trigger_id: str | None,
    inputs: tuple[str, ...],
    as_json: bool,
    server: str,
    token: str | None,
) -> None:
    """Fire a trigger now, paused or not, under its overlap policy (skip, queue, parallel)."""
    given = _parse_inputs(inputs)
    with _remote(server, token, as_json) as remote:
        answer = remote.fire_trigger(flow_id, _which(remote, flow_id, trigger_id), given)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif answer.get("executionId"):
        click.echo(f"started run {answer['executionId']} of {answer['flowId']}")
    else:
        click.echo(f"queued: {answer.get('position')} in line for {answer['trigger']}")
