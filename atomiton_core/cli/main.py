"""The ``atomiton`` command: run, validate, list node types, manage stored flows.

Exit codes (the same for every command; ``atomiton --help`` shows them): 0 done (a run
completed, a flow is valid), 1 a run failed or was cancelled, or the command failed,
2 a usage error (click's: an unknown option, a bad value; an ``--input`` the flow's variables
refuse; options that contradict; a broken configuration file), 3 the flow is invalid or
cannot be read.

Defining the commands imports click alone: the engine, rich and asyncio are imported inside
the commands that use them, so ``atomiton --help`` (and a mistyped command) answers at once.
Every text the engine or the user wrote (messages, ids, names, paths) reaches rich escaped:
``[dask]`` in a hint, ``item[key]`` in an expression are shown as they are, not read as markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from atomiton_core.version import __version__

if TYPE_CHECKING:
    import logging

    from rich.console import Console
    from rich.table import Table

    from atomiton_core import signals
    from atomiton_core.conductor.conductor import Conductor
    from atomiton_core.errors import AtomitonError
    from atomiton_core.flow.models import Flow
    from atomiton_core.results import ExecutionResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3

#: What FLOW arguments take for "read the flow from standard input".
STDIN = "-"

EPILOG = """\b
Exit codes:
  0  done: the run completed, the flow is valid
  1  the run failed or was cancelled, or the command failed
  2  usage error: an unknown option, a bad value (an --input the flow's
     variables refuse), options that contradict, a broken configuration file
  3  the flow is invalid or cannot be read (run, validate, flows save)

\b
Configuration: atomiton.toml in the working directory over
$XDG_CONFIG_HOME/atomiton/config.toml (or --config FILE), keys storage,
executor, token, plugins, disable_plugin_autoload, as the variables
ATOMITON_STORAGE, ATOMITON_EXECUTOR, ATOMITON_TOKEN, ATOMITON_PLUGINS,
ATOMITON_DISABLE_PLUGIN_AUTOLOAD; an option wins over its variable, a
variable over the file.

\b
Shell completion: eval "$(_ATOMITON_COMPLETE=bash_source atomiton)" in
~/.bashrc; zsh: zsh_source in ~/.zshrc; fish: fish_source.
"""

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
    "paused": "‖",
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

    return Console(highlight=False, emoji=False, **kw)


def _err_console() -> Console:
    return _console(stderr=True)


def _escape(text: object) -> str:
    """``text`` shown as it is in rich markup: its square brackets are not tags."""
    from rich.markup import escape

    return escape(str(text))


def _fail(message: str, code: int) -> NoReturn:
    _err_console().print(f"[bold red]error:[/] {_escape(message)}", soft_wrap=True)
    sys.exit(code)


def _exit_code(exc: AtomitonError) -> int:
    """3 for a flow that is invalid or cannot be read (or stored under its id), 2 for an
    ``--input`` the flow's variables refuse (a bad value on the command line), else 1."""
    from atomiton_core.errors import (
        FlowLoadError,
        FlowValidationError,
        InvalidFlowId,
        VariableError,
    )

    if isinstance(exc, VariableError):
        return EXIT_USAGE
    invalid = isinstance(exc, FlowLoadError | FlowValidationError | InvalidFlowId)
    return EXIT_INVALID if invalid else EXIT_FAILED


def _fail_on(exc: AtomitonError, as_json: bool, **extra: Any) -> NoReturn:
    """End the command with ``exc``: on stderr, and with ``--json`` also as JSON on stdout
    (``{"error": ..., **extra}``, as the server answers), with its exit code."""
    if as_json:
        from atomiton_core import wire

        body: dict[str, Any] = {**extra, "error": wire.dump(exc)}
        report = getattr(exc, "report", None)
        if report is not None:
            body["report"] = wire.dump(report)
        click.echo(json.dumps(body, indent=2))
    _fail(str(exc), _exit_code(exc))


def _read_stdin_flow() -> Flow:
    """The flow given as ``-``: YAML or JSON text on standard input."""
    from atomiton_core.errors import FlowLoadError
    from atomiton_core.flow.yaml_io import loads_flow

    source = "<stdin>"
    if sys.stdin is None:  # started without one (pythonw, a closed descriptor)
        raise FlowLoadError(f"{source}: there is no standard input to read", source=source)
    raw = sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowLoadError(f"{source}: not UTF-8 text: {exc}", source=source) from None
    return loads_flow(text, source=source)


def _flow_arg(flow: str) -> Flow | str:
    """A FLOW argument as the conductor takes it: the text read for ``-``, else as given."""
    return _read_stdin_flow() if flow == STDIN else flow


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


