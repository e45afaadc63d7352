"""The sandbox with real V8: the original's functions run, and an endless loop, a huge
allocation and every way to the host end as clean errors, leaving no process behind."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from atomiton_core.errors import (
    ConfigurationError,
    ExecutionError,
    ExpressionError,
    InvalidInput,
    NodeTimeout,
)
from atomiton_core.errors import ResourceLimitExceeded as ResourceLimit

from atomiton_lang_js import (
    JavaScriptError,
    JavaScriptMemoryError,
    JavaScriptResult,
    JavaScriptSyntaxError,
    JavaScriptTimeout,
    run_javascript,
)
from atomiton_lang_js.sandbox import STDOUT_LIMIT

#: The original's hello-world transformFunction, as its flow file writes it.
HELLO_FUNCTION = """item => {
  return `${item.message}

${item.description}

Created by: ${item.author}
Generated at: ${item.timestamp}`;
}
"""

#: The original's data-transform snippets (a transform's `expression` and `code`).
FILTER_SNIPPET = "// Filter only active records\nreturn data.filter(row => row.active === 'true');"
AGGREGATE_SNIPPET = """// Aggregate totals
const total = data.reduce((sum, row) => {
  return sum + parseFloat(row.amount || 0);
}, 0);

return {
  total: total,
  count: data.length,
  average: total / data.length
};
"""

ROWS = [
    {"name": "a", "active": "true", "amount": "10.5"},
    {"name": "b", "active": "false", "amount": "3"},
    {"name": "c", "active": "true", "amount": ""},
    {"name": "d", "active": "true", "amount": "4.5"},
]


def js(code: str, **kwargs: Any) -> JavaScriptResult:
    return asyncio.run(run_javascript(code, **kwargs))


# -- the original's functions -------------------------------------------------------------


def test_map_with_the_original_hello_world_function() -> None:
    item = {"message": "Hi", "description": "D", "author": "A", "timestamp": "T"}
    done = js(HELLO_FUNCTION, operation="map", items=[item])
    assert done.value == ["Hi\n\nD\n\nCreated by: A\nGenerated at: T"]


def test_filter_and_reduce_snippets_of_the_original_data_transform_flow() -> None:
    active = js(FILTER_SNIPPET, names={"data": ROWS}).value
    assert [r["name"] for r in active] == ["a", "c", "d"]
    totals = js(AGGREGATE_SNIPPET, names={"data": active}).value
    assert totals == {"total": 15.0, "count": 3, "average": 5.0}


@pytest.mark.parametrize(
    ("operation", "code", "items", "initial", "expected"),
    [
        ("map", "item => item.price * 2", [{"price": 1}, {"price": 2.5}], 0, [2, 5.0]),
        ("map", "(item, index) => `${index}:${item}`", ["a", "b"], 0, ["0:a", "1:b"]),
        ("map", "item => item", [1, None, "x"], 0, [1, None, "x"]),
        ("filter", "row => row.active === 'true'", ROWS, 0, ROWS[0:1] + ROWS[2:]),
        ("filter", "(item, index) => index % 2 === 0", [5, 6, 7], 0, [5, 7]),
        ("reduce", "(acc, item) => acc + item", [1, 2, 3], 0, 6),
        ("reduce", "(acc, item, i) => ({...acc, [item]: i})", ["x", "y"], {}, {"x": 0, "y": 1}),
        ("map", "function (item) { return item.toUpperCase(); }", ["a"], 0, ["A"]),
        ("map", "x => x.n", [], 0, []),
    ],
)
def test_operations_apply_the_function_as_the_original_transform_did(
    operation: Any, code: str, items: list[Any], initial: Any, expected: Any
) -> None:
    assert js(code, operation=operation, items=items, initial=initial).value == expected


def test_a_long_list_is_one_evaluation_within_the_default_limit() -> None:
    items = [{"price": i, "name": f"item {i}"} for i in range(100_000)]
    done = js("item => item.price * 2", operation="map", items=items)
    assert done.value == [i * 2 for i in range(100_000)]


def test_an_expression_a_body_and_a_function_are_all_code() -> None:
    assert js("data.length", names={"data": [1, 2]}).value == 2
    assert js("data.length;", names={"data": [1, 2]}).value == 2
    assert js("const n = data.length;\nreturn n * 10;", names={"data": [1]}).value == 10
    assert js("({a: 1})").value == {"a": 1}
    assert js("x => x + 1", argument=41).value == 42  # a function is called with the input
    assert js("const unused = 1;").value is None  # a body without return: undefined


def test_async_code_awaits() -> None:
    code = "await new Promise(r => setTimeout(r, 20));\nreturn input * 2;"
    assert js(code, names={"input": 21}, is_async=True).value == 42
    assert js("Promise.resolve(7)").value == 7  # a promise returned is awaited either way


def test_console_output_comes_back_as_stdout() -> None:
    done = js("console.log('a', 1, {b: [2]}); console.error('e'); return 3")
    assert done.value == 3
    assert done.stdout == 'a 1 {"b":[2]}\ne'
    big = js("for (let i = 0; i < 3000; i++) console.log('x'.repeat(1000)); return 1").stdout
    assert len(big) < STDOUT_LIMIT + 100 and big.endswith(
        f"[stdout cut at {STDOUT_LIMIT} characters]"
    )


# -- values cross as JSON ---------------------------------------------------------------


def test_values_cross_as_json_both_ways() -> None:
    value = {"t": "é ☃ \u2028 \U0001f600", "n": [1, 2.5, -0.0, 10**15], "b": True, "z": None}
    assert js("input", names={"input": value}).value == value
    assert js("[input.getTime === undefined, input]", names={"input": date(2024, 1, 2)}).value == [
        True,
        "2024-01-02",
    ]
    assert js("String(input)", names={"input": datetime(2024, 1, 2, 3, 4)}).value == (
        "2024-01-02T03:04:00"
    )
    nan = js(
        "[Number.isNaN(input[0]), input[1] === Infinity]", names={"input": [math.nan, math.inf]}
    )
    assert nan.value == [True, True]
    assert js("NaN").value is None  # JSON.stringify's rule
    assert js("undefined").value is None
    assert js("new Date(0)").value == "1970-01-01T00:00:00.000Z"


def test_a_value_that_is_not_json_is_refused_on_the_way_in() -> None:
    with pytest.raises(InvalidInput, match="cannot cross into JavaScript") as caught:
        js("input", names={"input": b"bytes"})
    assert "JSON" in (caught.value.hint or "")


def test_a_value_that_is_not_json_is_an_error_on_the_way_out() -> None:
    with pytest.raises(JavaScriptError, match=r"cannot become JSON.*BigInt"):
        js("10n")
    with pytest.raises(JavaScriptError, match=r"cannot become JSON.*circular"):
        js("const a = {}; a.a = a; return a")


def test_bad_parameter_names_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="cannot be JavaScript parameter names"):
        js("1", names={"class": 1, "a-b": 2})


# -- errors name where ---------------------------------------------------------------------


def test_a_syntax_error_names_the_line_and_column() -> None:
    with pytest.raises(JavaScriptSyntaxError) as caught:
        js("const a = 1;\nconst b = ;\nreturn a")
    err = caught.value
    assert isinstance(err, ExpressionError)
    assert err.code == "JS_SYNTAX_ERROR"
    assert err.context["line"] == 2
    assert err.context["column"] == 11
    assert err.context["source"] == "const b = ;"
    assert "line 2, column 11: Unexpected token ';'" in err.message


def test_a_syntax_error_in_a_function_on_its_first_line() -> None:
    with pytest.raises(JavaScriptSyntaxError, match="line 1") as caught:
        js("item => item.)", operation="map", items=[1])
    assert caught.value.context["line"] == 1


def test_an_unclosed_block_is_at_the_end_of_the_code() -> None:
    for code in ("if (true) {\n  return 1", "[1, 2", "f(1,"):
        with pytest.raises(JavaScriptSyntaxError, match="the code ends too early") as caught:
            js(code)
        assert caught.value.context["line"] is None


def test_a_thrown_error_names_its_type_line_and_column() -> None:
    with pytest.raises(JavaScriptError) as caught:
        js("const rows = data;\nreturn rows.map(r => r.x.y);", names={"data": [{}]})
    err = caught.value
    assert isinstance(err, ExecutionError) and err.code == "JS_ERROR"
    assert err.context["name"] == "TypeError"
    assert err.context["line"] == 2
    assert "JavaScript threw TypeError at line 2" in err.message
    assert "reading 'y'" in err.message
    assert "code:2:" in err.context["stack"] and "<anonymous>" not in err.context["stack"]
    assert not err.retryable


def test_anything_thrown_is_reported() -> None:
    with pytest.raises(JavaScriptError, match=r"threw string.*: boom"):
        js("throw 'boom'")
    with pytest.raises(JavaScriptError, match="threw RangeError"):
        js("(async () => { throw new RangeError('late') })()")


def test_an_operation_needs_a_function() -> None:
    with pytest.raises(JavaScriptError, match=r"must be a function.*it is a number") as caught:
        js("42", operation="map", items=[1])
    assert "item => item.price" in (caught.value.hint or "")
    with pytest.raises(InvalidInput, match="needs a list"):
        js("x => x", operation="filter", items=None)


# -- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kwargs"),
    [
        ("while (true) {}", {}),
        ("x => { for (;;) {} }", {"operation": "map", "items": [1]}),  # in the function
        ("(acc, x) => { while (acc) {} }", {"operation": "reduce", "items": [1], "initial": 1}),
        ("await null;\nwhile (true) {}", {"is_async": True}),  # after a promise settled
        ("new Promise(r => setTimeout(r, 1)).then(() => { for (;;) {} })", {}),
    ],
)
def test_an_endless_loop_ends_at_the_time_limit(code: str, kwargs: dict[str, Any]) -> None:
    started = time.monotonic()
    with pytest.raises(JavaScriptTimeout) as caught:
        js(code, time_limit=300, **kwargs)
    elapsed = time.monotonic() - started
    err = caught.value
    assert isinstance(err, NodeTimeout) and err.code == "TIMEOUT"
    assert not err.retryable and err.context["limit"] == "timeLimit"
    assert "timeLimit of 300 ms" in err.message
    assert 0.3 <= elapsed < 10  # the limit, plus the process start, with a generous margin


def test_a_promise_that_never_settles_ends_at_the_time_limit() -> None:
    with pytest.raises(JavaScriptTimeout):
        js("new Promise(() => {})", time_limit=200)


def test_the_code_runs_within_its_limit() -> None:
    assert js("let n = 0; for (let i = 0; i < 1e6; i++) n += i; return n", time_limit=5000).value


@pytest.mark.parametrize(
    "code",
    [
        "const a = []; for (;;) a.push(new Array(1e5).fill(1.5));",  # the heap grows
        "const m = new Map(); for (let i = 0; ; i++) m.set(i, 'v' + i);",
        "const b = new Uint8Array(2 ** 30); b.fill(1); return b.length;",  # outside the heap
        "new Array(1e8).fill(0); return 1;",  # one builtin V8 does not interrupt
        "new Array(2 ** 31).fill(0); return 1;",  # ends V8's process: a fatal OOM
    ],
)
def test_a_huge_allocation_ends_as_a_memory_error_and_the_next_run_works(code: str) -> None:
    started = time.monotonic()
    with pytest.raises(JavaScriptMemoryError) as caught:
        js(code, heap_limit=64, time_limit=30_000)
    err = caught.value
    assert isinstance(err, ResourceLimit) and err.code == "RESOURCE_LIMIT"
    assert err.context["limit"] == "heapLimit" and "heapLimit of 64 MB" in err.message
    assert time.monotonic() - started < 30
    assert js("1 + 1").value == 2


def test_the_memory_limit_leaves_room_below_it() -> None:
    code = "const a = new Array(1e6).fill(1.5); return a.length"  # about 8 MB
    assert js(code, heap_limit=64).value == 1_000_000
    with pytest.raises(JavaScriptMemoryError):
        js(code, heap_limit=4)


# -- no way to the host ---------------------------------------------------------------------

HOST_NAMES = [
    "require",
    "process",
    "fetch",
    "XMLHttpRequest",
    "WebSocket",
    "Deno",
    "Bun",
    "module",
    "exports",
    "Buffer",
    "importScripts",
    "Worker",
    "load",
    "read",
    "readline",
    "print",
    "quit",
    "os",
    "navigator",
    "window",
    "document",
]


def test_no_host_global_is_defined() -> None:
    code = "names.filter(n => typeof globalThis[n] !== 'undefined')"
    assert js(code, names={"names": HOST_NAMES}).value == []


def test_the_globals_are_ecmascripts_own() -> None:
    names = set(js("Object.getOwnPropertyNames(globalThis)").value)
    ours = {"console", "setTimeout", "clearTimeout", "__timer_manager", "__atomiton_stdout"}
    ours |= {"__atomiton_code"}
    extra = names - ours
    assert {"JSON", "Math", "Array", "Promise", "WebAssembly"} <= extra
    # nothing that does input or output: every other global is a constructor, a namespace
    # of pure functions or a value of the language
    assert not {n for n in extra if n[0].islower() and n not in _PURE_FUNCTIONS}


_PURE_FUNCTIONS = {
    "globalThis",
    "parseFloat",
    "parseInt",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "escape",
    "unescape",
    "eval",
    "isFinite",
    "isNaN",
    "undefined",
}


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("require('fs').readFileSync('/etc/passwd')", "ReferenceError.*require is not defined"),
        ("process.env.HOME", "ReferenceError.*process is not defined"),
        ("fetch('http://127.0.0.1:9/')", "ReferenceError.*fetch is not defined"),
        ("new XMLHttpRequest()", "ReferenceError.*XMLHttpRequest is not defined"),
        ("Deno.readTextFile('/etc/passwd')", "ReferenceError.*Deno is not defined"),
        ("await import('fs')", "Not supported"),
        ("await import('http://127.0.0.1:9/x.js')", "Not supported"),
        ("new Function('return require')()('fs')", "require is not defined"),
        ("eval('process.exit(1)')", "process is not defined"),
    ],
)
def test_every_way_to_the_host_fails_as_a_javascript_error(code: str, match: str) -> None:
    with pytest.raises(JavaScriptError, match=match):
        js(code, is_async=True)


def test_each_evaluation_starts_afresh() -> None:
    assert js("globalThis.leak = 'x'; Array.prototype.evil = 1; return 1").value == 1
    assert js("[typeof leak, [].evil]").value == ["undefined", None]


def test_a_host_that_dies_is_an_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from atomiton_lang_js import sandbox

    monkeypatch.setattr(sandbox, "_HOST", "/no/such/host.py")
    with pytest.raises(ExecutionError, match="sandbox exited with status 2"):
        js("1")


def test_cancelling_kills_the_sandbox_at_once(
    sandbox_processes: Callable[[], list[int]],
) -> None:
    hosts = sandbox_processes

    async def scenario() -> float:
        task = asyncio.ensure_future(run_javascript("while (true) {}", time_limit=60_000))
        deadline = time.monotonic() + 10
        while not hosts() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert hosts(), "the sandbox never started"
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5
