"""Cancelling a running statement on the database server when its node is stopped.

The conductor stops a node's attempt (its ``timeout``, a cancelled run, fail-fast) by setting
the attempt's token, ``ctx.stop_event``; a thread blocked in a statement would run on until
the statement ends. While a node holds a connection, a watcher thread waits on that token
and, when it is set before the node is done, asks the database to cancel what runs there:

- psycopg 3: ``cancel_safe()`` (a cancel request on a new connection; ``cancel()`` before
  psycopg 3.2), psycopg2: ``cancel()`` — PostgreSQL then ends the statement
  (``57014 query_canceled``) and the node's thread returns;
- SQLite: ``interrupt()``, which stops the statement at its next step.

Other drivers have no cancel: there only the connection is discarded once the statement ends.
A connection whose statement was cancelled through a server never goes back to the pool: a
cancel request that arrives late could otherwise cancel the next node's statement. It is
closed, so its server process ends (the backend leaves ``pg_stat_activity``). A SQLite
connection stays: an interrupt that comes when nothing runs is forgotten when the next
statement starts, and closing it would lose an in-memory database.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["StatementGuard", "cancel_running"]

_log = logging.getLogger("atomiton.nodes.sql")
#: How long the cancel request itself may take (psycopg's cancel_safe).
CANCEL_TIMEOUT_S = 5.0


def cancel_running(driver_connection: Any) -> str | None:
    """Ask the database to cancel what runs on this driver connection; how, or None."""
    safe = getattr(driver_connection, "cancel_safe", None)
    if callable(safe):
        safe(timeout=CANCEL_TIMEOUT_S)
        return "cancel_safe"
    for method in ("cancel", "interrupt"):
        call = getattr(driver_connection, method, None)
        if callable(call):
            call()
            return method
    return None


class StatementGuard:
    """While active, cancels the connection's running statement when ``stop`` is set.

    ``fired`` tells that a cancel was sent; the connection is then invalidated on exit
    (unless it was a SQLite interrupt). ``stop`` None (a node on a worker that has no
    token) watches nothing."""

    def __init__(self, connection: Connection, stop: threading.Event | None) -> None:
        self.connection = connection
        self.stop = stop
        self.fired = False
        #: whether the connection must not be used again (see the module's notes)
        self.discard = False
        self._done = False
        self._lock = threading.Lock()
        self._driver: Any = None

    def __enter__(self) -> StatementGuard:
        if self.stop is not None and not self.stop.is_set():
            # taken here, in the node's thread: the watcher must not make SQLAlchemy reconnect
            self._driver = self.connection.connection.driver_connection
            threading.Thread(target=self._watch, name="atomiton-sql-cancel", daemon=True).start()
        return self

    def _watch(self) -> None:
        stop = self.stop
        assert stop is not None
        while not stop.wait(1.0):  # the token is set when the attempt ends, in any case
            if self._done:
                return
        with self._lock:
            if self._done:
                return
            self.fired = True
            self.discard = True
            try:
                how = cancel_running(self._driver)
            except Exception as exc:  # the statement still ends; the connection is dropped
                _log.warning("could not cancel the running statement: %s", exc)
                return
            self.discard = how != "interrupt"
            if how is None:
                _log.warning(
                    "the %s driver cannot cancel a running statement; the connection is "
                    "discarded when it ends",
                    self.connection.dialect.driver,
                )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done = True
        if self.discard:
            self.connection.invalidate()
