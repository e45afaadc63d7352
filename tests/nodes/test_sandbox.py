"""The expression sandbox under attack: a corpus of payloads, none of which may read outside
the data it is given, change that data, or cost more than a bounded time and memory.

Each payload runs both as an expression and inside a template, with a secret in the
environment; the campaign's figures are in tests/README.md.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from atomiton_core import create_conductor, loads_flow
from atomiton_core.errors import ExpressionError
from atomiton_core.nodes import expressions

SECRET = "hunter2-6b1c9f"
#: Per payload: seconds and megabytes (traced Python allocations) it may cost.
TIME_BUDGET_S = 2.0
MEMORY_BUDGET_MB = 64

READS = [
    # the unbound str.format reads attributes past the sandbox
    "str.format('{0.__class__.__mro__}', 1)",
    "str.format('{0.__init__.__globals__}', lipsum)",
    "str.format('{0.environ}', os)",
    "'{0.__class__}'.format(items)",
    "'{0.__globals__[os].environ}'.format(cycler.__init__)",
    "'{x.__class__.__base__.__subclasses__}'.format_map({'x': 1})",
    "'%s' % (items.__class__,)",
    # dunder walks
    "items.__class__.__mro__[1].__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    "range.__self__",
    "self.__init__.__globals__",
    "lipsum.__globals__['os'].environ",
    "cycler.__init__.__globals__.os.environ",
    "joiner.__init__.__globals__.os.environ",
    "namespace.__init__.__globals__.os.environ",
    "dict.__class__",
    "str.mro()",
    "int.__subclasses__()",
    "(items|attr('__class__'))",
    "items|map(attribute='__class__')|list",
    "items|map(attribute='__class__.__mro__')|list",
    "sorted.__self__",
    "sum.__self__.__import__('os')",
    "abs.__self__.open('/etc/passwd').read()",
    "config",
    "request",
    "environ",
    "os.environ",
    "__builtins__",
    "get_flashed_messages.__globals__",
    "url_for.__globals__",
    "(1).__class__",
    "''.__class__.__mro__",
    "items.pop.__self__",
    "loop.__class__",
    "dict(a=1).items.__self__",
    "str(items).__class__",
    "int.from_bytes.__self__.__subclasses__()",
    "float.fromhex.__self__",
    "list(range(3)).__class__",
]

MUTATIONS = [
    "items.append(4)",
    "items.extend([4])",
    "items.clear()",
    "items.pop()",
    "items.sort(reverse=True)",
    "record.update({'x': 1})",
    "record.pop('a')",
    "record.setdefault('z', 1)",
    "record.clear()",
    "tags.add('c')",
    "tags.discard('a')",
]

COSTS = [
    "(9**(9**9)) > 0",
    "9**9**9**9",
    "10**1000000",
    "(2**100000)*(2**100000)",
    "'a'*10**8",
    "[0]*10**9",
    "(1,)*10**9",
    "'ab'*(10**7)",
    "'a'.center(10**9)",
    "'a'.ljust(10**9)",
    "'a'.rjust(10**9)",
    "'1'.zfill(10**9)",
    "'\\t'.expandtabs(10**9)",
    "('\\t'*1000).expandtabs(10**6)",
    "('x'*1000).replace('x', 'y'*10**4)",
    "'x'|replace('x','xxxxxxxxxx')|replace('x','xxxxxxxxxx')|replace('x','xxxxxxxxxx')"
    "|replace('x','xxxxxxxxxx')|replace('x','xxxxxxxxxx')|replace('x','xxxxxxxxxx')"
    "|replace('x','xxxxxxxxxx')",
    "'{:>1000000000}'.format(1)",
    "'{:.1000000000f}'.format(1.0)",
    "'{0:{1}}'.format(1, 10**9)",
    "'%1000000000d' % 1",
    "'%.*f' % (10**9, 1.0)",
    "'%s'|format(1)|center(10**9)",
    "'x'|indent(10**9)",
    "'%1000000000s'|format('a')",
    "'a b'|wordwrap(10**9)",
    "range(10**9)|list",
    "range(100000)|list|length",
    "int('9'*100000)",
    "'x'*1000000*1000000",
]

TEMPLATE_COSTS = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% for x in items recursive %}{{ loop(items) }}{% endfor %}",
    "{% for a in big %}{% for b in big %}{% for c in big %}.{% endfor %}{% endfor %}{% endfor %}",
    "{% filter upper %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endfilter %}",
    "{% set x %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ x }}",
    "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ 'x' * 10 }}{% endcall %}",
]


@pytest.fixture(autouse=True)
def secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    yield


def _names() -> dict[str, Any]:
    return {
        "items": [1, 2, 3],
        "record": {"a": 1},
        "tags": {"a", "b"},
        "big": list(range(1000)),
    }


def _attempt(run: Any) -> tuple[Any, float, float]:
    """(result or the ExpressionError, seconds, peak MB of Python allocations): timed in a
    plain run, then run again under tracemalloc (which slows it) for the memory."""
    t0 = time.perf_counter()
    try:
        out: Any = run()
    except ExpressionError as exc:
        out = exc
    took = time.perf_counter() - t0
    if took > TIME_BUDGET_S:
        return out, took, 0.0
    tracemalloc.start()
    with contextlib.suppress(ExpressionError):
        run()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, took, peak


def _reveals(value: Any) -> bool:
    text = repr(value)
    return SECRET in text or "environ" in text or "<class" in text or "function" in text


@pytest.mark.parametrize("payload", READS)
def test_no_payload_reads_past_the_sandbox(payload: str) -> None:
    for run in (
        lambda: expressions.evaluate(payload, _names()),
        lambda: expressions.render("{{ " + payload + " }} and text", _names()),
        lambda: expressions.evaluate(f"({payload}) is defined and 1", _names()),
    ):
        out, took, _ = _attempt(run)
        assert isinstance(out, ExpressionError) or not _reveals(out), (payload, out)
        assert took < TIME_BUDGET_S


@pytest.mark.parametrize("payload", MUTATIONS)
def test_no_payload_changes_the_data_it_is_given(payload: str) -> None:
    names = _names()
    before = copy.deepcopy(names)
    out, _, _ = _attempt(lambda: expressions.evaluate(payload, names))
    assert isinstance(out, ExpressionError), (payload, out)
    assert names == before


@pytest.mark.parametrize("payload", COSTS)
def test_no_expression_costs_more_than_its_budget(payload: str) -> None:
    out, took, peak = _attempt(lambda: expressions.evaluate(payload, _names()))
    assert took < TIME_BUDGET_S, (payload, took)
    assert peak < MEMORY_BUDGET_MB, (payload, peak)
    if not isinstance(out, ExpressionError):
        assert len(repr(out)) <= expressions.MAX_LENGTH * 2, payload


@pytest.mark.parametrize("payload", TEMPLATE_COSTS)
def test_no_template_costs_more_than_its_budget(payload: str) -> None:
    out, took, peak = _attempt(lambda: expressions.render(payload, _names()))
    assert took < TIME_BUDGET_S, (payload, took)
    assert peak < MEMORY_BUDGET_MB, (payload, peak)
    assert isinstance(out, ExpressionError), (payload, str(out)[:80])


def test_what_expressions_are_for_still_works() -> None:
    names = {"item": {"price": 2.5, "tags": ["a", "b"]}, "who": "Ada", "n": 3}
    assert expressions.evaluate("item.price * 2", names) == 5.0
    assert expressions.evaluate("'x' * n", names) == "xxx"
    assert expressions.evaluate("2 ** 64", names) == 2**64
    assert expressions.evaluate("str(n) ~ '!'", names) == "3!"
    assert expressions.evaluate("int('42') + float('0.5')", names) == 42.5
    assert expressions.evaluate("'{:>5}'.format(who)", names) == "  Ada"
    assert expressions.evaluate("'%05.1f' % item.price", names) == "002.5"
    assert expressions.evaluate("item.tags | join(',')", names) == "a,b"
    assert expressions.evaluate("dict(a=1, b=2) | length", names) == 2
    assert expressions.render("Hello {{ who|center(9) }}", names) == "Hello    Ada   "
    assert (
        expressions.render("{% for t in item.tags %}[{{ loop.index }}:{{ t }}]{% endfor %}", names)
        == "[1:a][2:b]"
    )


def test_an_if_condition_that_would_take_forever_is_refused_when_validated() -> None:
    flow = loads_flow(
        """
