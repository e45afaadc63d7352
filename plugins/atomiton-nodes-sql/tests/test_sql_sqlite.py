"""The sql node against a real SQLite file, through a real conductor."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import (
    FlowValidationError,
    NodeTimeout,
    create_conductor,
    loads_flow,
    signals,
)
from atomiton_core.testing import NodeRunner

from atomiton_nodes_sql import SqlConfigError, SqlError
from atomiton_nodes_sql import plugin as sql_plugin

ORDERS = """
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  region TEXT NOT NULL,
  note TEXT,
  total REAL NOT NULL
)
"""


def setup(path: Path, *statements: str, rows: list[tuple[Any, ...]] = ()) -> None:
    with sqlite3.connect(path) as db:
        db.execute(ORDERS)
        db.executemany("INSERT INTO orders (id, region, note, total) VALUES (?, ?, ?, ?)", rows)
        for statement in statements:
            db.execute(statement)
    db.close()


def count(path: Path, table: str = "orders") -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


SAMPLE = [(1, "North", "a", 10.0), (2, "South", None, 25.5), (3, "North", "c", 7.25)]


# -- query ---------------------------------------------------------------------------------
def test_query_binds_values_from_bind_input_and_variables(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path, rows=SAMPLE)
    out = runner.run(
        "sql",
        {
            "connection": sqlite_url,
            "sql": "SELECT id, region, total FROM orders "
            "WHERE region = :region AND total >= :least ORDER BY id",
            "bind": {"least": "{{ input.floor }}"},  # a template, rendered to a number
        },
        {"input": {"region": "North", "floor": 8}},
    )
    assert out["records"] == [{"id": 1, "region": "North", "total": 10.0}]
    assert out["columns"] == [
        {"name": "id", "type": "integer"},
        {"name": "region", "type": "text"},
        {"name": "total", "type": "real"},
    ]
    assert out["rowCount"] == 1
    assert out["output"] == {
        "operation": "query",
        "rowCount": 1,
        "columns": out["columns"],
        "truncated": False,
    }
    # the bind port wins over the input's fields; a list expands for IN
    out = runner.run(
        "sql",
        {"connection": sqlite_url, "sql": "SELECT id FROM orders WHERE id IN :ids ORDER BY id"},
        {"input": {"ids": [3]}, "bind": {"ids": [1, 2]}},
    )
    assert out["records"] == [{"id": 1}, {"id": 2}]


def test_query_reads_the_flows_variables(conductor: Any, sqlite_path: Path) -> None:
    setup(sqlite_path, rows=SAMPLE)
    flow = loads_flow(
        json.dumps(
            {
                "id": "q",
                "name": "q",
                "variables": {
                    "db": {"type": "string", "defaultValue": str(sqlite_path)},
                    "region": {"type": "string", "defaultValue": "South"},
                },
                "nodes": [
                    {
                        "id": "q",
                        "type": "sql",
                        "parameters": {
                            "connection": "sqlite:///{{ db }}",
                            "sql": "SELECT id, note FROM orders WHERE region = :region",
                        },
                    }
                ],
            }
        )
    )
    result = conductor.run(flow, {"region": "North"})
    assert result.ok, result.error
    assert result.outputs["q"]["records"] == [{"id": 1, "note": "a"}, {"id": 3, "note": "c"}]


def test_duplicate_column_names_get_a_suffix_and_types_come_from_values(
    runner: NodeRunner, sqlite_url: str
) -> None:
    out = runner.run(
        "sql",
        {"connection": sqlite_url, "sql": "SELECT 1 AS n, 'x' AS n, NULL AS z, x'00ff' AS b"},
    )
    assert out["records"] == [{"n": 1, "n_2": "x", "z": None, "b": b"\x00\xff"}]
    assert [c["type"] for c in out["columns"]] == ["integer", "text", None, "blob"]


def test_a_missing_value_names_itself(runner: NodeRunner, sqlite_url: str) -> None:
    with pytest.raises(Exception, match=r"no value for :region, :other") as caught:
        runner.run("sql", {"connection": sqlite_url, "sql": "SELECT :region, :other"})
    assert caught.value.code == "EXECUTION_FAILED"  # type: ignore[attr-defined]


def test_max_rows_stops_reading_and_says_so(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path, rows=SAMPLE)
    sql = "SELECT id FROM orders ORDER BY id"
    out = runner.run("sql", {"connection": sqlite_url, "sql": sql, "maxRows": 2})
    assert out["records"] == [{"id": 1}, {"id": 2}] and out["output"]["truncated"] is True
    out = runner.run("sql", {"connection": sqlite_url, "sql": sql, "maxRows": 3})
    assert out["rowCount"] == 3 and out["output"]["truncated"] is False


def test_batch_size_streams_batches_a_loop_consumes(sqlite_path: Path) -> None:
    setup(sqlite_path, "CREATE TABLE copy AS SELECT * FROM orders WHERE 0")
    db = sqlite3.connect(sqlite_path)
    with db:
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)", [(i, "R", None, i) for i in range(2500)]
        )
    db.close()
    url = f"sqlite:///{sqlite_path}"
    flow = {
        "id": "stream",
        "name": "stream",
        "nodes": [
            {
                "id": "read",
                "type": "sql",
                "parameters": {
                    "connection": url,
                    "sql": "SELECT * FROM orders ORDER BY id",
                    "batchSize": 1000,
                },
            },
            {
                "id": "each",
                "type": "loop",
                "nodes": [
                    {
                        "id": "write",
                        "type": "sql",
                        "parameters": {"operation": "insert", "connection": url, "table": "copy"},
                    }
                ],
                "edges": [
                    {"source": "each", "sourceHandle": "item", "target": "write",
                     "targetHandle": "records"},
                    {"source": "write", "sourceHandle": "rowCount", "target": "each",
                     "targetHandle": "written"},
                ],
            },
        ],
        "edges": [
            {"source": "read", "sourceHandle": "batches", "target": "each",
             "targetHandle": "items"},
        ],
    }  # fmt: skip
    with create_conductor("memory://sql-stream", record_runs=False) as conductor:
        result = conductor.run(flow)
    assert result.ok, result.error
    read = result.nodes["read"].outputs
    assert [len(b) for b in read["batches"]] == [1000, 1000, 500]
    assert "records" not in read and read["output"]["batchCount"] == 3
    assert result.outputs["each"]["written"] == [1000, 1000, 500]
    assert count(sqlite_path, "copy") == 2500


# -- execute -------------------------------------------------------------------------------
def test_execute_reports_rows_and_runs_once_per_bind_item(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path, rows=SAMPLE)
    out = runner.run(
        "sql",
        {"operation": "execute", "connection": sqlite_url,
         "sql": "UPDATE orders SET total = total * :factor WHERE region = :region"},
        {"bind": {"factor": 2, "region": "North"}},
    )  # fmt: skip
    assert out == {"rowCount": 2, "output": {"operation": "execute", "rowCount": 2}}
    out = runner.run(
        "sql",
        {"operation": "execute", "connection": sqlite_url,
         "sql": "INSERT INTO orders (id, region, total) VALUES (:id, :region, :total)",
         "bind": {"region": "East"}},
        {"bind": [{"id": 10, "total": 1}, {"id": 11, "total": 2, "region": "West"}]},
    )  # fmt: skip
    assert out["rowCount"] == 2
    out = runner.run(
        "sql",
        {"operation": "execute", "connection": sqlite_url,
         "sql": "DELETE FROM orders WHERE id >= 10 RETURNING id, region"},
    )  # fmt: skip
    assert sorted(out["records"], key=lambda r: r["id"]) == [
        {"id": 10, "region": "East"},
        {"id": 11, "region": "West"},
    ]
    assert out["rowCount"] == 2


# -- insert --------------------------------------------------------------------------------
def test_insert_100000_records_in_batches(sqlite_path: Path, sqlite_url: str) -> None:
    setup(sqlite_path)
    rows = [
        {"id": i, "region": ("North", "South", "East")[i % 3], "total": i / 4}
        for i in range(100_000)
    ]
    progress: list[float] = []
    with NodeRunner(plugins=[sql_plugin]) as runner:

        @signals.node_progress.connect_via(runner.conductor)
        def seen(sender: Any, event: Any) -> None:
            progress.append(event.progress)

        started = time.perf_counter()
        out = runner.run(
            "sql",
            {"operation": "insert", "connection": sqlite_url, "table": "orders",
             "batchSize": 5000},
            {"records": rows},
        )  # fmt: skip
        took = time.perf_counter() - started
    assert out["rowCount"] == 100_000 and out["output"]["batches"] == 20
    assert count(sqlite_path) == 100_000
    assert len(progress) == 20 and progress[-1] == pytest.approx(1.0)
    assert took < 30, f"100,000 rows took {took:.1f} s"


def test_a_failing_batch_rolls_the_whole_insert_back(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path)
    rows: list[dict[str, Any]] = [{"id": i, "region": "N", "total": 1} for i in range(10_000)]
    rows[7_345] = {"id": 3, "region": "N", "total": 1}  # batch 8 repeats a key of batch 1
    params = {"operation": "insert", "connection": sqlite_url, "table": "orders"}
    with pytest.raises(SqlError) as caught:
        runner.run("sql", params, {"records": rows})
    assert "batch 8 of 10" in caught.value.message
    assert "UNIQUE constraint failed: orders.id" in caught.value.message
    assert caught.value.context["sqlite_error"] == "SQLITE_CONSTRAINT_PRIMARYKEY"
    assert count(sqlite_path) == 0  # nothing half-written
    # atomic: false keeps the batches committed before the failure
    with pytest.raises(SqlError):
        runner.run("sql", {**params, "atomic": False}, {"records": rows})
    assert count(sqlite_path) == 7_000


def test_upserts_update_or_skip_rows_whose_key_exists(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path, rows=SAMPLE)
    records = [
        {"id": 1, "region": "North", "note": "changed", "total": 99},
        {"id": 4, "region": "West", "note": "new", "total": 4},
    ]
    base = {"operation": "insert", "connection": sqlite_url, "table": "orders"}
    out = runner.run(
        "sql", {**base, "onConflict": "ignore", "conflictColumns": ["id"]}, {"records": records}
    )
    assert out["rowCount"] == 1  # only the new one
    out = runner.run(
        "sql",
        {**base, "onConflict": "update", "conflictColumns": ["id"], "updateColumns": ["note"]},
        {"records": records},
    )
    rows = runner.run("sql", {"connection": sqlite_url, "sql": "SELECT * FROM orders ORDER BY id"})
    assert rows["records"][0] == {"id": 1, "region": "North", "note": "changed", "total": 10.0}
    assert rows["records"][3] == {"id": 4, "region": "West", "note": "new", "total": 4.0}


def test_insert_takes_batches_spreadsheet_output_and_json_values(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path)
    base = {"operation": "insert", "connection": sqlite_url, "table": "orders"}
    batches = [[{"id": 1, "region": "A", "total": 1}], [{"id": 2, "region": "B", "total": 2}]]
    assert runner.run("sql", base, {"records": batches})["rowCount"] == 2
    sheet = {"records": [{"id": 3, "region": "C", "total": 3, "note": {"k": [1, 2]}}]}
    assert runner.run("sql", base, {"input": sheet})["rowCount"] == 1
    out = runner.run("sql", {"connection": sqlite_url, "sql": "SELECT note FROM orders"})
    assert out["records"][-1] == {"note": '{"k": [1, 2]}'}
    with pytest.raises(Exception, match="batch 0, record 1 is int"):
        runner.run("sql", base, {"records": [[{"id": 9, "region": "x", "total": 0}, 5]]})


# -- script and transactions ---------------------------------------------------------------
def test_a_failing_script_leaves_nothing_behind(runner: NodeRunner, sqlite_path: Path) -> None:
    url = f"sqlite:///{sqlite_path}"
    script = """
        CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT); -- a comment; with a ;
        INSERT INTO items VALUES (1, 'semi;colon'), (2, 'it''s');
        INSERT INTO items VALUES (1, 'again');
    """
    with pytest.raises(SqlError) as caught:
        runner.run("sql", {"operation": "script", "connection": url, "sql": script})
    assert "statement 3 of 3" in caught.value.message
    db = sqlite3.connect(sqlite_path)
    tables = db.execute("SELECT name FROM sqlite_master").fetchall()
    db.close()
    assert tables == []  # the CREATE TABLE went back with the rest
    out = runner.run(
        "sql",
        {"operation": "script", "connection": url, "sql": script.rsplit("INSERT", 1)[0]},
    )
    assert out["output"]["statements"] == 2 and out["rowCount"] == 2
    labels = runner.run("sql", {"connection": url, "sql": "SELECT label FROM items ORDER BY id"})
    assert labels["records"] == [{"label": "semi;colon"}, {"label": "it's"}]


def test_a_script_keeps_a_trigger_body_whole(runner: NodeRunner, sqlite_url: str) -> None:
    script = """
        CREATE TABLE t (x INTEGER);
        CREATE TABLE log (x INTEGER);
        CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
            INSERT INTO log VALUES (new.x);
            INSERT INTO log VALUES (new.x * 10);
        END;
        INSERT INTO t VALUES (:x);
    """
    out = runner.run(
        "sql", {"operation": "script", "connection": sqlite_url, "sql": script, "bind": {"x": 4}}
    )
    assert out["output"]["statements"] == 4
    logged = runner.run("sql", {"connection": sqlite_url, "sql": "SELECT x FROM log ORDER BY x"})
    assert logged["records"] == [{"x": 4}, {"x": 40}]


def test_a_timeout_interrupts_the_statement_and_rolls_it_back(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path, rows=SAMPLE)
    forever = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    started = time.perf_counter()
    with pytest.raises(NodeTimeout):
        runner.run(
            "sql",
            {"operation": "script", "connection": sqlite_url, "timeout": 300,
             "statements": ["DELETE FROM orders", forever]},
        )  # fmt: skip
    timed_out = time.perf_counter()
    assert timed_out - started < 2
    # the script holds the write lock until SQLite stops the statement and the node lets go of
    # its transaction: a writer waiting for the lock gets it only then (never, had it run on)
    writer = sqlite3.connect(sqlite_path, timeout=20)
    writer.execute("BEGIN IMMEDIATE")
    freed = time.perf_counter() - timed_out
    writer.rollback()
    writer.close()
    assert freed < 2, f"the lock went {freed:.2f} s after the timeout"
    assert count(sqlite_path) == 3  # the DELETE was rolled back


# -- injection -----------------------------------------------------------------------------
def test_an_injection_through_a_value_is_stored_literally(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path)
    evil = "x'); DROP TABLE orders; --"
    runner.run(
        "sql",
        {"operation": "execute", "connection": sqlite_url,
         "sql": "INSERT INTO orders (id, region, note, total) VALUES (1, :region, :note, 0)"},
        {"input": {"region": evil, "note": "'; DELETE FROM orders; SELECT '"}},
    )  # fmt: skip
    runner.run(
        "sql",
        {"operation": "insert", "connection": sqlite_url, "table": "orders"},
        {"records": [{"id": 2, "region": evil, "total": 0}]},
    )
    out = runner.run("sql", {"connection": sqlite_url, "sql": "SELECT region, note FROM orders"})
    assert out["records"] == [
        {"region": evil, "note": "'; DELETE FROM orders; SELECT '"},
        {"region": evil, "note": None},
    ]


def test_templates_in_sql_are_refused_unless_they_name_identifiers(
    runner: NodeRunner, sqlite_path: Path, sqlite_url: str
) -> None:
    setup(sqlite_path, rows=SAMPLE)
    for sql in [
        "SELECT * FROM orders WHERE region = '{{ region }}'",
        "SELECT * FROM orders {% if x %}WHERE 1{% endif %}",
    ]:
        with pytest.raises(FlowValidationError) as caught:
            runner.run("sql", {"connection": sqlite_url, "sql": sql})
        (problem,) = caught.value.report.errors
        assert problem.code == "MISSING_PARAMETER" and problem.location.endswith("parameters.sql")
        assert "values are bound" in problem.message or "only template" in problem.message
    named = {"connection": sqlite_url, "sql": "SELECT count(*) AS n FROM {{ table | identifier }}"}
    assert runner.run("sql", named, {"input": {"table": "orders"}})["records"] == [{"n": 3}]
    # a name that tries to be SQL is one quoted identifier: no such table, and nothing dropped
    with pytest.raises(SqlError, match=r"no such table: orders; DROP TABLE orders"):
        runner.run("sql", named, {"input": {"table": "orders; DROP TABLE orders"}})
    with pytest.raises(SqlError, match=r"no such table: orders\"; DROP TABLE orders; --"):
        runner.run("sql", named, {"input": {"table": 'orders"; DROP TABLE orders; --'}})
    assert count(sqlite_path) == 3


# -- connections ---------------------------------------------------------------------------
def test_named_connections_from_config_and_from_a_secret(sqlite_path: Path, tmp_path: Path) -> None:
    setup(sqlite_path, rows=SAMPLE)
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"ORDERS_DB": f"sqlite:///{sqlite_path}"}))
    config = {
        "sqlConnections": {
            "default": {"url": f"sqlite:///{sqlite_path}", "options": {"pool_size": 1}},
            "kept": {"secret": "ORDERS_DB"},
        }
    }
    flow = loads_flow(
        "id: named\nname: named\nnodes:\n"
        "  - {id: a, type: sql, parameters: {sql: 'SELECT count(*) AS n FROM orders'}}\n"
        "  - {id: b, type: sql, parameters: {connection: kept, sql: 'SELECT 1 AS one'}}\n"
        "  - {id: c, type: sql, parameters: {connection: nowhere, sql: 'SELECT 1',"
        " continueOnFail: true}}\n"
    )
    with create_conductor(
        "memory://sql-named", record_runs=False, config=config, secrets=[f"file:{secrets}"]
    ) as conductor:
        result = conductor.run(flow)
    assert result.nodes["a"].error is None, result.nodes["a"].error
    assert result.nodes["a"].outputs["records"] == [{"n": 3}]
    assert result.nodes["b"].outputs["records"] == [{"one": 1}]
    error = result.nodes["c"].error
    assert error is not None and "no connection named 'nowhere'" in error.message
    assert "default, kept" in (error.hint or "")


def test_bad_connections_are_configuration_errors(runner: NodeRunner) -> None:
    with pytest.raises(SqlConfigError, match="is not a SQLAlchemy URL"):
        runner.run("sql", {"connection": "postgresql://u@h:port/db", "sql": "SELECT 1"})
    with pytest.raises(SqlConfigError, match="SQLAlchemy has no dialect 'nosuch'"):
        runner.run("sql", {"connection": "nosuch://", "sql": "SELECT 1"})
    with pytest.raises(SqlConfigError, match="no `connection` given"):
        runner.run("sql", {"sql": "SELECT 1"})
    with pytest.raises(SqlConfigError, match="driver is not installed"):
        runner.run("sql", {"connection": "mssql+pymssql://u@h/db", "sql": "SELECT 1"})


def test_parameters_that_do_not_fit_the_operation_are_refused(
    runner: NodeRunner, sqlite_url: str
) -> None:
    for params, says in [
        ({"sql": "SELECT 1", "table": "t"}, "table: for operation 'insert'"),
        ({"operation": "insert", "table": "t", "maxRows": 3}, "maxRows is for operation 'query'"),
        ({"operation": "insert", "table": "t", "onConflict": "update"}, "needs conflictColumns"),
        ({"operation": "script", "sql": "x", "statements": ["y"]}, "not both"),
    ]:
        with pytest.raises(FlowValidationError, match=says):
            runner.run("sql", {"connection": sqlite_url, **params}, {"records": []})


def test_a_flow_url_is_held_to_the_conductors_security(sqlite_path: Path, tmp_path: Path) -> None:
    setup(sqlite_path, rows=SAMPLE)
    query = {"sql": "SELECT 1 AS one"}
    inside = {"allowedRoots": [str(tmp_path)]}
    with NodeRunner(plugins=[sql_plugin], config=inside) as r:
        assert r.run("sql", {"connection": f"sqlite:///{sqlite_path}", **query})["rowCount"] == 1
        with pytest.raises(Exception) as caught:
            r.run("sql", {"connection": "sqlite:////etc/outside.db", **query})
        assert caught.value.code == "PATH_NOT_ALLOWED"  # type: ignore[attr-defined]
        assert r.run("sql", {"connection": "sqlite://", **query})["rowCount"] == 1
    private = {"blockPrivateNetworks": True}
    with NodeRunner(plugins=[sql_plugin], config=private) as r:
        with pytest.raises(Exception) as caught:
            r.run("sql", {"connection": "postgresql+psycopg://u@127.0.0.1:1/db", **query})
        assert caught.value.code == "HOST_NOT_ALLOWED"  # type: ignore[attr-defined]


# -- pools ---------------------------------------------------------------------------------
def _open_files(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found += 1
        except OSError:
            continue
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_each_conductor_pools_its_connections_and_closes_them_with_it(sqlite_path: Path) -> None:
    setup(sqlite_path, rows=SAMPLE)
    flow = loads_flow(
        "id: p\nname: p\nnodes:\n"
        + "".join(
            f"  - {{id: q{i}, type: sql, parameters: {{connection: 'sqlite:///{sqlite_path}',"
            " sql: 'SELECT count(*) AS n FROM orders'}}\n"
            for i in range(4)
        )
    )
    assert _open_files(sqlite_path) == 0
    first = create_conductor("memory://pool-1", record_runs=False)
    second = create_conductor("memory://pool-2", record_runs=False)
    for _ in range(3):
        assert first.run(flow).ok
    held = _open_files(sqlite_path)
    assert 1 <= held <= 4  # pooled: the runs' nodes took turns on the same connections
    assert second.run(flow).ok
    both = _open_files(sqlite_path)
    assert both > held  # the other conductor has a pool of its own
    first.close()
    assert _open_files(sqlite_path) == both - held
    second.close()
    assert _open_files(sqlite_path) == 0


def test_an_in_memory_database_is_one_per_conductor(runner: NodeRunner) -> None:
    memory = {"connection": "sqlite://"}
    runner.run(
        "sql",
        {**memory, "operation": "script", "sql": "CREATE TABLE m (x); INSERT INTO m VALUES (7)"},
    )
    assert runner.run("sql", {**memory, "sql": "SELECT x FROM m"})["records"] == [{"x": 7}]
    with NodeRunner(plugins=[sql_plugin]) as other, pytest.raises(SqlError, match="no such"):
        other.run("sql", {**memory, "sql": "SELECT x FROM m"})


def test_an_in_memory_database_outlives_a_timed_out_statement(runner: NodeRunner) -> None:
    memory = {"connection": "sqlite://"}
    runner.run(
        "sql",
        {**memory, "operation": "script", "sql": "CREATE TABLE m (x); INSERT INTO m VALUES (1)"},
    )
    forever = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    with pytest.raises(NodeTimeout):
        runner.run("sql", {**memory, "sql": forever, "timeout": 200})
    # interrupted, not closed: the database (and the rolled-back connection) go on
    assert runner.run("sql", {**memory, "sql": "SELECT x FROM m"})["records"] == [{"x": 1}]


def test_a_server_that_is_not_there_is_a_retryable_error(runner: NodeRunner) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"postgresql+psycopg://app:hunter22@127.0.0.1:{port}/shop?connect_timeout=5"
    with pytest.raises(SqlError) as caught:
        runner.run("sql", {"connection": url, "sql": "SELECT 1"})
    err = caught.value
    assert err.retryable and "connecting to postgresql+psycopg://app:***@127.0.0.1" in err.message
    assert "hunter22" not in str(err)
