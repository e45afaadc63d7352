"""``atomiton serve``: the HTTP + WebSocket API and the live page, under uvicorn.

Starlette and uvicorn, like the engine, are imported only when the command runs, so
``atomiton --help`` stays fast and works without the ``server`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from atomiton_core.cli.main import _dask_given, dask_options

if TYPE_CHECKING:
    import socket

#: Node types ``--safe`` disables outright: user code reaches everything the server can.
#: Node types that run user code: off under --safe (a transform's JavaScript function too).
SAFE_DISABLED = ("code", "javascript")
INSTALL_HINT = "the server needs the 'server' extra: pip install 'atomiton-core[server]'"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """Listen first, so the URL printed has the real port (``--port 0``: a free one)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only for a socket
    # whose protocol says TCP, and without it every keep-alive answer waited ~40 ms (Nagle's
    # algorithm meeting delayed ACKs)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(2048)  # connections made as soon as the URL is printed wait for uvicorn
    sock.set_inheritable(True)
    return sock


@click.command()
@click.option(
    "--executor",
    default="local",
    envvar="ATOMITON_EXECUTOR",
    metavar="SPEC",
    help="Where blocking nodes run: local (threads), dask (a new local cluster), or a Dask "
    "scheduler address (tcp://host:8786). Default: $ATOMITON_EXECUTOR, the configuration's "
    "executor, or local.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; the default accepts local connections only.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free port).",
)
@click.option(
    "--storage",
    metavar="URL",
    default=None,
    help="Flow storage: a folder or fsspec URL (default: $ATOMITON_STORAGE or the user data dir).",
)
@click.option(
    "--token",
    envvar="ATOMITON_TOKEN",
    default=None,
    help="Bearer token clients must send (default: $ATOMITON_TOKEN, else a new "
    "random one, printed at start).",
)
@click.option(
    "--disable-type",
    "disabled",
    multiple=True,
    metavar="TYPE",
    help="Refuse flows that use this node type. Repeatable.",
)
@click.option(
    "--safe",
    is_flag=True,
    help="Hold every node to a policy: no file outside --allow-root, no program but "
    "--allow-program, no private or loopback network address (only --allow-host hosts when "
    "given), no user code.",
)
@click.option(
    "--allow-root",
    "allow_roots",
    multiple=True,
    metavar="PATH",
    help="Under --safe: a folder or fsspec URL nodes may read and write. Repeatable.",
)
@click.option(
    "--allow-program",
    "allow_programs",
    multiple=True,
    metavar="PROGRAM",
    help="Under --safe: a program shell-command may run ('git log *' holds it to those "
    "arguments). Repeatable.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST",
    help="Under --safe: a host (name, *.domain, IP or network) network nodes may reach; when "
    "given, the only ones. Repeatable.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="URL",
    help="Allow browser calls from this origin (CORS is off without it). Repeatable.",
)
@click.option(
    "--max-body-bytes",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Larger request bodies are refused with 413.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@dask_options
def serve(
    executor: str,
    host: str,
    port: int,
    storage: str | None,
    token: str | None,
    disabled: tuple[str, ...],
    safe: bool,
    allow_roots: tuple[str, ...],
    allow_programs: tuple[str, ...],
    allow_hosts: tuple[str, ...],
    cors_origins: tuple[str, ...],
    max_body_bytes: int,
    log_level: str,
    **dask: Any,
) -> None:
    """Serve the REST + WebSocket API and the live execution page."""
    try:
        import uvicorn

        from atomiton_core.server.app import create_app, uvicorn_settings
    except ImportError as exc:
        raise click.ClickException(f"{INSTALL_HINT} ({exc})") from None
    import gc
    import secrets

    from atomiton_core.conductor.conductor import create_conductor
    from atomiton_core.errors import AtomitonError
    from atomiton_core.security import Security

    disabled_types = sorted({*disabled, *(SAFE_DISABLED if safe else ())})
    if not safe and (allow_roots or allow_programs or allow_hosts):
        raise click.UsageError("--allow-root, --allow-program and --allow-host go with --safe")
    policy = (
        Security(
            allowed_roots=allow_roots,
            allowed_programs=allow_programs,
            allowed_hosts=allow_hosts or None,
            block_private_networks=True,
            allow_code=False,
        )
        if safe
        else None
    )
    try:
        conductor = create_conductor(
            storage,
            disabled_types=disabled_types,
            security=policy,
            executor=executor,
            executor_options=_dask_given(dask) or None,
        )
    except AtomitonError as exc:
        raise click.ClickException(str(exc)) from None
    token = token or secrets.token_urlsafe(32)
    app = create_app(
        conductor,
        token=token,
        max_body_bytes=max_body_bytes,
        cors_origins=cors_origins,
        allowed_hosts=("127.0.0.1", "localhost", "::1", host) if _is_loopback(host) else None,
    )
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}"
    click.echo(f"Atomiton server on {url}/  (API under {url}/api)")
    click.echo(f"token: {token}")
    if conductor.storage is not None:
        click.echo(f"storage: {conductor.storage.url}")
    if disabled_types:
        click.echo(f"disabled node types: {', '.join(disabled_types)}")
    if policy is not None:
        click.echo(
            "safe mode: files under "
            f"{', '.join(allow_roots) or 'no folder'}; programs: "
            f"{', '.join(allow_programs) or 'none'}; hosts: "
            f"{', '.join(allow_hosts) or 'public addresses only'}; no user code"
        )
    click.echo(f"live page: {url}/?token={token}")
    if not _is_loopback(host):
        click.echo(
            f"warning: listening on {host}, reachable from other machines; the token is the "
            "only protection and travels in clear text without TLS in front",
            err=True,
        )
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **uvicorn_settings(),
    )
    # What is alive now (the engine, the plugins, the app) lives as long as the process:
    # full collections stop walking it, which shortens each one a large run sets off
    gc.collect()
    gc.freeze()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then re-raised Ctrl-C
        pass
    finally:
        sock.close()
        conductor.close()
