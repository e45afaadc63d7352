"""Sandboxed Jinja2 templates and expressions: the only way user text is evaluated.

Flows come from users, so nothing in a flow reaches Python's ``eval``. Expressions such as
``item.price * 2`` and templates such as ``"Hello {{ who }}"`` run in Jinja2's immutable
sandbox (no attribute starting with ``_``, no method that changes the data it is given) with a
short list of helpers. The original's ``{{$now}}`` / ``{{$input}}`` forms are accepted:
``now`` is the time as JavaScript's ``toISOString()`` writes it (``2025-01-15T10:30:00.123Z``),
and a mapping or a list printed inside a text renders as JSON (``{"a": 1}``, never Python's
``{'a': 1}``); a template that is one ``{{ expr }}`` keeps the value's type.

A node's template sees (:func:`node_scope`) the flow's variables, the fields of the mapping
it gives as ``input`` by their own names (they win over variables of the same name: the
original's templates saw only the input's fields), and then ``vars`` (the variables, always),
``secrets`` and whatever the node passes by name (``input`` itself, ``item``...).

What an expression may cost is bounded, so a 100-byte flow cannot freeze a server:

- the helpers are plain functions, never types: ``str`` as a type would hand out the unbound
  ``str.format``, which reads any attribute of its arguments past the sandbox;
- ``**`` and ``*`` refuse results over :data:`MAX_INT_BITS` bits or :data:`MAX_LENGTH` items
  (``9**(9**9)``, ``'a' * 10**8``), and so does string ``%`` formatting with a huge width;
  Jinja2 folds no such operation when it compiles, so validation never computes one;
- string methods and filters that grow a string (``center``, ``ljust``, ``zfill``,
  ``replace``, ``format``, ``indent``...) are held to :data:`MAX_LENGTH` as well;
- every ``{% for %}`` iteration and every call counts against :data:`MAX_STEPS` per
  evaluation (nested loops, recursive macros); ``namespace`` is not offered, so nothing
  accumulates from one iteration to the next.

Over a bound, the expression fails with an ``ExpressionError`` that says which.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2.meta
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from atomiton_core.errors import ExpressionError

__all__ = [
    "ENGINE",
    "MAX_INT_BITS",
    "MAX_LENGTH",
    "MAX_STEPS",
    "compile_expression",
    "evaluate",
    "is_template",
    "iso_now",
    "node_scope",
    "render",
    "template_names",
]

#: The longest string, list or tuple one operation may build.
MAX_LENGTH = 1_000_000
#: The largest integer one operation may build, in bits (about 3,000 decimal digits).
MAX_INT_BITS = 10_000
#: The longest text a template may render.
MAX_OUTPUT = 10 * MAX_LENGTH
#: Loop iterations plus calls one evaluation may make.
MAX_STEPS = 200_000

_DOLLAR = re.compile(r"\{\{(.*?)\}\}", re.S)
_DOLLAR_NAME = re.compile(r"\$([A-Za-z_]\w*)")
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.S)


class _Limit(Exception):
    """An expression went over one of the module's bounds."""


_STEPS: contextvars.ContextVar[list[int]] = contextvars.ContextVar("atomiton_expression_steps")


def _spend(n: int = 1) -> None:
    try:
        left = _STEPS.get()
    except LookupError:  # evaluated outside evaluate()/render(): a fresh budget
        left = [MAX_STEPS]
        _STEPS.set(left)
    left[0] -= n
    if left[0] < 0:
        raise _Limit(
            f"it took more than {MAX_STEPS:,} steps (loop iterations and calls); "
            "loop over large data with a loop node instead"
        )


def _check_length(n: int, what: str) -> None:
    if n > MAX_LENGTH:
        raise _Limit(f"{what} would be {n:,} long, over the limit of {MAX_LENGTH:,}")


_WIDTH = re.compile(r"\d+")
#: A width taken from the arguments: ``{0:{1}}``, ``%*d``, ``%.*f``.
_ARGUMENT_WIDTH = re.compile(r"\{[^{}]*\{|%[^a-zA-Z%]*\*")