id: freeze
name: freeze
nodes:
  - {id: gate, type: if, parameters: {condition: "(9**(9**9)) > 0"}}
  - {id: src, type: edit-fields, parameters: {values: {a: 1}}}
edges:
  - {source: src, target: gate, targetHandle: data}
"""
    )
    conductor = create_conductor("memory://sandbox-freeze")
    t0 = time.perf_counter()
    report = conductor.validate(flow)
    assert time.perf_counter() - t0 < 1.0
    assert report.valid
    result = conductor.run(flow)
    assert time.perf_counter() - t0 < 3.0
    err = result.nodes["gate"].error
    assert err is not None and err.code == "EXPRESSION_ERROR"
    assert "more than 10,000 bits" in err.message


def test_an_environment_variable_is_no_oracle_in_a_condition() -> None:
    """The condition of an `if` cannot tell whether a secret starts with 'h'."""
    for condition in (
        "str.format('{0.environ[AWS_SECRET_ACCESS_KEY]}', os)[0] == 'h'",
        "lipsum.__globals__.os.environ.AWS_SECRET_ACCESS_KEY[0] == 'h'",
        "(''.format.__globals__)",
    ):
        with pytest.raises(ExpressionError):
            expressions.evaluate(condition, _names())
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET


def test_campaign_figures() -> None:
    """The figures tests/README.md reports: every payload tried, none escaped."""
    tried = len(READS) * 3 + len(MUTATIONS) + len(COSTS) + len(TEMPLATE_COSTS)
    assert tried >= 150
