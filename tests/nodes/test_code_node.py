"""The code node: a user's Python snippet, always in a worker process, within its limits."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import Conductor, create_conductor, loads_flow
from atomiton_core.errors import ErrorCode, FlowValidationError


@pytest.fixture(scope="module")
def conductor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conductor]:
    with create_conductor(str(tmp_path_factory.mktemp("store")), process_workers=1) as c:
        yield c


def code_flow(code: str, variables: dict[str, Any] | None = None, **settings: Any) -> Any:
    body: dict[str, Any] = {
        "id": "code",
        "name": "code",
        "variables": {k: {"type": "any", "defaultValue": v} for k, v in (variables or {}).items()},
        "nodes": [
            {"id": "data", "type": "edit-fields", "parameters": {"values": {"n": 3}}},
            {
                "id": "c",
                "type": "code",
                "parameters": {"code": textwrap.dedent(code), **settings},
            },
        ],
        "edges": [{"id": "e", "source": "data", "target": "c", "targetHandle": "row"}],
    }
    return loads_flow(json.dumps(body))


def test_return_gives_the_result_and_prints_the_stdout(conductor: Conductor) -> None:
    result = conductor.run(
        code_flow(
            """
            print("n is", row["n"])
            return {"double": row["n"] * 2, "same": inputs["row"] is row, "scale": vars["scale"]}
            """,
            {"scale": 10},
        )
    )
    assert result.ok, result.error
    assert result.nodes["c"].outputs == {
        "result": {"double": 6, "same": True, "scale": 10},
        "stdout": "n is 3\n",
    }


def test_a_last_expression_is_the_result(conductor: Conductor) -> None:
    result = conductor.run(code_flow("total = row['n'] + 1\ntotal * 10\n"))
    assert result.nodes["c"].outputs["result"] == 40


def test_a_syntax_error_is_found_by_validation_with_its_line(conductor: Conductor) -> None:
    flow = code_flow("x = 1\nif x\n    pass\n")
    [problem] = conductor.validate(flow).errors
    assert problem.code == "INVALID_PARAMETER"
    assert problem.location == "nodes[1].parameters.code"
    assert "syntax error at line 2" in problem.message
    with pytest.raises(FlowValidationError):
        conductor.run(flow)


def test_a_runtime_error_names_the_line(conductor: Conductor) -> None:
    result = conductor.run(code_flow("a = 1\nb = 0\nreturn a / b\n"))
    err = result.nodes["c"].error
    assert err is not None and err.code == ErrorCode.EXECUTION_FAILED
    assert "ZeroDivisionError" in err.message
    assert "at line 3: `return a / b`" in err.message
    assert err.node_id == "c"
    assert result.nodes["c"].attempts == 1, "a bug in the snippet is not retried"


def test_an_infinite_loop_ends_as_a_timeout(conductor: Conductor) -> None:
    result = conductor.run(code_flow("while True:\n    pass\n", timeout=500))
    err = result.nodes["c"].error
    assert err is not None and err.code == ErrorCode.TIMEOUT
    assert conductor.run(code_flow("row['n']")).ok, "a fresh worker took its place"


def test_a_10_gb_allocation_hits_the_default_memory_limit(conductor: Conductor) -> None:
    result = conductor.run(code_flow("blob = bytearray(10 * 1024 ** 3)\nlen(blob)\n"))
    err = result.nodes["c"].error
    assert err is not None and err.code == ErrorCode.RESOURCE_LIMIT
    assert err.context["limit"] == "memoryLimit"
    assert "256 MB" in err.message


def test_a_fork_bomb_hits_the_default_process_limit(conductor: Conductor) -> None:
    result = conductor.run(code_flow("import os\nwhile True:\n    os.fork()\n"))
    err = result.nodes["c"].error
    assert err is not None and err.code == ErrorCode.RESOURCE_LIMIT
    assert err.context["limit"] == "processLimit"


def test_a_subprocess_counts_as_a_process(conductor: Conductor) -> None:
    snippet = "import subprocess\nsubprocess.run(['true']).returncode\n"
    refused = conductor.run(code_flow(snippet))
    assert refused.nodes["c"].error is not None
    assert refused.nodes["c"].error.code == ErrorCode.RESOURCE_LIMIT
    assert conductor.run(code_flow(snippet, processLimit=1)).ok


def test_the_cpu_limit_of_a_snippet_can_be_lowered(conductor: Conductor) -> None:
    result = conductor.run(code_flow("while True:\n    pass\n", cpuLimit=0.3))
    err = result.nodes["c"].error
    assert err is not None and err.code == ErrorCode.RESOURCE_LIMIT
    assert err.context["limit"] == "cpuLimit"


def test_code_is_refused_where_it_is_not_allowed(tmp_path: Path) -> None:
    with create_conductor(str(tmp_path), security={"allowCode": False}) as c:
        result = c.run(code_flow("1"))
    err = result.nodes["c"].error
    assert err is not None and err.code == ErrorCode.CODE_NOT_ALLOWED
    assert "--safe" in (err.hint or "")


def test_the_code_node_always_runs_isolated(conductor: Conductor) -> None:
    flow = code_flow("1", isolation="none", cpuLimit=None, memoryLimit=None, processLimit=None)
    result = conductor.run(flow)
    err = result.nodes["c"].error
    assert err is not None and "always runs in a worker process" in err.message


def test_its_limits_without_isolation_are_a_validation_error(conductor: Conductor) -> None:
    [problem] = conductor.validate(code_flow("1", isolation="none")).errors
    assert "isolation: process" in (problem.hint or "")


@pytest.mark.slow
def test_closing_while_a_timed_out_worker_is_replaced_never_closes_a_pipe_twice(
    tmp_path: Path,
) -> None:
    """A pool thread discards the killed worker as close() reaps every worker: each pipe
    is closed once (twice raised EBADF from close(), or closed another file's descriptor)."""
    for i in range(8):
        with create_conductor(str(tmp_path / f"s{i}"), process_workers=1) as c:
            result = c.run(code_flow("while True:\n    pass\n", timeout=200))
            err = result.nodes["c"].error
            assert err is not None and err.code == ErrorCode.TIMEOUT
        # leaving the block closed it: no OSError