def _log() -> logging.Logger:
    """The command's own logger: what it read and chose, shown with -v (info), -vv (debug)."""
    import logging

    return logging.getLogger("atomiton.cli")


def dask_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a Dask executor (``--dask-workers`` ...), as ``dask`` (a dict)."""
    options = [
        click.option(
            "--dask-workers",
            type=click.IntRange(1),
            metavar="N",
            help="With --executor dask: worker processes of the local cluster (default: one "
            "per CPU).",
        ),
        click.option(
            "--dask-threads",
            type=click.IntRange(1),
            metavar="N",
            help="With --executor dask: threads per worker (default 1).",
        ),
        click.option(
            "--dask-memory",
            metavar="SIZE",
            help="With --executor dask: memory limit per worker (2GiB, 500MB).",
        ),
        click.option(
            "--dask-adaptive",
            metavar="MIN-MAX",
            help="With --executor dask: scale the workers between MIN and MAX with the load.",
        ),
        click.option(
            "--dask-timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="With a Dask executor: how long to wait for a first worker (default 60).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _dask_given(given: Mapping[str, Any]) -> dict[str, Any]:
    """The executor options the ``--dask-*`` options gave (by the executor's names)."""
    names = {
        "dask_workers": "workers",
        "dask_threads": "threads",
        "dask_memory": "memory",
        "dask_adaptive": "adaptive",
        "dask_timeout": "timeout",
    }
    return {names[k]: v for k, v in given.items() if k in names and v is not None}


def _conductor(
    storage: str | None,
    executor: str = "local",
    process_workers: int | None = None,
    memory_ceiling: float | None = None,
    executor_options: Mapping[str, Any] | None = None,
) -> Conductor:
    from atomiton_core.conductor.conductor import create_conductor
    from atomiton_core.errors import AtomitonError

    try:
        conductor = create_conductor(
            storage,
            executor=executor,
            executor_options=executor_options or None,
            process_workers=process_workers,
            memory_ceiling=memory_ceiling,
        )
    except AtomitonError as exc:
        _fail(str(exc), EXIT_FAILED)
    log = _log()
    log.info("storage: %s", conductor.storage.url if conductor.storage else "none")
    log.info("executor: %s", executor)
    log.debug("%d node types: %s", len(conductor.catalogue), ", ".join(sorted(conductor.catalogue)))
    for problem in conductor.catalogue.problems:
        log.debug("plugin problem: %s", problem.message)
    return conductor


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
            shown = f"[{style}]{_escape(status)}[/]" if style else _escape(status)
            table.add_row(_escape(path), _escape(row["type"]), shown, _escape(row["detail"]))
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
            if event.type == "node.paused":
                mark = _STATUS_MARK["paused"]
            elif event.resumed_from is not None:
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
                soft_wrap=True,  # one line per event, whatever the width: it is read by tools
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
    **debug: Any,
) -> ExecutionResult:
    import asyncio
    import signal as os_signal

    execution = conductor.start(flow, inputs, resume=resume, cache=cache, **debug)
    loop = asyncio.get_running_loop()
    try:
        # Ctrl-C, a kill, a closed terminal: the run is cancelled, so its programs are killed
        for sig in (os_signal.SIGINT, os_signal.SIGTERM, os_signal.SIGHUP):
            loop.add_signal_handler(sig, execution.cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    prompt = None
    if debug.get("breakpoints") or debug.get("step"):
        prompt = loop.create_task(_debug_prompt(execution))
    try:
        return await execution.result()
    finally:
        if prompt is not None:
            prompt.cancel()


_DEBUG_HELP = "c continue, s step, i inputs in full, a abort"


async def _debug_prompt(execution: Any) -> None:
    """Each time the run pauses: the node and its inputs on stderr, and a prompt for what
    to do, read from standard input without blocking the run's loop (no thread)."""
    import asyncio

    from atomiton_core import wire

    debugger = execution.debugger
    console = _err_console()
    lines = _StdinLines(asyncio.get_running_loop())
    try:
        while True:
            paused = await debugger.wait_paused()
            if paused is None:
                return
            inputs = json.dumps(wire.jsonable(paused.inputs), default=str)
            short = inputs if len(inputs) <= 300 else inputs[:297] + "..."
            console.print(
                f"paused before {paused.path} [{paused.node_type}] ({paused.reason}); "
                f"inputs: {short}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            while True:
                console.print(f"debug ({_DEBUG_HELP})> ", end="", markup=False, highlight=False)
                answer = await lines.next()
                if answer is None:
                    console.print(
                        "\nstandard input closed: the run continues",
                        markup=False,
                        highlight=False,
                    )
                    debugger.cont()
                    return
                word = answer.strip().lower()
                if word in ("c", "continue"):
                    debugger.cont()
                elif word in ("s", "step", ""):
                    debugger.step()
                elif word in ("a", "abort", "q", "quit"):
                    debugger.abort()
                    return
                elif word in ("i", "inputs"):
                    console.print(inputs, markup=False, highlight=False, soft_wrap=True)
                    continue
                else:
                    console.print(f"not a command: {word!r}", markup=False, highlight=False)
                    continue
                break
    finally:
        lines.close()


class _StdinLines:
    """Lines of standard input as the loop hears them (``add_reader``: no thread)."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.pending: list[Any] = []
        self.watching = False

    def next(self) -> Any:
        future = self.loop.create_future()
        self.pending.append(future)
        if not self.watching:
            self.loop.add_reader(sys.stdin.fileno(), self._readable)
            self.watching = True
        return future

    def _readable(self) -> None:
        line = sys.stdin.readline()
        answer = line if line else None
        while self.pending:
            future = self.pending.pop(0)
            if not future.done():
                future.set_result(answer)
                break
        if not self.pending or answer is None:
            self.close()

    def close(self) -> None:
        if self.watching:
            self.loop.remove_reader(sys.stdin.fileno())
            self.watching = False


def _print_summary(result: ExecutionResult, console: Console) -> None:
    from atomiton_core import wire

    colour = _STATUS_STYLE.get(str(result.status), "")
    status = _escape(result.status)
    console.print(
        f"{f'[{colour}]{status}[/]' if colour else status} in {result.duration_ms or 0:.1f} ms "
        f"(execution {_escape(result.execution_id)})",
        soft_wrap=True,
    )
    if result.error is not None:
        console.print(
            f"[red]{_escape(result.error.code)}: {_escape(result.error)}[/]", soft_wrap=True
        )
    if result.outputs:
        console.print_json(json.dumps(wire.jsonable(result.outputs)))


@dataclass(frozen=True, slots=True)
class CliState:
    """What the group's options leave for its commands (``ctx.obj``)."""

    #: -1 with -q, 0 by default, 1 with -v, 2 with -vv
    verbosity: int = 0


def _set_up_logging(ctx: click.Context, verbosity: int) -> None:
    """The ``atomiton`` loggers on stderr while the command runs: warnings by default, -v
    info, -vv debug, -q errors only.

    The package itself logs to a NullHandler; a program that embeds it configures its own."""
    import logging

    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("atomiton")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def restore() -> None:  # a command run in-process (click's CliRunner) leaves none behind
        logger.removeHandler(handler)
        logger.setLevel(before)

    ctx.call_on_close(restore)


def _option_defaults(command: click.Command, values: dict[str, Any]) -> dict[str, Any]:
    """click's ``default_map`` for ``command`` and its subcommands: each option named after a
    setting takes it as its default (a flag given, or click's envvar, still wins)."""
    found: dict[str, Any] = {p.name: values[p.name] for p in command.params if p.name in values}
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            nested = _option_defaults(sub, values)
            if nested:
                found[name] = nested
    return found


def _apply_config(ctx: click.Context, path: Path | None) -> None:
    """Read the configuration files: options' defaults, and the plugin switches, which only
    the environment sets, in the environment while the command runs."""
    import os

    from atomiton_core.cli.config import SETTINGS, load_config

    config = load_config(path)  # a broken file: ConfigFileError, a usage error (exit 2)
    log = _log()
    for file in config.files:
        log.info("configuration read from %s", file)
    for key, value in config.values.items():
        shown = "(hidden)" if key == "token" else repr(value)
        log.debug("configuration: %s = %s (from %s)", key, shown, config.sources[key])
    defaults = config.option_defaults()
    added = config.environment()
    for key in config.values:
        if key not in defaults and SETTINGS[key].env not in added:
            log.debug("configuration: $%s wins over the file's %s", SETTINGS[key].env, key)
    if defaults:
        ctx.default_map = _option_defaults(ctx.command, defaults)
    if added:
        os.environ.update(added)

        def restore() -> None:
            for name in added:
                os.environ.pop(name, None)

        ctx.call_on_close(restore)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(version=__version__, prog_name="atomiton")
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="Log more of what the engine does on stderr: -v info, -vv debug.",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Log errors only; run shows no per-node progress."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ATOMITON_CONFIG",
    default=None,
    metavar="FILE",
    help="Read the settings from FILE alone (default: ./atomiton.toml over "
    "$XDG_CONFIG_HOME/atomiton/config.toml).",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, config_path: Path | None) -> None:
    """Atomiton: run, validate and manage flows of nodes.

    A FLOW is a flow file, a URL, the id of a stored flow, or - for standard input.
    """
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other: give one")
    verbosity = -1 if quiet else verbose
    _set_up_logging(ctx, verbosity)
    _apply_config(ctx, config_path)
    ctx.obj = CliState(verbosity=verbosity)


def _state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    return state if state is not None else CliState()


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
    envvar="ATOMITON_EXECUTOR",
    metavar="SPEC",
    help="Where blocking nodes run: local (threads), dask (a new local cluster), "
    "or a Dask scheduler address (tcp://host:8786). Default: $ATOMITON_EXECUTOR, the "
    "configuration's executor, or local.",
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
@click.option(
    "--break",
    "breakpoints",
    multiple=True,
    metavar="NODE",
    help="Pause before NODE runs (an id or a path, wildcards allowed) and prompt: continue, "
    "step, inputs, abort. Repeatable.",
)
@click.option("--step", is_flag=True, help="Pause before the first node and prompt.")
@click.option(
    "--inject",
    multiple=True,
    metavar="NODE=FAULT",
    help="Test the flow against a fault: NODE=error, NODE=timeout or NODE=delay:MS (each "
    "attempt fails, times out, or starts MS later). Repeatable.",
)
@click.option(
    "--slow-mo",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MS",
    help="Start each node MS milliseconds after it is ready, to follow the run by eye.",
)
@dask_options
@storage_option
@click.pass_context
def run(
    ctx: click.Context,
    /,
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
    breakpoints: tuple[str, ...],
    step: bool,
    inject: tuple[str, ...],
    slow_mo: float | None,
    storage: str | None,
    **dask: Any,
) -> None:
    """Run FLOW: a flow file, a URL, the id of a stored flow, or - to read it from
    standard input.

    With ``--pin-from RUN_ID NODE...``, the outputs those nodes had in that run are first
    pinned into the flow (``pins`` in its file, comments kept; or the stored flow).
    """
    import asyncio

    from atomiton_core import wire
    from atomiton_core.errors import AtomitonError

    if no_cache and refresh_cache:
        _fail("--no-cache and --refresh-cache contradict each other: give one", EXIT_USAGE)
    if flow == STDIN and (pin_nodes or pin_from):
        _fail("pins are written into a flow file or a stored flow, not standard input", EXIT_USAGE)
    if flow == STDIN and (breakpoints or step):
        _fail(
            "--break and --step read their commands from standard input: give the flow as "
            "a file, not -",
            EXIT_USAGE,
        )
    cache = "off" if no_cache else "refresh" if refresh_cache else None
    quiet = quiet or _state(ctx).verbosity < 0
    conductor = _conductor(storage, executor, process_workers, memory_ceiling, _dask_given(dask))
    if pin_nodes or pin_from:
        _pin(conductor, flow, pin_from, pin_nodes)
    values = _parse_inputs(inputs)
    try:
        plan = conductor.prepare(_flow_arg(flow))
    except AtomitonError as exc:
        conductor.close()
        if as_json and _exit_code(exc) == EXIT_INVALID:
            click.echo(json.dumps({"status": "invalid", "error": wire.dump(exc)}, indent=2))
        _fail(str(exc), _exit_code(exc))
    debugging = bool(breakpoints or step)
    # a prompt does not share the terminal with a live table: one line per event
    live = sys.stderr.isatty() and not as_json and not debugging
    debug: dict[str, Any] = {}
    if debugging:
        debug.update(breakpoints=breakpoints, step=step)
    if inject:
        debug["inject"] = inject
    if slow_mo:
        debug["slow_mo"] = slow_mo
    with _watch(conductor, live=live, quiet=quiet or as_json):
        try:
            result = asyncio.run(
                _execute_with_signals(conductor, plan, values, resume, cache, **debug)
            )
        except AtomitonError as exc:  # an input refused, the run to resume not there...
            conductor.close()
            _fail(str(exc), _exit_code(exc))
    conductor.close()
    if as_json:
        click.echo(wire.dumps(result, indent=2))
    else:
        _print_summary(result, _console())
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _pin(conductor: Conductor, flow: str, run_id: str | None, nodes: tuple[str, ...]) -> None:
    """Write the outputs ``nodes`` had in stored run ``run_id`` into the flow as pins."""
    from atomiton_core.errors import AtomitonError
    from atomiton_core.flow.yaml_io import load_flow, save_flow

    if run_id is None:
        _fail(f"nodes {' '.join(nodes)} are given to pin: give --pin-from RUN_ID", EXIT_USAGE)
    if not nodes:
        _fail("--pin-from needs the ids of the nodes to pin after the flow", EXIT_USAGE)
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
        _fail(str(exc), _exit_code(exc))
    pins = dict(target.pins)
    for node_id in nodes:
        res = past.nodes.get(node_id)
        if res is None or str(res.status) not in ("completed", "cached", "pinned"):
            state = "is not in it" if res is None else f"was {res.status} there"
            _fail(f"cannot pin node {node_id!r} from run {run_id}: it {state}", EXIT_FAILED)
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
        f"pinned {', '.join(nodes)} from run {run_id} into {flow}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@main.command()
@click.argument("flow")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@storage_option
def validate(flow: str, as_json: bool, storage: str | None) -> None:
    """Check FLOW (a file, URL, stored id, or - for standard input) and report every
    problem at once: exit 0 when it is valid, 3 when it is not."""
    from atomiton_core import wire
    from atomiton_core.errors import AtomitonError

    conductor = _conductor(storage)
    try:
        report = conductor.validate(_flow_arg(flow))
    except AtomitonError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "error": wire.dump(exc)}, indent=2))
        _fail(str(exc), _exit_code(exc))
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
        table.add_row(*(_escape(v) for v in (nt.id, nt.name, nt.category, nt.distribution or "")))
    console = _console()
    console.print(table)
    for problem in catalogue.problems:
        console.print(f"[yellow]warning:[/] {_escape(problem.message)}", soft_wrap=True)


