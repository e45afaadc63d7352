"""The sql node against a real PostgreSQL server the tests start (see conftest.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from atomiton_core import ExecutionStatus, FlowValidationError, NodeTimeout, create_conductor
from atomiton_core.testing import NodeRunner

from atomiton_nodes_sql import SqlError
from atomiton_nodes_sql import plugin as sql_plugin

pytestmark = pytest.mark.slow

ORDERS = """
CREATE TABLE orders (
  id integer PRIMARY KEY,
  region text NOT NULL,
  note text,
  total numeric(12, 2) NOT NULL,
  placed timestamptz NOT NULL DEFAULT now()
)
"""


@pytest.fixture
def url(postgres: Any, pg_database: str) -> str:
    with postgres.connect(pg_database) as db:
        db.execute(ORDERS)
        db.execute(
            "INSERT INTO orders (id, region, note, total) VALUES "
            "(1, 'North', 'a', 10), (2, 'South', NULL, 25.50), (3, 'North', 'c', 7.25)"
        )
    return str(postgres.url(pg_database))


def count(postgres: Any, database: str, sql: str = "SELECT count(*) FROM orders") -> int:
    with postgres.connect(database) as db:
        return int(db.execute(sql).fetchone()[0])


def test_query_keeps_the_databases_types_and_names_them(runner: NodeRunner, url: str) -> None:
    out = runner.run(
        "sql",
        {"connection": url, "sql": "SELECT id, total, placed, note FROM orders "
         "WHERE region = :region AND total > :least ORDER BY id", "bind": {"least": 8}},
        {"input": {"region": "North"}},
    )  # fmt: skip
    (row,) = out["records"]
    assert row["id"] == 1 and row["total"] == Decimal("10.00") and row["note"] == "a"
    assert isinstance(row["placed"], datetime) and row["placed"].tzinfo is not None
    assert out["columns"] == [
        {"name": "id", "type": "int4"},
        {"name": "total", "type": "numeric(12,2)"},
        {"name": "placed", "type": "timestamptz"},
        {"name": "note", "type": "text"},
    ]
    out = runner.run(
        "sql",
        {"connection": url, "sql": "SELECT id FROM orders WHERE id IN :ids ORDER BY id"},
        {"bind": {"ids": [2, 3]}},
    )
    assert out["records"] == [{"id": 2}, {"id": 3}]


def test_execute_counts_rows_and_returns_what_returning_gives(runner: NodeRunner, url: str) -> None:
    out = runner.run(
        "sql",
        {"operation": "execute", "connection": url,
         "sql": "UPDATE orders SET total = total + :plus WHERE region = :region",
         "bind": {"plus": 1, "region": "North"}},
    )  # fmt: skip
    assert out["rowCount"] == 2
    out = runner.run(
        "sql",
        {"operation": "execute", "connection": url,
         "sql": "DELETE FROM orders WHERE region = 'South' RETURNING id, total"},
    )  # fmt: skip
    assert out["records"] == [{"id": 2, "total": Decimal("25.50")}] and out["rowCount"] == 1


def test_errors_carry_the_message_and_sqlstate(runner: NodeRunner, url: str) -> None:
    with pytest.raises(SqlError) as caught:
        runner.run("sql", {"connection": url, "sql": "SELECT * FROM nowhere"})
    err = caught.value
    assert err.sqlstate == "42P01" and err.code == "SQL_ERROR" and not err.retryable
    assert 'relation "nowhere" does not exist [SQLSTATE 42P01]' in err.message
    with pytest.raises(SqlError) as caught:
        runner.run("sql", {"connection": url, "sql": "SELECT 1 / :zero"}, {"bind": {"zero": 0}})
    assert caught.value.sqlstate == "22012" and "division by zero" in caught.value.message


def test_insert_100000_records_in_batches(postgres: Any, pg_database: str, url: str) -> None:
    rows = [
        {"id": i, "region": ("North", "South", "East")[i % 3], "note": f"n{i}", "total": i / 4}
        for i in range(10, 100_010)
    ]
    with NodeRunner(plugins=[sql_plugin]) as runner:
        started = time.perf_counter()
        out = runner.run(
            "sql",
            {"operation": "insert", "connection": url, "table": "orders", "batchSize": 10_000},
            {"records": rows},
        )
        took = time.perf_counter() - started
    assert out["rowCount"] == 100_000 and out["output"]["batches"] == 10
    assert count(postgres, pg_database) == 100_003
    total = count(postgres, pg_database, "SELECT sum(total * 4)::bigint FROM orders WHERE id >= 10")
    assert total == sum(range(10, 100_010))
    assert took < 30, f"100,000 rows took {took:.1f} s"


def test_a_failing_insert_writes_nothing(postgres: Any, pg_database: str, url: str) -> None:
    rows: list[dict[str, Any]] = [{"id": i, "region": "R", "total": 1} for i in range(100, 100_100)]
    rows[86_000] = {"id": 2, "region": "R", "total": 1}  # batch 9 repeats a key already there
    with NodeRunner(plugins=[sql_plugin]) as runner, pytest.raises(SqlError) as caught:
        runner.run(
            "sql",
            {"operation": "insert", "connection": url, "table": "orders", "batchSize": 10_000},
            {"records": rows},
        )
    assert caught.value.sqlstate == "23505"
    assert "batch 9 of 10" in caught.value.message and "orders_pkey" in caught.value.message
    assert count(postgres, pg_database) == 3  # the eight batches before went back too


def test_upserts_on_conflict(runner: NodeRunner, postgres: Any, pg_database: str, url: str) -> None:
    records = [
        {"id": 1, "region": "North", "note": "changed", "total": 99},
        {"id": 4, "region": "West", "note": "new", "total": 4},
    ]
    base = {"operation": "insert", "connection": url, "table": "orders", "conflictColumns": ["id"]}
    runner.run("sql", {**base, "onConflict": "ignore"}, {"records": records})
    assert count(postgres, pg_database) == 4
    assert count(postgres, pg_database, "SELECT total::int FROM orders WHERE id = 1") == 10
    runner.run(
        "sql", {**base, "onConflict": "update", "updateColumns": ["total"]}, {"records": records}
    )
    assert count(postgres, pg_database, "SELECT total::int FROM orders WHERE id = 1") == 99
    with postgres.connect(pg_database) as db:
        assert db.execute("SELECT note FROM orders WHERE id = 1").fetchone() == ("a",)


def test_a_failing_script_rolls_back_its_ddl_too(
    runner: NodeRunner, postgres: Any, pg_database: str, url: str
) -> None:
    script = """
        CREATE TABLE audit (id serial PRIMARY KEY, what text);
        CREATE FUNCTION shout(t text) RETURNS text AS $$
            SELECT upper(t) || '; not a statement end';
        $$ LANGUAGE sql;
        INSERT INTO audit (what) VALUES (shout(:what));
        UPDATE orders SET total = -1;
        INSERT INTO orders (id, region, total) VALUES (1, 'dup', 0);
    """
    params = {"operation": "script", "connection": url, "sql": script, "bind": {"what": "x"}}
    with pytest.raises(SqlError) as caught:
        runner.run("sql", params)
    assert caught.value.sqlstate == "23505" and "statement 5 of 5" in caught.value.message
    exists = "SELECT count(*) FROM pg_tables WHERE tablename = 'audit'"
    assert count(postgres, pg_database, exists) == 0
    assert count(postgres, pg_database, "SELECT count(*) FROM orders WHERE total < 0") == 0
    out = runner.run("sql", {**params, "sql": script.rsplit("INSERT", 1)[0]})
    assert out["output"]["rowCounts"] == [-1, -1, 1, 3]
    with postgres.connect(pg_database) as db:
        assert db.execute("SELECT what FROM audit").fetchone() == ("X; not a statement end",)


def test_an_injection_attempt_is_stored_literally(
    runner: NodeRunner, postgres: Any, pg_database: str, url: str
) -> None:
    evil = "'); DROP TABLE orders; --"
    runner.run(
        "sql",
        {"operation": "execute", "connection": url,
         "sql": "INSERT INTO orders (id, region, note, total) VALUES (10, :region, :note, 0)"},
        {"input": {"region": evil, "note": "$$; DELETE FROM orders; $$"}},
    )  # fmt: skip
    runner.run(
        "sql",
        {"operation": "insert", "connection": url, "table": "orders"},
        {"records": [{"id": 11, "region": evil, "total": 0, "note": "\\'; TRUNCATE orders"}]},
    )
    with postgres.connect(pg_database) as db:
        stored = db.execute("SELECT region, note FROM orders WHERE id >= 10 ORDER BY id").fetchall()
    assert stored == [(evil, "$$; DELETE FROM orders; $$"), (evil, "\\'; TRUNCATE orders")]
    assert count(postgres, pg_database) == 5
    with pytest.raises(FlowValidationError, match="values are bound"):
        runner.run("sql", {"connection": url, "sql": "SELECT * FROM orders WHERE note = '{{ x }}'"})
    with pytest.raises(SqlError, match=r'relation "orders; DROP TABLE orders" does not exist'):
        runner.run(
            "sql",
            {"connection": url, "sql": "SELECT * FROM {{ input.t | identifier }}"},
            {"input": {"t": "orders; DROP TABLE orders"}},
        )
    assert count(postgres, pg_database) == 5


def test_batch_size_reads_through_a_server_side_cursor(
    runner: NodeRunner, postgres: Any, pg_database: str, url: str
) -> None:
    sql = "SELECT g AS n FROM generate_series(1, 25000) AS g ORDER BY g"
    out = runner.run("sql", {"connection": url, "sql": sql, "batchSize": 10_000})
    assert [len(b) for b in out["batches"]] == [10_000, 10_000, 5_000]
    assert out["batches"][2][-1] == {"n": 25_000} and out["columns"] == [
        {"name": "n", "type": "int4"}
    ]
    # a statement a cursor cannot run still comes back in batches
    out = runner.run(
        "sql",
        {"connection": url, "batchSize": 2,
         "sql": "UPDATE orders SET note = 'seen' RETURNING id"},
    )  # fmt: skip
    assert sorted(r["id"] for b in out["batches"] for r in b) == [1, 2, 3]


def _backend(postgres: Any, marker: str) -> Any:
    """The pid of the server process running a statement that holds ``marker``, if any."""
    with postgres.connect() as db:
        row = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
            "AND pid <> pg_backend_pid()",
            (f"%{marker}%",),
        ).fetchone()
    return row[0] if row else None


def _gone(postgres: Any, pid: int) -> bool:
    with postgres.connect() as db:
        return (
            db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]
            == 0
        )


def test_a_timeout_cancels_pg_sleep_on_the_server(postgres: Any, url: str, wait_for: Any) -> None:
    marker = f"timeout-{uuid.uuid4().hex}"
    done: dict[str, Any] = {}
    with NodeRunner(plugins=[sql_plugin]) as runner:

        def run() -> None:
            try:
                runner.run(
                    "sql",
                    {"connection": url, "sql": f"SELECT pg_sleep(60) /* {marker} */",
                     "timeout": 1500},
                )  # fmt: skip
            except BaseException as exc:
                done["error"] = exc
            done["at"] = time.perf_counter()

        thread = threading.Thread(target=run)
        started = time.perf_counter()
        thread.start()
        pid = wait_for(lambda: _backend(postgres, marker), "the pg_sleep starting")
        thread.join(10)
        assert not thread.is_alive()
        assert isinstance(done.get("error"), NodeTimeout), done
        assert done["at"] - started < 5
        wait_for(lambda: _gone(postgres, pid), f"backend {pid} leaving pg_stat_activity", 5)
        gone_after = time.perf_counter() - done["at"]
        assert gone_after < 2, f"backend {pid} went {gone_after:.2f} s after the timeout"
        # the pool works on: the next node gets a fresh connection
        assert runner.run("sql", {"connection": url, "sql": "SELECT 1 AS one"})["rowCount"] == 1


def test_cancelling_the_run_cancels_the_statement_on_the_server(
    postgres: Any, url: str, wait_for: Any
) -> None:
    marker = f"cancel-{uuid.uuid4().hex}"
    flow = {
        "id": "cancel",
        "name": "cancel",
        "nodes": [
            {"id": "sleep", "type": "sql",
             "parameters": {"connection": url, "sql": f"SELECT pg_sleep(60) /* {marker} */"}}
        ],
    }  # fmt: skip
    found: dict[str, Any] = {}

    async def main() -> Any:
        with create_conductor("memory://sql-cancel", record_runs=False) as conductor:
            execution = conductor.start(flow)
            found["pid"] = await asyncio.to_thread(
                wait_for, lambda: _backend(postgres, marker), "the pg_sleep starting"
            )
            execution.cancel()
            result = await execution.result()
            found["at"] = time.perf_counter()
            gone = await asyncio.to_thread(
                wait_for, lambda: _gone(postgres, found["pid"]), "the backend leaving", 5
            )
            return result, gone

    result, gone = asyncio.run(main())
    assert result.status is ExecutionStatus.CANCELLED and gone


def test_the_pool_is_per_conductor_and_closed_with_it(
    postgres: Any, pg_database: str, url: str, wait_for: Any
) -> None:
    app = f"atomiton-{uuid.uuid4().hex[:8]}"
    tagged = f"{url}?application_name={app}"
    flow = {
        "id": "p",
        "name": "p",
        "nodes": [
            {"id": f"q{i}", "type": "sql",
             "parameters": {"connection": tagged, "sql": "SELECT pg_sleep(0.2), :i AS i",
                            "bind": {"i": i}}}
            for i in range(3)
        ],
    }  # fmt: skip
    connections = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
    first = create_conductor("memory://pg-pool-1", record_runs=False)
    second = create_conductor("memory://pg-pool-2", record_runs=False)
    try:
        assert first.run(flow).ok and first.run(flow).ok
        held = count(postgres, pg_database, connections)
        assert held == 3  # the three concurrent nodes' connections, kept for the next run
        assert second.run(flow).ok
        assert count(postgres, pg_database, connections) == 6
        first.close()  # its backends end as their connections close
        wait_for(lambda: count(postgres, pg_database, connections) == 3, "first's pool closing")
    finally:
        first.close()
        second.close()
    wait_for(lambda: count(postgres, pg_database, connections) == 0, "second's pool closing")
