"""Branching: ``if`` sends its data down one of two ports and the other branch is skipped;
``merge`` joins the branches again with what arrived."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from atomiton_core.nodes.builtin._params import Parameters, check_expression
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node


class IfParams(Parameters):
    condition: str = Field(
        description="Jinja2 expression over `data` (alias `input`) and the variables"
    )

    _check = field_validator("condition")(check_expression)


@node(
    "if",
    params=IfParams,
    outputs={"true": Any, "false": Any},
    name="If",
    category="logic",
    icon="split",
    blocking=False,
    pure=True,
    description="Pass `data` out of port `true` or `false`; the branch not taken is skipped",
)
def if_node(
    ctx: NodeContext, params: IfParams, data: Any = None, input: Any = None
) -> dict[str, Any]:
    value = data if data is not None else input
    taken = bool(ctx.evaluate(params.condition, data=value, input=value))
    return {"true": value} if taken else {"false": value}


class MergeParams(Parameters):
    mode: Literal["all", "first"] = Field(
        "all", description="all: the list of what arrived, in edge order; first: the first one"
    )


@node(
    "merge",
    params=MergeParams,
    outputs={"data": Any},
    multiple=("data",),
    name="Merge",
    category="logic",
    icon="merge",
    blocking=False,
    pure=True,
    description="Wait for every branch that was not skipped and combine what arrived",
)
def merge(ctx: NodeContext, params: MergeParams, data: list[Any] | None = None) -> dict[str, Any]:
    arrived = data or []
    return {"data": arrived[0] if params.mode == "first" and arrived else arrived}