@main.group()
def flows() -> None:
    """Manage stored flows."""


@flows.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the flows as JSON.")
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
    table = Table(title=f"{len(found)} flows in {_escape(store.url)}")
    for column in ("id", "name", "description"):
        table.add_column(column)
    for summary in found:
        table.add_row(*(_escape(v or "") for v in (summary.id, summary.name, summary.description)))
    _console().print(table)


@flows.command("show")
@click.argument("flow_id")
@click.option("--json", "as_json", is_flag=True, help="Print the flow as JSON, not YAML.")
@storage_option
def flows_show(flow_id: str, as_json: bool, storage: str | None) -> None:
    """Print a stored flow as YAML (its comments and layout kept), or as JSON."""
    from atomiton_core.errors import AtomitonError
    from atomiton_core.flow.yaml_io import dumps_flow

    store = _conductor(storage).storage
    assert store is not None
    try:
        flow = store.load(flow_id)
    except AtomitonError as exc:
        _fail_on(exc, as_json)
    if as_json:
        click.echo(json.dumps(flow.to_data(), indent=2))
    else:
        click.echo(dumps_flow(flow), nl=False)


@flows.command("save")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print what was stored as JSON.")
@storage_option
def flows_save(path: str, as_json: bool, storage: str | None) -> None:
    """Store the flow file PATH (- for standard input) under its id, comments and layout
    kept.

    The flow is validated first, as the server's PUT /api/flows/ID does: a flow with
    errors is not stored (exit 3); warnings are shown and the flow is stored.
    """
    from atomiton_core import wire
    from atomiton_core.errors import AtomitonError, FlowValidationError
    from atomiton_core.flow.validation import validate as validate_flow
    from atomiton_core.flow.yaml_io import load_flow
    from atomiton_core.nodes.expressions import ENGINE

    conductor = _conductor(storage)
    store = conductor.storage
    assert store is not None
    try:
        flow = _read_stdin_flow() if path == STDIN else load_flow(path)
        store.flow_location(flow.id)  # an id storage cannot hold, before the report
        report = validate_flow(flow, conductor.catalogue, templates=ENGINE)
        if not report.ok:
            raise FlowValidationError(report, source=flow.source or path)
        location = store.save(flow)
    except AtomitonError as exc:
        _fail_on(exc, as_json)
    if as_json:
        body = {"id": flow.id, "location": location, "report": wire.dump(report)}
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(f"saved {flow.id} -> {location}")
    if report.warnings:
        _err_console().print(str(report), markup=False, soft_wrap=True)


@flows.command("delete")
@click.argument("flow_id")
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
@storage_option
def flows_delete(flow_id: str, as_json: bool, storage: str | None) -> None:
    """Delete a stored flow."""
    from atomiton_core.errors import AtomitonError

    store = _conductor(storage).storage
    assert store is not None
    try:
        store.delete(flow_id)
    except AtomitonError as exc:
        _fail_on(exc, as_json, id=flow_id, deleted=False)
    if as_json:
        click.echo(json.dumps({"id": flow_id, "deleted": True}, indent=2))
    else:
        click.echo(f"deleted {flow_id}")
