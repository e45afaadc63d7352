"""The sql node against the testing kit's node contract: declared outputs of declared types,
only AtomitonErrors, inputs never mutated, timeouts and cancellation respected.

Parameters are drawn against a real SQLite file made for each test (statements that work,
fail, return nothing, stream, and take longer than the contract's timeout); inputs are the
kit's own, derived from the port types, so anything may come in."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from atomiton_core.testing import NodeContractTests
from hypothesis import strategies as st

import atomiton_nodes_sql.plugin

#: Longer than the contract's 0.5 s timeout (about 0.8 s), short enough to end on its own.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2500000) "
    "SELECT count(*) AS n FROM c"
)
SQL = [
    "SELECT * FROM t ORDER BY id",
    "SELECT id, label FROM t WHERE id >= :least",
    "SELECT count(*) AS n FROM {{ input.table | identifier }}",
    "SELECT * FROM t WHERE id IN :ids",
    "UPDATE t SET label = :label WHERE id = :id",
    "DELETE FROM t WHERE id > 100 RETURNING id",
    "SELECT * FROM nowhere",
    "not sql at all",
]
SCRIPTS = [
    "INSERT INTO t (label) VALUES (:label); UPDATE t SET label = 'x' WHERE id = 1",
    "CREATE TABLE IF NOT EXISTS u (a); INSERT INTO u VALUES (1); SELECT 1/0",
]
BIND = st.fixed_dictionaries(
    {},
    optional={
        "least": st.integers(-2, 5),
        "label": st.text(max_size=8),
        "id": st.integers(0, 5),
        "ids": st.lists(st.integers(0, 5), min_size=1, max_size=3),
    },
)


def _params(url: str, sql: list[str] = SQL, scripts: list[str] = SCRIPTS) -> Any:
    base = {"connection": st.just(url)}
    query = st.fixed_dictionaries(
        {**base, "operation": st.sampled_from(["query", "execute"]), "sql": st.sampled_from(sql)},
        optional={"bind": BIND},
    )
    streaming = st.fixed_dictionaries(
        {**base, "sql": st.sampled_from(sql[:4])},
        optional={"batchSize": st.integers(1, 3), "maxRows": st.integers(0, 4), "bind": BIND},
    )
    script = st.fixed_dictionaries(
        {**base, "operation": st.just("script"), "sql": st.sampled_from(scripts)},
        optional={"bind": BIND},
    )
    insert = st.fixed_dictionaries(
        {**base, "operation": st.just("insert"), "table": st.sampled_from(["t", "missing"])},
        optional={
            "batchSize": st.integers(1, 3),
            "onConflict": st.sampled_from(["error", "ignore"]),
            "columns": st.sampled_from([["id", "label"], ["label"]]),
            "atomic": st.booleans(),
        },
    )
    return st.one_of(query, streaming, script, insert) if sql is SQL else st.one_of(query, script)


RECORD = st.fixed_dictionaries(
    {}, optional={"id": st.integers(0, 8), "label": st.one_of(st.text(max_size=6), st.none())}
)
INPUTS = st.fixed_dictionaries(
    {},
    optional={
        "input": st.one_of(
            st.fixed_dictionaries({"table": st.sampled_from(["t", 't"; DROP TABLE t; --'])}),
            st.lists(RECORD, max_size=4),
            st.integers(),
            st.none(),
        ),
        "records": st.one_of(st.lists(RECORD, max_size=4), st.lists(st.integers(), max_size=2)),
        "bind": st.one_of(BIND, st.lists(BIND, max_size=2)),
    },
)


def _database(tmp_path: Path) -> str:
    path = tmp_path / "contract.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT)")
        db.executemany("INSERT INTO t (label) VALUES (?)", [("a",), ("b",), ("c",)])
    db.close()
    return f"sqlite:///{path}"


class TestSqlContract(NodeContractTests):
    plugin = atomiton_nodes_sql.plugin
    max_examples = 30

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.params = {"sql": _params(_database(tmp_path))}
        self.inputs = {"sql": INPUTS}


@pytest.mark.slow
class TestSqlStopsInTime(NodeContractTests):
    """The timeout rule with statements that outlast the timeout: SQLite must stop them."""

    plugin = atomiton_nodes_sql.plugin
    max_examples = 6
    test_declared_outputs = test_errors_are_atomiton_errors = test_inputs_not_mutated = None

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        script = f"DELETE FROM t WHERE id > 1; {SLOW}"
        self.params = {"sql": _params(_database(tmp_path), [SLOW] * 4, [script])}
        self.inputs = {"sql": st.just({})}
