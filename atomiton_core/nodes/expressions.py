"""Sandboxed Jinja2 templates and expressions: the only way user text is evaluated.

Flows come from users, so nothing in a flow reaches Python's ``eval``. Expressions such as
``item.price * 2`` and templates such as ``"Hello {{ who }}"`` run in Jinja2's sandbox with a
short list of safe helpers. The original's ``{{$now}}`` / ``{{$input}}`` forms are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from atomiton_core.errors import ExpressionError

__all__ = ["compile_expression", "evaluate", "is_template", "render"]

_DOLLAR = re.compile(r"\{\{(.*?)\}\}", re.S)
_DOLLAR_NAME = re.compile(r"\$([A-Za-z_]\w*)")
_SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.S)

_SAFE_GLOBALS: dict[str, Any] = {
    "abs": abs,
    "bool": bool,
    "dict": dict,
    "float": float,
    "int": int,
    "len": len,
    "list": list,
    "max": max,
    "min": min,
    "round": round,
    "sorted": sorted,
    "str": str,
    "sum": sum,
}


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.globals.update(_SAFE_GLOBALS)
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
        try:
            value = self._fn(**names)
        except TemplateError as exc:
            raise ExpressionError(f"expression {self.source!r} failed: {exc}") from exc
        except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
            raise ExpressionError(
                f"expression {self.source!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(value, Undefined):
            raise ExpressionError(
                f"expression {self.source!r} is undefined: {value._undefined_message}",
                hint="check the names and attributes it uses; unsafe attributes are never "
                "available",
            )
        return value


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


def _names(names: Mapping[str, Any]) -> dict[str, Any]:
    scope = {"now": datetime.now(UTC).isoformat()}
    scope.update(names)
    return scope


def evaluate(source: str, names: Mapping[str, Any]) -> Any:
    """Evaluate an expression against ``names``; errors name the expression."""
    return compile_expression(source)(**_names(names))


def render(value: Any, names: Mapping[str, Any]) -> Any:
    """Render a template. A string that is exactly one ``{{ expr }}`` keeps the value's type;
    dicts and lists are rendered recursively; other values pass through unchanged."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        single = _SINGLE.match(value)
        if single and "{%" not in value:
            return evaluate(single.group("expr"), names)
        try:
            return _compile_template(value).render(**_names(names))
        except TemplateError as exc:
            raise ExpressionError(f"template {value!r} failed: {exc}") from exc
    if isinstance(value, dict):
        return {k: render(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, names) for v in value]
    return value
