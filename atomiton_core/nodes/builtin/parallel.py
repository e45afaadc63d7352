"""``parallel``: run the child nodes once per operation, concurrently, with the strategies
all (the first failure fails the node), race (the first to finish wins) and allSettled
(every outcome collected, the original's default), a timeout per operation and one for them
all.

The original's parameters (``definitions/parallel/index.ts``, ``docs/nodes/parallel.md``) mean
the same here, ``failFast`` included; ``preserveOrder`` (in its example flows) is
``maintainOrder``. A ``timeout`` on a parallel node is, as on every node of the original, the
node's own time limit (all its operations together, per attempt): the reserved execution
setting, not a per-operation one (that is ``operationTimeout``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from atomiton_core.errors import NodeTimeout
from atomiton_core.nodes.builtin._params import Parameters, accepts_original_names
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


class ParallelParams(Parameters):
    #: ``preserveOrder``: the name the original's example flows use for ``maintainOrder``.
    original_names: ClassVar[Mapping[str, str]] = {"preserveOrder": "maintainOrder"}
    _original = accepts_original_names()

    concurrency: int = Field(5, ge=1, description="Operations running at once")
    strategy: Literal["all", "race", "allSettled"] = Field(
        "allSettled",
        description="all: the first failure cancels the rest; race: the first result wins and "
        "the rest are cancelled; allSettled: every outcome collected",
    )
    operation_timeout: float | None = Field(None, gt=0, description="Per operation, ms")
    global_timeout: float | None = Field(None, gt=0, description="For all operations, ms")
    fail_fast: bool = Field(
        False,
        description="allSettled: start no further operation after one fails (those running "
        "finish; those never started are `skipped`)",
    )
    maintain_order: bool = Field(
        True, description="Results in input order (else in completion order)"
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
    ops = as_list(source, "input 'operations'")
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
            f"timed out after {params.global_timeout:g} ms (globalTimeout)",
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
            f"operation {i} timed out after {params.operation_timeout:g} ms",
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
        stop_on_failure=params.fail_fast,
    )
    if run.winner is not None:  # race
        winner, out = run.winner
        return {"winnerIndex": winner, **(out if names else {"results": [out]})}
    if params.strategy == "all":
        order = range(len(ops)) if params.maintain_order else run.completed
        return collect_outputs([run.outputs[i] for i in order], [], names)
    # failFast: the operations never started (none without it)
    unstarted: set[int] = set()
    if len(run.completed) + len(run.failures) < len(ops):
        unstarted = set(range(len(ops))) - set(run.completed) - run.failures.keys()
    settled_order = (
        range(len(ops))
        if params.maintain_order
        else [*run.completed, *sorted(run.failures), *sorted(unstarted)]
    )
    outputs = run.outputs
    settled: list[dict[str, Any]] = []
    listed: list[Outputs | None] = []
    errors: list[dict[str, Any]] = []
    for i in settled_order:
        err = run.failures.get(i)
        got = outputs[i] if i < len(outputs) else None
        if i in unstarted:
            listed.append(None)
            settled.append({"index": i, "status": "skipped"})
        elif err is None:
            listed.append(got)
            settled.append({"index": i, "status": "fulfilled", "outputs": got})
        else:
            listed.append(None)
            errors.append(error_entry(i, err))
            settled.append({"index": i, "status": "rejected", **error_entry(i, err)})
    result = collect_outputs(listed, errors, names)
    result["settled"] = settled
    return result
