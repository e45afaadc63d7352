"""``atomiton migrate``: rewrite a flow written for the original Atomiton into one that runs
here (:mod:`atomiton_core.flow.migrate` does the work; this is its command line).

As in :mod:`atomiton_core.cli.main`, the engine is imported when the command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from atomiton_core.cli.main import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, STDIN, _fail

if TYPE_CHECKING:
    from atomiton_core.conductor.conductor import Conductor
    from atomiton_core.errors import ValidationReport


def _read(flow: str) -> str:
    """The text of FLOW: a file, or standard input for ``-``."""
    from atomiton_core.errors import FlowLoadError

    if flow == STDIN:
        raw = sys.stdin.buffer.read() if sys.stdin is not None else b""
        where = "<stdin>"
    else:
        where = flow
        try:
            raw = Path(flow).read_bytes()
        except FileNotFoundError:
            raise FlowLoadError(f"{flow}: no such flow file", source=flow) from None
        except OSError as exc:
            raise FlowLoadError(f"{flow}: cannot read: {exc}", source=flow) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowLoadError(f"{where}: not UTF-8 text: {exc}", source=where) from None


def _validation(conductor: Conductor, text: str, where: str) -> ValidationReport | None:
    """The migrated flow's validation report; None when it does not load as a flow."""
    from atomiton_core.errors import AtomitonError
    from atomiton_core.flow.yaml_io import loads_flow

    try:
        return conductor.validate(loads_flow(text, source=where))
    except AtomitonError:
        return None


@click.command()
@click.argument("flow")
@click.option(
    "-o",
    "--output",
    "output",
    metavar="OUT",
    default=None,
    help="Write the migrated flow to OUT (- or none: standard output).",
)
@click.option(
    "--in-place",
    is_flag=True,
    help="Rewrite FLOW itself (atomically; only when something changed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate(flow: str, output: str | None, in_place: bool, as_json: bool) -> None:
    """Rewrite FLOW (a flow file written for the original Atomiton, or - for standard input)
    into one that runs here, and report every change, one per line.

    Loops and parallels get the nodes of their per-item work nested in them, renamed
    parameters their new names, simple JavaScript functions become Jinja2 expressions, the
    original's renamed node types their new names. What it cannot translate it keeps as it
    was and flags. Comments and layout are kept; FLOW is never changed unless --in-place.

    The report goes to standard output, or to standard error when the flow does. Exit codes:
    0 everything translated (or nothing to change), 1 something was kept and flagged (the
    flow is written all the same), 2 a usage error, 3 FLOW cannot be read or is not a flow.
    """
    from atomiton_core import wire
    from atomiton_core.conductor.conductor import create_conductor
    from atomiton_core.errors import AtomitonError, FlowLoadError
    from atomiton_core.files import atomic_write_text
    from atomiton_core.flow.migrate import migrate as migrate_flow

    if in_place and output is not None:
        _fail("--in-place and -o contradict each other: give one", EXIT_USAGE)
    if in_place and flow == STDIN:
        _fail("--in-place rewrites a file: standard input is none", EXIT_USAGE)
    if (
        output not in (None, STDIN)
        and flow != STDIN
        and Path(output).resolve() == Path(flow).resolve()
    ):
        _fail(f"-o {output} is FLOW itself: give --in-place to rewrite it", EXIT_USAGE)
    where = "<stdin>" if flow == STDIN else flow
    target = flow if in_place else output if output not in (None, STDIN) else None
    conductor = create_conductor("memory://atomiton-cli-migrate", record_runs=False)
    try:
        text = _read(flow)
        done = migrate_flow(text, conductor.catalogue, source=where)
        if target is not None and (done.changed or not in_place):
            atomic_write_text(target, done.text)
    except AtomitonError as exc:
        conductor.close()
        if as_json:
            click.echo(json.dumps({"ok": False, "error": wire.dump(exc)}, indent=2))
        _fail(str(exc), EXIT_INVALID if isinstance(exc, FlowLoadError) else EXIT_FAILED)
    except OSError as exc:
        conductor.close()
        _fail(f"cannot write {target}: {exc}", EXIT_FAILED)
    report = _validation(conductor, done.text, target or where)
    conductor.close()
    code = EXIT_OK if done.ok else EXIT_FAILED
    if as_json:
        body: dict[str, Any] = {
            "source": where,
            "output": target,
            "changed": done.changed,
            "ok": done.ok,
            "changes": [wire.dump(c) for c in done.changes],
            "validation": wire.dump(report) if report is not None else None,
        }
        if target is None:
            body["flow"] = done.text
        click.echo(json.dumps(body, indent=2))
        sys.exit(code)
    if target is None:
        click.echo(done.text, nl=False)
    to_stderr = target is None
    for change in done.changes:
        click.echo(str(change), err=to_stderr)
    flagged = len(done.flagged)
    summary = (
        f"{len(done.changes) - flagged} translated, {flagged} kept and flagged"
        if done.changes
        else "nothing to change"
    )
    if target is not None:
        summary += f"; {'wrote' if done.changed or not in_place else 'left'} {target}"
    click.echo(summary, err=to_stderr)
    if report is not None and not report.ok:
        click.echo(
            f"the migrated flow has {len(report.errors)} error(s), {len(report.warnings)} "
            f"warning(s): atomiton validate {target or '<the output>'} lists them",
            err=to_stderr,
        )
    sys.exit(code)