def _check_widths(fmt: str) -> None:
    """Refuse a format string whose widths or precisions would build a huge string."""
    if _ARGUMENT_WIDTH.search(fmt):
        raise _Limit("a format that takes its width from the arguments")
    for digits in _WIDTH.findall(fmt):
        if len(digits) > 7 or int(digits) > MAX_LENGTH:
            raise _Limit(f"a width of {digits} in a format is over the limit of {MAX_LENGTH:,}")


def _to_str(value: Any = "") -> str:
    return str(value)


def _to_int(value: Any = 0, base: int | None = None) -> int:
    if isinstance(value, str) and len(value) > 4000:
        raise _Limit("an integer of more than 4,000 digits")
    return int(value) if base is None else int(value, base)


def _to_float(value: Any = 0.0) -> float:
    return float(value)


def _to_bool(value: Any = False) -> bool:
    return bool(value)


def _to_list(value: Iterable[Any] = ()) -> list[Any]:
    return list(value)


def _to_dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    return dict(*args, **kwargs)


_SAFE_GLOBALS: dict[str, Any] = {
    "abs": abs,
    "bool": _to_bool,
    "dict": _to_dict,
    "float": _to_float,
    "int": _to_int,
    "len": len,
    "list": _to_list,
    "max": max,
    "min": min,
    "round": round,
    "sorted": sorted,
    "str": _to_str,
    "sum": sum,
}

#: What a macro call counts for: each runs a body of its own.
_MACRO_STEPS = 10

#: str methods whose result can be far longer than the string: (name, index of the width)
_WIDENING = {"center": 0, "ljust": 0, "rjust": 0, "zfill": 0, "expandtabs": 0}


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right * max(1, (abs(left) - 1).bit_length()) > MAX_INT_BITS
            ):
                raise _Limit(f"{left} ** {right} would have more than {MAX_INT_BITS:,} bits")
            return left**right
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple | bytes) and isinstance(n, int):
                    _check_length(len(seq) * max(n, 0), "a repeated sequence")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise _Limit(f"a product of more than {MAX_INT_BITS:,} bits")
            return left * right
        if isinstance(left, str):  # "%": printf-style formatting
            _check_widths(left)
        return left % right

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend(_MACRO_STEPS if isinstance(__obj, Macro) else 1)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _WIDENING and args and isinstance(args[0], int):
                _check_length(max(len(owner), args[0]), f"str.{name}()")
                if name == "expandtabs":
                    _check_length(owner.count("\t") * args[0] + len(owner), "str.expandtabs()")
            elif name == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                grows = max(0, len(new) - len(old)) * (owner.count(old) if old else len(owner) + 1)
                _check_length(len(owner) + grows, "str.replace()")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``'...'.format``, which the sandbox wraps when it is looked up: widths bounded."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_widths(value.__self__)
        return wrapped

    def budget_iter(self, iterable: Any) -> Iterator[Any]:
        """What a ``{% for %}`` loop walks: its iterable, each step counted."""
        for item in iterable:
            _spend()
            yield item

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for block in tree.find_all((nodes.FilterBlock, nodes.CallBlock, nodes.AssignBlock)):
            raise TemplateSyntaxError(
                "flow templates do not take {% filter %}, {% call %} or a block {% set %} "
                "(they buffer unbounded text); use a filter or an expression instead",
                block.lineno,
                name,
                filename,
            )
        for loop in tree.find_all(nodes.For):
            wrapped = nodes.Call(
                nodes.EnvironmentAttribute("budget_iter"),
                [loop.iter],
                [],
                None,
                None,
            )
            wrapped.set_lineno(loop.lineno)
            loop.iter = wrapped
        return tree


