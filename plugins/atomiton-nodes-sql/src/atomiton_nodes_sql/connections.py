"""Where a node connects: a URL or a named connection, and each conductor's engines.

A node's ``connection`` is a SQLAlchemy URL (``sqlite:///orders.db``,
``postgresql+psycopg://app@db.internal/shop``) or the name of a connection defined once in
the conductor's config::

    create_conductor(config={"sqlConnections": {
        "shop": "postgresql+psycopg://app@db.internal/shop",          # a URL
        "reports": {"secret": "REPORTS_DB_URL"},                        # a URL kept as a secret
        "local": {"url": "sqlite:///local.db", "options": {"pool_size": 2}},
    }})

A named connection is the host's: it is trusted as it is. A URL written in a flow is held to
the conductor's security settings: a SQLite file must lie under ``allowedRoots``, a server's
host must pass ``allowedHosts`` / ``blockPrivateNetworks``.

**Pools.** Each conductor has its own engines (one per URL and options), created on first use
and disposed when the conductor closes (the ``atomiton_conductor_closed`` hook): nodes of one
conductor share connections, two conductors never do. A conductor is told apart by its
``config`` object, which every node of it sees as ``ctx.config``. A conductor that is never
closed keeps its engines until the process ends. A node running elsewhere (an isolated
worker process, a Dask worker) opens its own connection and closes it when it ends.

An in-memory SQLite database (``sqlite://``) is one database per conductor, shared by its
nodes one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from atomiton_core import NodeContext
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import NullPool, StaticPool

from atomiton_nodes_sql.errors import SqlConfigError

__all__ = ["CONFIG_KEY", "Pools", "Target", "resolve_target"]

#: The conductor config key holding named connections.
CONFIG_KEY = "sqlConnections"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SECRET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSTALL = {
    "postgresql": 'pip install "atomiton-nodes-sql[postgres]"',
    "psycopg": 'pip install "atomiton-nodes-sql[postgres]"',
}


@dataclass(frozen=True)
class Target:
    """A database to connect to: its URL, engine options, and whether the host named it."""

    url: URL
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The name of the conductor's connection it came from; None: a URL given by the flow.
    name: str | None = None

    @property
    def shown(self) -> str:
        """How errors name it: the connection's name (the host's; it may be a secret), or
        the URL without its password."""
        if self.name is not None:
            return f"connection {self.name!r}"
        return self.url.render_as_string(hide_password=True)

    @property
    def memory(self) -> bool:
        """An in-memory SQLite database."""
        return self.url.get_backend_name() == "sqlite" and self.url.database in (
            None,
            "",
            ":memory:",
        )

    def key(self) -> str:
        return json.dumps(
            [self.url.render_as_string(hide_password=False), self.options],
            sort_keys=True,
            default=repr,
        )


def _parse(text: str, where: str) -> URL:
    try:
        return sa.make_url(text)
    except (ArgumentError, ValueError):
        raise SqlConfigError(
            f"{where}: {text.split('://', 1)[0]!r}... is not a SQLAlchemy URL",
            hint="write dialect[+driver]://user@host/database, e.g. sqlite:///orders.db or "
            "postgresql+psycopg://app@localhost/shop",
        ) from None


def _looks_like_url(text: str) -> bool:
    return "://" in text or text.startswith("sqlite:")


def resolve_target(ctx: Any, connection: str | None) -> Target:
    """The database a node's ``connection`` names (its template already rendered)."""
    named: Mapping[str, Any] = ctx.config.get(CONFIG_KEY) or {}
    if not isinstance(named, Mapping):
        raise SqlConfigError(
            f"the conductor config {CONFIG_KEY!r} must map names to connections, got "
            f"{type(named).__name__}"
        )
    if connection is None or not connection.strip():
        if "default" in named:
            connection = "default"
        elif len(named) == 1:
            connection = next(iter(named))
        else:
            raise SqlConfigError(
                "no `connection` given and the conductor has no default one",
                node_id=ctx.node_id,
                hint="set `connection` to a SQLAlchemy URL (sqlite:///data.db) or to the name "
                f"of a connection of the conductor's config {CONFIG_KEY!r} (one named "
                "'default' is used when none is given)",
            )
    connection = connection.strip()
    if _looks_like_url(connection):
        target = Target(_parse(connection, "connection"))
        _check_allowed(ctx, target)
        return target
    if connection not in named:
        known = ", ".join(sorted(map(str, named))) or "none"
        raise SqlConfigError(
            f"no connection named {connection!r} in the conductor's config {CONFIG_KEY!r}",
            node_id=ctx.node_id,
            hint=f"its connections: {known}; or give a SQLAlchemy URL (dialect://...)",
        )
    return _named(ctx, connection, named[connection])


