"""The errors of the ``sql`` node: what the database said, with its SQLSTATE.

::

    ExecutionError (atomiton_core)
    └── SqlError             SQL_ERROR      a statement or a connection failed in the database
    ConfigurationError (atomiton_core)
    └── SqlConfigError       (CONFIGURATION_ERROR) a connection that cannot be set up

The SQLSTATE travels in the message (``[SQLSTATE 23505]``), so it reaches results, run
records and the server's JSON, and as ``error.sqlstate`` in Python.
"""

from __future__ import annotations

from typing import Any

from atomiton_core import ConfigurationError, ExecutionError

__all__ = ["SqlConfigError", "SqlError", "database_error"]

#: SQLSTATE classes after which another attempt may succeed: a lost connection, a
#: serialization failure or a deadlock.
_RETRYABLE = ("08", "40001", "40P01")


class SqlError(ExecutionError):
    """A statement or a connection failed in the database."""

    # the core types its own codes as ErrorCode members; a plugin's code is a str
    code = "SQL_ERROR"  # type: ignore[assignment]

    @property
    def sqlstate(self) -> str | None:
        """The five-character SQLSTATE the database gave (``23505``), when the driver has it."""
        value = self.context.get("sqlstate")
        return value if isinstance(value, str) else None


class SqlConfigError(ConfigurationError):
    """A connection the node cannot set up: a bad URL, an unknown name, a missing driver."""


def _sqlstate(orig: Any) -> str | None:
    for attribute in ("sqlstate", "pgcode"):  # psycopg 3, psycopg2
        value = getattr(orig, attribute, None)
        if isinstance(value, str) and value:
            return value
    return None


def _message(orig: Any) -> str:
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if isinstance(primary, str) and primary:
        detail = getattr(diag, "message_detail", None)
        return f"{primary} ({detail})" if detail else primary
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def database_error(exc: BaseException, doing: str, *, node_id: str | None) -> SqlError:
    """An error of the database (SQLAlchemy's DBAPIError, or the driver's own) as a SqlError
    saying what was being done, the database's message and SQLSTATE."""
    orig: Any = getattr(exc, "orig", None) or exc
    sqlstate = _sqlstate(orig)
    message = _message(orig)
    context: dict[str, Any] = {"sqlstate": sqlstate, "driver_error": type(orig).__name__}
    errorname = getattr(orig, "sqlite_errorname", None)  # SQLite has result codes, no SQLSTATE
    if isinstance(errorname, str):
        context["sqlite_error"] = errorname
        message = f"{message} [{errorname}]"
    if sqlstate:
        message = f"{message} [SQLSTATE {sqlstate}]"
    diag = getattr(orig, "diag", None)
    hint = getattr(diag, "message_hint", None) if diag is not None else None
    invalidated = bool(getattr(exc, "connection_invalidated", False))
    retryable = invalidated or (sqlstate is not None and sqlstate.startswith(_RETRYABLE))
    return SqlError(
        f"{doing} failed: {message}",
        node_id=node_id,
        hint=hint if isinstance(hint, str) and hint else None,
        retryable=retryable,
        **context,
    )