def _bounded_filter(fn: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return fn(*args, **kwargs)

    bounded.__name__ = getattr(fn, "__name__", "filter")
    return bounded


def _bounded_concat(pieces: Iterable[str]) -> str:
    """What a template (or a ``{% filter %}`` block) renders, refused once it is too long."""
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_OUTPUT:
            raise _Limit(f"it rendered more than {MAX_OUTPUT:,} characters")
        out.append(piece)
    return "".join(out)


def _printed(value: Any) -> Any:
    """What a ``{{ }}`` inside a text prints: a mapping or a list as JSON, as the flow's
    author means it (Python's repr, ``{'a': True}``, is no format anyone reads)."""
    if isinstance(value, dict | list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # keys JSON cannot have, a cycle: as Python shows it
            return value
    return value


def _environment() -> _Environment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, finalize=_printed)
    env.concat = _bounded_concat  # type: ignore[method-assign]
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    env.globals.update(_SAFE_GLOBALS)
    filters = env.filters

    def width(_value: Any = "", width: Any = 80, *_a: Any, **_k: Any) -> None:
        if isinstance(width, int):
            _check_length(width, "a filter's width")

    def indent(value: Any = "", width: Any = 4, *_a: Any, **_k: Any) -> None:
        if isinstance(width, int):
            _check_length(width * (str(value).count("\n") + 1) + len(str(value)), "indent")

    def fmt(value: Any = "", *_a: Any, **_k: Any) -> None:
        _check_widths(str(value))

    def replace(value: Any = "", old: Any = "", new: Any = "", *_a: Any, **_k: Any) -> None:
        text, o, n = str(value), str(old), str(new)
        grows = max(0, len(n) - len(o)) * (text.count(o) if o else len(text) + 1)
        _check_length(len(text) + grows, "replace")

    for name, check in (
        ("center", width),
        ("indent", indent),
        ("format", fmt),
        ("replace", replace),
        ("wordwrap", width),
        ("truncate", width),
    ):
        filters[name] = _bounded_filter(filters[name], check)
    return env


_ENV = _environment()


def _undollar(text: str) -> str:
    return _DOLLAR.sub(lambda m: "{{" + _DOLLAR_NAME.sub(r"\1", m.group(1)) + "}}", text)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class CompiledExpression:
    """A parsed expression; calling it with names evaluates it, raising ExpressionError for
    any failure, an undefined result included (never a bare Jinja2 error or Undefined)."""

    __slots__ = ("_fn", "source")

    def __init__(self, source: str, fn: Callable[..., Any]) -> None:
        self.source = source
        self._fn = fn

    def __call__(self, **names: Any) -> Any:
        return self.over(names)

    def over(self, names: Mapping[str, Any]) -> Any:
        """The same as calling it with ``**names``, without building keyword arguments (and
        with any keys: one that is not a name is never read)."""
        token = _STEPS.set([MAX_STEPS])
        try:
            value = _called(self._fn, names)
        except _Limit as exc:
            raise ExpressionError(
                f"expression {self.source!r} was stopped: {exc}",
                hint="expressions are for small computations; do heavy work in nodes",
            ) from None
        except TemplateError as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {exc}") from exc
        except (
            ArithmeticError,
            TypeError,
            ValueError,
            LookupError,
            AttributeError,
            RecursionError,
            MemoryError,
        ) as exc:
            raise ExpressionError(
                f"expression {self.source!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            _STEPS.reset(token)
        if isinstance(value, Undefined):
            raise ExpressionError(
                f"expression {self.source!r} is undefined: {value._undefined_message}",
                hint="check the names and attributes it uses; unsafe attributes are never "
                "available",
            )
        return value


def _called(fn: Callable[[Mapping[str, Any]], Any], names: Mapping[str, Any]) -> Any:
    """``fn(names)``; Jinja takes only text as names, so keys that are not (an input's
    ``{1: ...}``) are left out, at the cost of a second call only when there are such keys."""
    try:
        return fn(names)
    except TypeError as exc:
        if str(exc) != "keywords must be strings":
            raise
    return fn({k: v for k, v in names.items() if isinstance(k, str)})


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> CompiledExpression:
    """Compile a Jinja2 expression (``item.price * 2``) once; call the result with names."""
    try:
        fn = _ENV.compile_expression(_DOLLAR_NAME.sub(r"\1", source), undefined_to_none=False)
    except TemplateError as exc:
        raise ExpressionError(
            f"cannot parse expression {source!r}: {exc}",
            hint="expressions are Jinja2 expressions, e.g. item.price * 2 or item.active",
        ) from exc
    return CompiledExpression(source, fn)


@lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    try:
        return _ENV.from_string(_undollar(source))
    except TemplateError as exc:
        raise ExpressionError(f"cannot parse template {source!r}: {exc}") from exc


def iso_now() -> str:
    """The time now as JavaScript's ``new Date().toISOString()`` writes it, which is what the
    original's ``{{$now}}`` rendered: UTC, milliseconds, ``Z`` (``2025-01-15T10:30:00.123Z``)."""
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def _names(source: str, names: Mapping[str, Any]) -> Mapping[str, Any]:
    """``names``, with ``now`` when the source may read it and nothing else defines it (the
    clock is read only for the templates that need it)."""
    if "now" in source and "now" not in names:
        scope = dict(names)
        scope["now"] = iso_now()
        return scope
    return names


def node_scope(
    variables: Mapping[str, Any], secrets: Any, names: Mapping[str, Any]
) -> dict[str, Any]:
    """The names a node's template sees: the variables; the fields of ``names["input"]``
    when it is a dict (by their own names, over variables of the same name; never ``now``,
    which stays the time); ``vars`` (the variables); ``secrets`` unless None; then ``names``
    themselves (what the node passes wins over everything)."""
    given = names.get("input")
    if isinstance(given, dict) and given:
        scope = {**variables, **given}  # a key that is not text is dropped when it is used
        if "now" in given:
            if "now" in variables:
                scope["now"] = variables["now"]
            else:
                del scope["now"]
    else:
        scope = dict(variables)
    scope["vars"] = variables
    if secrets is not None:
        scope["secrets"] = secrets
    scope.update(names)
    return scope


def evaluate(source: str, names: Mapping[str, Any]) -> Any:
    """Evaluate an expression against ``names``; errors name the expression."""
    return compile_expression(source).over(_names(source, names))


def render(value: Any, names: Mapping[str, Any]) -> Any:
    """Render a template. A string that is exactly one ``{{ expr }}`` keeps the value's type;
    dicts and lists are rendered recursively; other values pass through unchanged."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        single = _SINGLE.match(value)
        if single and "{%" not in value:
            return evaluate(single.group("expr"), names)
        token = _STEPS.set([MAX_STEPS])
        try:
            text = _called(_compile_template(value).render, _names(value, names))
        except _Limit as exc:
            raise ExpressionError(
                f"template {value!r} was stopped: {exc}",
                hint="templates are for small texts; do heavy work in nodes",
            ) from None
        except TemplateError as exc:
            raise ExpressionError(f"template {value!r} failed: {exc}") from exc
        except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
            raise ExpressionError(
                f"template {value!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        except (RecursionError, MemoryError) as exc:
            raise ExpressionError(f"template {value!r} failed: {type(exc).__name__}") from exc
        finally:
            _STEPS.reset(token)
        return text
    if isinstance(value, dict):
        return {k: render(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, names) for v in value]
    return value


@lru_cache(maxsize=4096)
def _analyse(source: str) -> tuple[frozenset[str] | None, str | None]:
    """What a template reads, or why it cannot be rendered (a syntax error, an unknown
    filter or test: Jinja finds those when it compiles)."""
    try:
        tree = _ENV.parse(_undollar(source))
        found = jinja2.meta.find_undeclared_variables(tree)
    except TemplateError as exc:
        return None, str(exc.message or exc)
    return frozenset(found - _ENV.globals.keys() - {"now"}), None


def template_names(source: str) -> frozenset[str] | None:
    """The names a template reads and does not define itself, less the helpers every
    template has (``now``, ``range``, ``int``...); None if it cannot be compiled."""
    return _analyse(source)[0]


def template_error(source: str) -> str | None:
    """Why a template cannot be compiled (``unexpected '}'``, ``No filter named 'ength'.``),
    or None when it can."""
    return _analyse(source)[1]


class _Engine:
    """The templates as validation sees them (``flow.protocols.TemplateEngine``)."""

    def render(self, value: Any, names: Mapping[str, Any], /) -> Any:
        return render(value, names)

    def names(self, template: str, /) -> frozenset[str] | None:
        return template_names(template)

    def error(self, template: str, /) -> str | None:
        return template_error(template)


ENGINE = _Engine()
