"""What the built-in nodes' parameter models share: the public Parameters base (camelCase keys,
unknown ones refused), and expression checks."""

from __future__ import annotations

from atomiton_core.errors import ExpressionError
from atomiton_core.nodes.definition import Parameters
from atomiton_core.nodes.expressions import compile_expression

__all__ = ["Parameters", "check_expression"]


def check_expression(value: str | None) -> str | None:
    """Field validator: a Jinja2 expression parameter must compile (None passes)."""
    if value is not None:
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise ValueError(exc.message) from None
    return value
