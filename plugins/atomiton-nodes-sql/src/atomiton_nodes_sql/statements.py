"""SQL text: identifier templates, scripts split into statements, bound values.

Values never enter SQL text. A statement names them ``:name`` and they are sent to the
database as bound parameters; the one template allowed in SQL text is
``{{ expression | identifier }}``, whose value (a table or column name, or a list of names
for ``schema.table``) is quoted by the dialect's own identifier quoting. Any other ``{{ }}``,
``{% %}`` or ``{# #}`` in SQL text is refused: it would splice a value into the statement.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import IdentifierPreparer

__all__ = [
    "bind_names",
    "bind_value",
    "cursor_statement",
    "refused_template",
    "render_identifiers",
    "row_value",
    "row_values",
    "split_statements",
    "statement",
    "unique_names",
    "with_lists_expanded",
]

_TEMPLATE = re.compile(r"\{\{(?P<body>.*?)\}\}|\{%|\{#", re.DOTALL)
_IDENTIFIER = re.compile(r"^(?P<expr>.*\S)\s*\|\s*identifier\s*$", re.DOTALL)
_DOLLAR = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
#: Statements a PostgreSQL server-side cursor can run (``DECLARE ... CURSOR FOR`` these).
_CURSOR_STATEMENT = re.compile(r"^\s*(?:\(\s*)*(?:SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)


def refused_template(sql: str) -> str | None:
    """Why the templates in ``sql`` are refused, or None when it has only identifier ones."""
    for match in _TEMPLATE.finditer(sql):
        body = match.group("body")
        if body is None:
            return (
                f"SQL text may not hold {match.group(0)!r} blocks: the only template allowed "
                "in SQL is {{ name | identifier }}"
            )
        if not _IDENTIFIER.match(body.strip()):
            return (
                f"the SQL text holds the template {match.group(0)!r}, which would splice a "
                "value into the statement; values are bound: write :name in the SQL and give "
                "name in `bind` (or as a variable or a field of the input); a table or column "
                "name may be templated as {{ name | identifier }}"
            )
    return None


def render_identifiers(
    sql: str, preparer: IdentifierPreparer, evaluate: Callable[[str], Any]
) -> str:
    """``sql`` with each ``{{ expr | identifier }}`` replaced by the value of ``expr``, quoted
    as an identifier by the dialect (a list of names becomes ``"schema"."table"``)."""
    problem = refused_template(sql)
    if problem is not None:
        raise ValueError(problem)

    def quoted(match: re.Match[str]) -> str:
        found = _IDENTIFIER.match(match.group("body").strip())
        assert found is not None
        value = evaluate(found.group("expr"))
        parts = list(value) if isinstance(value, list | tuple) else [value]
        if not parts or not all(isinstance(p, str) and p for p in parts):
            raise ValueError(
                f"{match.group(0)!r} gave {value!r}: an identifier is a non-empty string, or "
                "a list of them (schema, table)"
            )
        return ".".join(preparer.quote(p) for p in parts)

    return _TEMPLATE.sub(quoted, sql)


def split_statements(script: str, *, sqlite: bool = False) -> list[str]:
    """The statements of a script, split at the ``;`` outside quotes, comments and
    PostgreSQL's dollar quotes; statements that are only comments are dropped. For SQLite,
    a ``;`` ends a statement only where SQLite agrees (``CREATE TRIGGER ... BEGIN ...; END``)."""
    statements: list[str] = []
    start = 0
    i = 0
    n = len(script)
    while i < n:
        ch = script[i]
        if ch in "'\"`":
            end = script.find(ch, i + 1)
            while end != -1 and end + 1 < n and script[end + 1] == ch:  # doubled: escaped
                end = script.find(ch, end + 2)
            i = n if end == -1 else end + 1
            continue
        if script.startswith("--", i):
            end = script.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if script.startswith("/*", i):
            end = script.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if ch == "$":
            tag = _DOLLAR.match(script, i)
            if tag is not None:
                end = script.find(tag.group(0), tag.end())
                i = n if end == -1 else end + len(tag.group(0))
                continue
        if ch == ";":
            candidate = script[start : i + 1]
            if not sqlite or sqlite3.complete_statement(candidate):
                statements.append(candidate[:-1])
                start = i + 1
        i += 1
    statements.append(script[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(text: str) -> bool:
    return bool(text[_LEADING_COMMENTS.match(text).end() :].strip())  # type: ignore[union-attr]


def cursor_statement(sql: str) -> bool:
    """Whether a PostgreSQL server-side cursor can run ``sql`` (a SELECT, WITH, VALUES)."""
    return bool(_CURSOR_STATEMENT.match(sql[_LEADING_COMMENTS.match(sql).end() :]))  # type: ignore[union-attr]


def statement(sql: str) -> sa.TextClause:
    """A textual statement; ``:name`` marks a bound value (``\\:`` a literal colon)."""
    return sa.text(sql)


def bind_names(clause: sa.TextClause) -> list[str]:
    """The names of the values a textual statement binds, in order."""
    return list(clause.compile().params)


def bind_value(value: Any) -> Any:
    """A value as it is bound: mappings as JSON text; the rest as the driver adapts it."""
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return value


#: Values passed to the driver as they are, without asking whether they are mappings.
_PLAIN = frozenset({str, int, float, bool, type(None), bytes})
_JSON = frozenset({dict, list, tuple})


def row_value(value: Any) -> Any:
    """A record's value as it is inserted: mappings and lists as JSON text."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind in _JSON or isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return value


def row_values(record: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """One record's values for ``columns`` (a missing one is NULL), as they are inserted."""
    out: dict[str, Any] = {}
    get = record.get
    for column in columns:
        value = get(column)
        out[column] = value if type(value) in _PLAIN else row_value(value)
    return out


def with_lists_expanded(clause: sa.TextClause, values: Mapping[str, Any]) -> sa.TextClause:
    """The statement with each name bound to a list made an expanding parameter, so that
    ``WHERE id IN :ids`` sends one bound value per item."""
    lists = [k for k, v in values.items() if isinstance(v, list | tuple)]
    if not lists:
        return clause
    return clause.bindparams(*(sa.bindparam(k, expanding=True) for k in lists))


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names made unique (``id``, ``id_2``), so a row is a record with every column."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in names:
        name = raw or "column"
        unique, k = name, 2
        while unique in seen:
            unique, k = f"{name}_{k}", k + 1
        seen.add(unique)
        out.append(unique)
    return out
