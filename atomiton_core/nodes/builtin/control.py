"""Control flow: ``loop``, ``parallel``, ``if``, ``merge`` and ``flow`` (a stored sub-flow).

``loop`` and ``parallel`` are containers: their children run once per item, fed through
container edges from the node's own id (``sourceHandle: item`` / ``index``); an edge from a
child to the node's id with ``targetHandle: X`` makes ``X`` an output holding one value per
item, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from atomiton_core.errors import AtomitonError, ExecutionError, ExpressionError, NodeTimeout
from atomiton_core.nodes.builtin._params import CamelParams, check_expression
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node
from atomiton_core.nodes.expressions import compile_expression

_ITEM_SOURCES = frozenset({"item", "index", "items", "input"})


def _per_item_outputs(
    results: list[dict[str, Any] | None], names: tuple[str, ...]
) -> dict[str, list[Any]]:
    """Container outputs per item -> one list per output name (None where an item failed)."""
    return {name: [r.get(name) if r is not None else None for r in results] for name in names}


def _error_entry(index: int, err: BaseException) -> dict[str, Any]:
    data = err.to_dict() if isinstance(err, AtomitonError) else {"message": str(err)}
    return {"index": index, "error": data}


def _as_list(items: Any, where: str) -> list[Any]:
    if items is None:
        return []
    if isinstance(items, list | tuple):
        return list(items)
    if isinstance(items, dict):
        return list(items.values())
    raise ExecutionError(
        f"{where} must be a list, got {type(items).__name__}",
        hint="feed it a list (e.g. a transform's output) or set the 'array' parameter",
        retryable=False,
    )


# -- loop ------------------------------------------------------------------------------------


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


async def _run_iterations(
    ctx: NodeContext,
    total: int | None,
    concurrency: int,
    run_one: Callable[[int], Awaitable[dict[str, Any]]],
    stop_after: Callable[[int, dict[str, Any] | None], bool],
    break_on_error: bool,
) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
    """Run iterations 0, 1, ... with at most ``concurrency`` at once, keeping input order."""
    results: dict[int, dict[str, Any] | None] = {}
    errors: list[dict[str, Any]] = []
    if concurrency == 1 or total is None:
        i = 0
        while total is None or i < total:
            try:
                out: dict[str, Any] | None = await run_one(i)
            except AtomitonError as err:
                if break_on_error:
                    raise
                errors.append(_error_entry(i, err))
                out = None
            results[i] = out
            i += 1
            if stop_after(i, out):
                break
            if i % 32 == 0:  # inline children never suspend: let a timeout or cancel land
                await asyncio.sleep(0)
        return [results[k] for k in range(i)], errors

    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def guarded(i: int) -> None:
        nonlocal done
        async with semaphore:
            try:
                results[i] = await run_one(i)
            except AtomitonError as err:
                if break_on_error:
                    raise
                errors.append(_error_entry(i, err))
                results[i] = None
        done += 1
        ctx.progress(done / total)

    tasks = [asyncio.ensure_future(guarded(i)) for i in range(total)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    errors.sort(key=lambda e: e["index"])
    return [results[k] for k in range(total)], errors


@node(
    "loop",
    params=LoopParams,
    outputs={"iterationCount": int, "errors": list, "results": list},
    container=True,
    child_sources=_ITEM_SOURCES | {"iteration"},
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
        values = _as_list(source, f"loop {ctx.node_id!r} input 'items'")
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
    last: dict[str, Any] | None = None

    def keep_going(iteration: int, last_result: dict[str, Any] | None) -> bool:
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

    async def run_one(i: int) -> dict[str, Any]:
        nonlocal last
        item = values[i] if params.loop_type == "forEach" else i
        span = (i / total, (i + 1) / total) if sequential and total else None
        out = await ctx.run_children(
            {"item": item, "index": i, "iteration": i, "items": values, "input": item},
            label=f"iteration {i}",
            variables={"item": item, "index": i, "iteration": i},
            progress=span,
        )
        last = out
        if total is None:
            ctx.progress(min((i + 1) / params.max_iterations, 1.0), f"iteration {i}")
        return out

    def stop_after(done: int, out: dict[str, Any] | None) -> bool:
        if total is None:
            return done >= params.max_iterations or not keep_going(done, out)
        return False

    results, errors = await _run_iterations(
        ctx,
        total,
        params.concurrency,
        run_one,
        stop_after,
        params.break_on_error,
    )
    if not params.collect_results:
        return {"iterationCount": len(results), "errors": errors}
    return {"iterationCount": len(results), **_collect(results, errors, names)}


# -- parallel --------------------------------------------------------------------------------


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
    child_sources=_ITEM_SOURCES | {"operation"},
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
    ops = _as_list(source, f"parallel {ctx.node_id!r} input 'operations'")
    names = ctx.child_outputs
    semaphore = asyncio.Semaphore(params.concurrency)
    op_timeout = params.operation_timeout / 1000 if params.operation_timeout else None
    finished: list[int] = []

    async def run_op(i: int) -> dict[str, Any]:
        async with semaphore:
            coro = ctx.run_children(
                {"item": ops[i], "index": i, "operation": ops[i], "items": ops, "input": ops[i]},
                label=f"operation {i}",
                variables={"item": ops[i], "index": i},
                progress=None,
            )
            if op_timeout is None:
                out = await coro
            else:
                try:
                    async with asyncio.timeout(op_timeout):
                        out = await coro
                except TimeoutError:
                    raise NodeTimeout(
                        f"parallel {ctx.node_id!r}: operation {i} timed out after "
                        f"{params.operation_timeout:g} ms",
                        node_id=ctx.node_id,
                    ) from None
        finished.append(i)
        ctx.progress(len(finished) / len(ops), f"operation {i} done")
        return out

    tasks = [asyncio.ensure_future(run_op(i)) for i in range(len(ops))]

    async def settle() -> dict[str, Any]:
        if not tasks:
            return {"results": [], "errors": [], **{n: [] for n in names}}
        if params.strategy == "race":
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = min(done, key=tasks.index)
            winner = tasks.index(first)
            out = first.result()  # a failing first finisher fails the race
            return {"winnerIndex": winner, **(out if names else {"results": [out]})}
        if params.strategy == "all":
            results = await asyncio.gather(*tasks)
            order = range(len(ops)) if params.maintain_order else finished
            listed: list[dict[str, Any] | None] = [results[i] for i in order]
            return _collect(listed, [], names)
        await asyncio.wait(tasks)
        settled: list[dict[str, Any]] = []
        listed = []
        errors: list[dict[str, Any]] = []
        order = (
            list(range(len(ops)))
            if params.maintain_order
            else [
                *finished,
                *(i for i in range(len(ops)) if i not in finished),
            ]
        )
        for i in order:
            exc = tasks[i].exception()
            if exc is None:
                listed.append(tasks[i].result())
                settled.append({"index": i, "status": "fulfilled", "outputs": tasks[i].result()})
            else:
                listed.append(None)
                errors.append(_error_entry(i, exc))
                settled.append({"index": i, "status": "rejected", **_error_entry(i, exc)})
        out = _collect(listed, errors, names)
        out["settled"] = settled
        return out

    try:
        if params.global_timeout is None:
            return await settle()
        try:
            async with asyncio.timeout(params.global_timeout / 1000):
                return await settle()
        except TimeoutError:
            raise NodeTimeout(
                f"parallel {ctx.node_id!r} timed out after {params.global_timeout:g} ms "
                "(globalTimeout)",
                node_id=ctx.node_id,
            ) from None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _collect(
    listed: list[dict[str, Any] | None], errors: list[dict[str, Any]], names: tuple[str, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": errors}
    if names:
        out.update(_per_item_outputs(listed, names))
    else:
        out["results"] = listed
    return out


# -- if / merge ------------------------------------------------------------------------------


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
