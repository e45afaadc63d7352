"""``flow``: a stored flow run as one node (a sub-flow by reference)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from atomiton_core.nodes.builtin._params import Parameters
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node


class FlowRefParams(Parameters):
    flow_id: str = Field(description="Id of the stored flow to run")


@node(
    "flow",
    params=FlowRefParams,
    dynamic_outputs=True,
    name="Sub-flow",
    category="logic",
    icon="workflow",
    description="Run a stored flow as one node: inputs become its variables, its sink nodes' "
    "outputs become this node's outputs (keyed by node id)",
)
async def flow_ref(ctx: NodeContext, params: FlowRefParams, **inputs: Any) -> dict[str, Any]:
    return await ctx.run_flow(params.flow_id, inputs)
