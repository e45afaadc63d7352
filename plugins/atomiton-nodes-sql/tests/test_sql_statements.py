"""SQL text: scripts split into statements, templates refused or quoted as identifiers, and
values that reach the database as they are, whatever they hold (hypothesis, real SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from atomiton_core.testing import NodeRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from atomiton_nodes_sql.statements import (
    cursor_statement,
    refused_template,
    render_identifiers,
    split_statements,
)

#: Text a database can hold: no NUL, no lone surrogate (UTF-8 has no form for one).
TEXT = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")


@pytest.mark.parametrize(
    ("script", "statements"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'a;b'; SELECT \"c;d\"", ["SELECT 'a;b'", 'SELECT "c;d"']),
        ("SELECT 'it''s; here'; SELECT 2", ["SELECT 'it''s; here'", "SELECT 2"]),
        ("SELECT 1 -- one; two\n; SELECT 2", ["SELECT 1 -- one; two", "SELECT 2"]),
        ("SELECT /* ; */ 1;\n-- only a comment;\n", ["SELECT /* ; */ 1"]),
        ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT f()",
         ["CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT f()"]),
        ("DO $b$ BEGIN PERFORM 1; END $b$; SELECT $1",
         ["DO $b$ BEGIN PERFORM 1; END $b$", "SELECT $1"]),
        ("  \n ; ;", []),
    ],
)  # fmt: skip
def test_scripts_split_where_statements_end(script: str, statements: list[str]) -> None:
    assert split_statements(script) == statements


def test_sqlite_scripts_keep_trigger_bodies_whole() -> None:
    script = "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END; SELECT 3"
    assert split_statements(script, sqlite=True) == [
        "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END",
        "SELECT 3",
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '{{ x }}'",
        "SELECT * FROM t WHERE a = {{ a }}",
        "SELECT {{ a | upper }}",
        "SELECT {% raw %}1{% endraw %}",
        "SELECT {# note #} 1",
        "SELECT {{ x | identifier }} WHERE {{ y }}",
    ],
)
def test_templates_that_would_splice_values_are_refused(sql: str) -> None:
    assert refused_template(sql) is not None


def test_identifier_templates_are_quoted_by_the_dialect() -> None:
    names = {"t": "Orders", "s": ["archive", "order items"], "plain": "orders"}
    sql = "SELECT {{ plain | identifier }} FROM {{ s | identifier }}, {{ t|identifier }}"
    assert refused_template(sql) is None
    rendered = render_identifiers(sql, postgresql.dialect().identifier_preparer, names.__getitem__)
    assert rendered == 'SELECT orders FROM archive."order items", "Orders"'
    with pytest.raises(ValueError, match="an identifier is a non-empty string"):
        render_identifiers(
            "SELECT {{ n | identifier }}",
            sqlite.dialect().identifier_preparer,
            {"n": 5}.__getitem__,
        )


def test_only_statements_a_cursor_can_run_stream_on_postgresql() -> None:
    assert cursor_statement("  -- note\n/* x */ (SELECT 1)")
    assert cursor_statement("with x as (select 1) select * from x")
    assert not cursor_statement("UPDATE t SET a = 1 RETURNING a")


@settings(max_examples=200, deadline=None)
@given(st.text(TEXT, min_size=1, max_size=30))
def test_any_name_quoted_as_an_identifier_is_that_name(name: str) -> None:
    db = sqlite3.connect(":memory:")
    try:
        preparer = sqlite.dialect().identifier_preparer
        db.execute("CREATE TABLE keep (x)")
        create = render_identifiers(
            "CREATE TABLE {{ n | identifier }} (x)", preparer, {"n": name}.__getitem__
        )
        db.execute(create)
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        assert tables == {"keep", name}
    finally:
        db.close()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeRunner, str]:
    path: Path = tmp_path_factory.mktemp("bound") / "bound.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, text TEXT)")
    db.close()
    import atomiton_nodes_sql.plugin

    runner = NodeRunner(plugins=[atomiton_nodes_sql.plugin])
    yield runner, f"sqlite:///{path}"  # type: ignore[misc]
    runner.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.text(TEXT, max_size=40) | st.sampled_from(["'); DROP TABLE v; --", "\\'; --", ":id"])
)
def test_a_bound_value_is_stored_as_it_is(stored: tuple[NodeRunner, str], value: str) -> None:
    runner, url = stored
    (row,) = runner.run(
        "sql",
        {"operation": "execute", "connection": url,
         "sql": "INSERT INTO v (text) VALUES (:value) RETURNING id"},
        {"bind": {"value": value}},
    )["records"]  # fmt: skip
    back = runner.run(
        "sql", {"connection": url, "sql": "SELECT text FROM v WHERE id = :id"}, {"bind": row}
    )
    assert back["records"] == [{"text": value}]
