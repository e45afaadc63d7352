"""Control flow: ``loop``, ``parallel``, ``if``, ``merge`` and ``flow`` (a stored sub-flow).

``loop`` and ``parallel`` are containers; both run their children once per item through
``iteration.iterate``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from atomiton_core.errors import AtomitonError, ExecutionError, ExpressionError, NodeTimeout
from atomiton_core.nodes.builtin._params import CamelParams, check_expression
from atomiton_core.nodes.builtin.iteration import (
    ITEM_SOURCES,
    Outputs,
    as_list,
    collect_outputs,
    error_entry,
    iterate,
)
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node
from atomiton_core.nodes.expressions import compile_expression

# -- loop -----------------------------------------------------------------------------------


class LoopParams(CamelParams):
    loop_type: Literal["forEach", "times", "while"] = Field(
        "forEach", description="forEach: over `items`; times: `count` times; while: `condition`"
    )
    array: list[Any] | None = Field(None, description="forEach: items when no `items` input")
    count: int | None = Field(None, ge=0, description="times: how many iterations")
    condition: str | None = Field(
        None,
        description="while: Jinja2 expression over `iteration` and `lastResult`; "
        "the loop stops when it is false",
    )
    max_iterations: int = Field(10_000, ge=1, description="Cap on iterations")
    collect_results: bool = Field(True, description="Collect each iteration's outputs")
    break_on_error: bool = Field(
        False, description="Stop at the first failing iteration (else collect `errors`)"
    )
    concurrency: int = Field(1, ge=1, description="Iterations run side by side")

    _check = field_validator("condition")(check_expression)

    @model_validator(mode="after")
    def _needs(self) -> LoopParams:
        if self.loop_type == "times" and self.count is None:
            raise ValueError("loopType 'times' needs a 'count'")
        if self.loop_type == "while" and self.condition is None:
            raise ValueError("loopType 'while' needs a 'condition'")
        return self


@node(
    "loop",
    params=LoopParams,
    outputs={"iterationCount": int, "errors": list, "results": list},
    container=True,
    child_sources=ITEM_SOURCES | {"iteration"},
    name="Loop",
    category="logic",
    icon="repeat",
    description="Run the child nodes once per item (forEach), N times, or while a condition holds",
)
async def loop(
    ctx: NodeContext, params: LoopParams, items: Any = None, input: Any = None
) -> dict[str, Any]:
    source = items if items is not None else input if input is not None else params.array
    values: list[Any] = []
    total: int | None
    if params.loop_type == "forEach":
        values = as_list(source, f"loop {ctx.node_id!r} input 'items'")
        total = len(values)
    elif params.loop_type == "times":
        total = params.count
    else:
        total = None
    if total is not None and total > params.max_iterations:
        raise ExecutionError(
            f"loop {ctx.node_id!r} would run {total} iterations, more than maxIterations "
            f"({params.max_iterations})",
            hint="raise maxIterations",
            retryable=False,
        )
    condition = compile_expression(params.condition) if params.condition else None
    names = ctx.child_outputs

    def keep_going(iteration: int, last_result: Outputs | None) -> bool:
        if condition is None:
            return True
        scope = dict(ctx.variables)
        scope.update(iteration=iteration, lastResult=last_result, vars=ctx.variables)
        try:
            return bool(condition(**scope))
        except Exception as exc:
            raise ExpressionError(
                f"loop {ctx.node_id!r}: condition {params.condition!r} failed at iteration "
                f"{iteration}: {exc}",
                node_id=ctx.node_id,
                retryable=False,
            ) from exc

    if condition is not None and not keep_going(0, None):
        return {"iterationCount": 0, "errors": [], **({n: [] for n in names})}

    sequential = params.concurrency == 1

    async def run_one(i: int) -> Outputs:
        item = values[i] if params.loop_type == "forEach" else i
        span = (i / total, (i + 1) / total) if sequential and total else None
        out = await ctx.run_children(
            {"item": item, "index": i, "iteration": i, "items": values, "input": item},
            label=f"iteration {i}",
            variables={"item": item, "index": i, "iteration": i},
            progress=span,
        )
        if total is None:
            ctx.progress(min((i + 1) / params.max_iterations, 1.0), f"iteration {i}")
        return out

    def stop(done: int, out: Outputs | None) -> bool:
        return done >= params.max_iterations or not keep_going(done, out)

    def report(fraction: float, i: int) -> None:
        ctx.progress(fraction)

    run = await iterate(
        run_one,
        total,
        concurrency=params.concurrency,
        collect=() if params.break_on_error else (AtomitonError,),
        until=stop if total is None else None,
        progress=None if sequential else report,  # one by one, the children fill the spans
    )
    results = run.outputs
    if not params.collect_results:
        return {"iterationCount": len(results), "errors": run.errors}
    return {"iterationCount": len(results), **collect_outputs(results, run.errors, names)}


# -- parallel -------------------------------------------------------------------------------


class ParallelParams(CamelParams):
    concurrency: int = Field(4, ge=1, description="Operations running at once")
    strategy: Literal["all", "race", "allSettled"] = Field(
        "all",
        description="all: the first failure cancels the rest; race: the first result wins and "
        "the rest are cancelled; allSettled: every outcome collected",
    )
    operation_timeout: float | None = Field(None, gt=0, description="Per operation, ms")
    global_timeout: float | None = Field(None, gt=0, description="For all operations, ms")
    maintain_order: bool = Field(
        True,
        validation_alias=AliasChoices("maintainOrder", "preserveOrder", "maintain_order"),
        description="Results in input order (else in completion order)",
    )
    operations: list[Any] | None = Field(None, description="Items when no `operations` input")


@node(
    "parallel",
    params=ParallelParams,
    outputs={"results": list, "errors": list, "settled": list, "winnerIndex": int},
    container=True,
    child_sources=ITEM_SOURCES | {"operation"},
    name="Parallel",
    category="logic",
    icon="git-branch",
    description="Run the child nodes once per operation, concurrently (all / race / allSettled)",
)
async def parallel(
    ctx: NodeContext, params: ParallelParams, operations: Any = None, input: Any = None
) -> dict[str, Any]:
    source = (
        operations
        if operations is not None
        else input
        if input is not None
        else (params.operations)
    )
    ops = as_list(source, f"parallel {ctx.node_id!r} input 'operations'")
    names = ctx.child_outputs
    if not ops:
        return {"results": [], "errors": [], **{n: [] for n in names}}
    if params.global_timeout is None:
        return await _run_operations(ctx, params, ops, names)
    try:
        async with asyncio.timeout(params.global_timeout / 1000):
            return await _run_operations(ctx, params, ops, names)
    except TimeoutError:
        raise NodeTimeout(
            f"parallel {ctx.node_id!r} timed out after {params.global_timeout:g} ms "
            "(globalTimeout)",
            node_id=ctx.node_id,
        ) from None


async def _run_operations(
    ctx: NodeContext, params: ParallelParams, ops: list[Any], names: tuple[str, ...]
) -> dict[str, Any]:
    def run_op(i: int) -> Awaitable[Outputs]:
        return ctx.run_children(
            {"item": ops[i], "index": i, "operation": ops[i], "items": ops, "input": ops[i]},
            label=f"operation {i}",
            variables={"item": ops[i], "index": i},
            progress=None,
        )

    def timed_out(i: int) -> NodeTimeout:
        return NodeTimeout(
            f"parallel {ctx.node_id!r}: operation {i} timed out after "
            f"{params.operation_timeout:g} ms",
            node_id=ctx.node_id,
        )

    def report(fraction: float, i: int) -> None:
        ctx.progress(fraction, f"operation {i} done")

    op_timeout = params.operation_timeout
    run = await iterate(
        run_op,
        len(ops),
        concurrency=params.concurrency,
        collect=(Exception,) if params.strategy == "allSettled" else (),
        first=params.strategy == "race",
        timeout=None if op_timeout is None else (op_timeout / 1000, timed_out),
        progress=report,
        progress_on_error=False,  # a rejected operation does not move the progress
    )
    if run.winner is not None:  # race
        winner, out = run.winner
        return {"winnerIndex": winner, **(out if names else {"results": [out]})}
    if params.strategy == "all":
        order = range(len(ops)) if params.maintain_order else run.completed
        return collect_outputs([run.outputs[i] for i in order], [], names)
    order = range(len(ops)) if params.maintain_order else [*run.completed, *sorted(run.failures)]
    settled: list[dict[str, Any]] = []
    listed: list[Outputs | None] = []
    errors: list[dict[str, Any]] = []
    for i in order:
        err = run.failures.get(i)
        if err is None:
            listed.append(run.outputs[i])
            settled.append({"index": i, "status": "fulfilled", "outputs": run.outputs[i]})
        else:
            listed.append(None)
            errors.append(error_entry(i, err))
            settled.append({"index": i, "status": "rejected", **error_entry(i, err)})
    result = collect_outputs(listed, errors, names)
    result["settled"] = settled
    return result


# -- if / merge -----------------------------------------------------------------------------


class IfParams(CamelParams):
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


class MergeParams(CamelParams):
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


# -- flow (a stored flow run as one node) ------------------------------------------------------


class FlowRefParams(CamelParams):
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
