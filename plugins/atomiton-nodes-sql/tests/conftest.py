"""Real databases for the tests: SQLite files in the test's folder, and a PostgreSQL server
started here on 127.0.0.1 (Debian's binaries: ``initdb`` into a temporary folder, ``pg_ctl
start``, stopped at the end of the session); its tests are skipped, saying why, where the
binaries are missing. As root, the server runs as ``nobody`` (PostgreSQL refuses root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import Conductor, create_conductor
from atomiton_core.testing import NodeRunner

import atomiton_nodes_sql.plugin

PLUGIN = atomiton_nodes_sql.plugin


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


@pytest.fixture
def sqlite_url(sqlite_path: Path) -> str:
    return f"sqlite:///{sqlite_path}"


@pytest.fixture
def conductor() -> Iterator[Conductor]:
    with create_conductor(f"memory://sql-{uuid.uuid4().hex}", record_runs=False) as c:
        yield c


@pytest.fixture
def runner() -> Iterator[NodeRunner]:
    """One conductor (with this package's plugin) running single nodes: ``runner.run("sql",
    params, inputs)`` returns the outputs or raises the node's error."""
    with NodeRunner(plugins=[PLUGIN]) as r:
        yield r


# -- PostgreSQL ----------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: PATH, ``pg_config --bindir``, /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """A running server: ``url(database)`` for the node, ``connect()`` for the test's own
    look at it (pg_stat_activity)."""

    host: str
    port: int
    root: Path

    def url(self, database: str = "postgres", **query: str) -> str:
        extra = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}" + (
            f"?{extra}" if extra else ""
        )

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=database, autocommit=True
        )


def _as_server_user(root: Path) -> dict[str, Any]:
    """subprocess arguments that run the server's programs as ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (extra: postgres)")
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
            "apt-get install postgresql (scripts/test.sh does)"
        )
    # not under pytest's tmp folder (nor $TMPDIR, as root): its parents may be closed to the
    # server's user
    root = Path(
        tempfile.mkdtemp(prefix="atomiton-sql-pg-", dir="/tmp" if os.geteuid() == 0 else None)
    )
    as_user = _as_server_user(root)
    data = root / "data"

    def run(*argv: str | Path) -> None:
        done = subprocess.run(
            [str(a) for a in argv], cwd=root, capture_output=True, text=True, **as_user
        )
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{argv[0]} failed ({done.returncode}):\n{done.stderr}\n{tail}")

    run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    run(bindir / "pg_ctl", "-D", data, "-l", root / "server.log", "-o", options, "-w", "start")
    try:
        yield Postgres("127.0.0.1", port, root)
    finally:
        with contextlib.suppress(Exception):
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_database(postgres: Postgres) -> Iterator[str]:
    """A fresh database for one test, dropped after it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with postgres.connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with postgres.connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


Waiter = Callable[..., Any]


@pytest.fixture
def wait_for() -> Waiter:
    """``wait_for(check, what)``: ask ``check`` again and again (each asking is a query to the
    server) until it gives something true, and return that; fail saying ``what`` did not
    happen within ``timeout`` seconds."""

    def wait(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not happen within {timeout:g} s")

    return wait
