"""``group``: a sub-flow run as one node."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node


class GroupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parallel: bool = Field(True, description="Run independent children concurrently")
    concurrency: int | None = Field(None, ge=1, description="At most this many children at once")


@node(
    "group",
    params=GroupParams,
    container=True,
    name="Group",
    category="logic",
    icon="group",
    description="Run child nodes as one node; edges from the group's id feed its inputs in",
)
async def group(ctx: NodeContext, params: GroupParams, **inputs: Any) -> dict[str, Any]:
    return await ctx.run_children(inputs)
