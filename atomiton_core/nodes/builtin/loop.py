"""``loop``: run the child nodes once per item (forEach), N times (times), or while a condition
holds (while); sequentially, or several iterations at once."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from atomiton_core.errors import AtomitonError, ExecutionError, ExpressionError
from atomiton_core.nodes.builtin._params import Parameters, check_expression
from atomiton_core.nodes.builtin.iteration import (
    ITEM_SOURCES,
    Outputs,
    as_list,
    collect_outputs,
    iterate,
)
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node
from atomiton_core.nodes.expressions import compile_expression

#: What an iteration leaves behind when the loop does not collect results (shared, never
#: changed): a run of a million iterations holds nothing per iteration.
_NOT_KEPT: dict[str, Any] = {}


class LoopParams(Parameters):
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
        values = as_list(source, "input 'items'")
        total = len(values)
    elif params.loop_type == "times":
        total = params.count
    else:
        total = None
    if total is not None and total > params.max_iterations:
        raise ExecutionError(
            f"the loop would run {total} iterations, more than maxIterations "
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
                f"condition {params.condition!r} failed at iteration {iteration}: {exc}",
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
            return out  # a while loop's condition reads the last result
        return out if params.collect_results else _NOT_KEPT  # nothing kept that is not returned

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