def _named(ctx: Any, name: str, spec: Any) -> Target:
    where = f"connection {name!r} of the conductor's config {CONFIG_KEY!r}"
    if isinstance(spec, str):
        return Target(_parse(spec, where), name=name)
    if not isinstance(spec, Mapping):
        raise SqlConfigError(f"{where} must be a URL or a mapping, got {type(spec).__name__}")
    unknown = set(spec) - {"url", "secret", "options"}
    if unknown or ("url" in spec) == ("secret" in spec):
        raise SqlConfigError(
            f"{where} must have exactly one of `url` and `secret` (and may have `options`)"
            + (f"; unknown keys {sorted(unknown)}" if unknown else ""),
        )
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise SqlConfigError(f"{where}: `options` must map create_engine() arguments")
    if "url" in spec:
        return Target(_parse(str(spec["url"]), where), dict(options), name)
    secret = str(spec["secret"])
    if not _SECRET.match(secret):
        raise SqlConfigError(f"{where}: {secret!r} is not a secret name")
    url = ctx.render("{{ secrets[__secret__] }}", __secret__=secret)
    return Target(_parse(str(url), where), dict(options), name)


def _check_allowed(ctx: Any, target: Target) -> None:
    """A URL from a flow reaches only what the conductor lets nodes reach."""
    security = ctx.security
    url = target.url
    if url.get_backend_name() == "sqlite":
        if target.memory or security.allowed_roots is None:
            return
        database = str(url.database)
        if database.startswith("file:") or url.query.get("uri"):
            raise SqlConfigError(
                f"{target.shown}: SQLite URI filenames are refused where allowedRoots is set",
                node_id=ctx.node_id,
                hint="name the database file by its path: sqlite:///path/to/file.db",
            )
        ctx.resolve_path(database, "connection")
        return
    if security.allowed_hosts is None and not security.block_private_networks:
        return
    host = url.host or ""
    shown = f"[{host}]" if ":" in host else host
    asyncio.run(security.check_url(f"{url.drivername}://{shown}/", node_id=ctx.node_id))


def _engine(target: Target, *, pooled: bool) -> Engine:
    options: dict[str, Any] = {}
    sqlite = target.url.get_backend_name() == "sqlite"
    if target.memory:  # one connection, so every node sees the same database
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif not pooled:
        options["poolclass"] = NullPool
    elif not sqlite:
        options["pool_pre_ping"] = True
    options.update(target.options)
    try:
        engine = sa.create_engine(target.url, **options)
    except NoSuchModuleError:
        raise SqlConfigError(
            f"{target.shown}: SQLAlchemy has no dialect {target.url.drivername!r}",
            hint="write dialect[+driver]://..., e.g. sqlite:///data.db, "
            "postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db",
        ) from None
    except ImportError as exc:
        backend = target.url.get_backend_name()
        raise SqlConfigError(
            f"{target.shown}: the database driver is not installed ({exc})",
            hint=_INSTALL.get(backend, f"install the DBAPI driver for {backend!r}"),
        ) from None
    except (ArgumentError, TypeError) as exc:
        raise SqlConfigError(f"{target.shown}: {exc}") from None
    if sqlite:
        _transactional_sqlite(engine)
    return engine


def _transactional_sqlite(engine: Engine) -> None:
    """Real transactions on SQLite: Python's sqlite3 would otherwise commit DDL (CREATE
    TABLE...) outside the transaction, and a failed script would leave half its work."""

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


class _Owned:
    """One conductor's engines; holding its config keeps the id from being reused."""

    __slots__ = ("config", "engines", "locks")

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.engines: dict[str, Engine] = {}
        self.locks: dict[str, threading.Lock] = {}


class Pools:
    """The engines of every conductor in this process, by conductor and then by target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[int, _Owned] = {}

    @contextlib.contextmanager
    def engine(self, ctx: Any, target: Target) -> Iterator[Engine]:
        """The engine to use for ``target``: the conductor's own, or (off the conductor's
        process) one of this node's, disposed when it is done. In-memory SQLite is held by
        one node at a time."""
        if not isinstance(ctx, NodeContext):
            engine = _engine(target, pooled=False)
            try:
                yield engine
            finally:
                engine.dispose()
            return
        key = target.key()
        with self._lock:
            owned = self._owners.get(id(ctx.config))
            if owned is None or owned.config is not ctx.config:
                owned = self._owners[id(ctx.config)] = _Owned(ctx.config)
            found = owned.engines.get(key)
            if found is None:
                found = owned.engines[key] = _engine(target, pooled=True)
                if target.memory:
                    owned.locks[key] = threading.Lock()
            lock = owned.locks.get(key)
        with lock if lock is not None else contextlib.nullcontext():
            yield found

    def close(self, config: Mapping[str, Any]) -> None:
        """Dispose of the engines of the conductor whose config this is."""
        with self._lock:
            owned = self._owners.get(id(config))
            if owned is None or owned.config is not config:
                return
            del self._owners[id(config)]
        for engine in owned.engines.values():
            engine.dispose()


#: The one registry: each conductor's engines, removed when it closes.
POOLS = Pools()
