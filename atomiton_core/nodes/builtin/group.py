"""``group``: a sub-flow run as one node.

Its children run along their edges, independent ones at once unless ``parallel: false``
(one at a time, in plan order). The original's group (``definitions/group/index.ts``)
defaulted to ``parallel: false`` and ran its children one after another in list order, each
fed the previous one's outputs (it did not follow edges); here the edges decide what a child
receives, so running independent children at once gives the same outputs, sooner: the default
stays ``true``. Its ``timeout`` and ``retries`` are, here as on every node, the group's own
execution settings (the whole group, per attempt); the original applied them to each child.
"""

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
