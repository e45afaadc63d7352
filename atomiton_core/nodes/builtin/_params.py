"""What the built-in nodes' parameter models share: camelCase keys, and expression checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from atomiton_core.errors import ExpressionError
from atomiton_core.nodes.expressions import compile_expression


class CamelParams(BaseModel):
    """camelCase keys in flow files (snake_case in Python); unknown keys are reported."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="forbid")


def check_expression(value: str | None) -> str | None:
    """Field validator: a Jinja2 expression parameter must compile (None passes)."""
    if value is not None:
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise ValueError(exc.message) from None
    return value
