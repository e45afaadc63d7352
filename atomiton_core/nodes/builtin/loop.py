"""``loop``: run the child nodes once per item (forEach), per number of a range (forRange),
N times (times), or while a condition holds (while, doWhile, until); sequentially, or several
iterations at once.

It takes the original's parameters as the original meant them (``definitions/loop/schema.ts``,
``docs/nodes/loop.md``): ``times`` (our ``count``), ``continueOnError`` (the opposite of our
``breakOnError``), ``parallel`` with ``concurrency``, ``batchSize``, ``delay``, and
``startValue`` / ``endValue`` / ``stepSize`` for a forRange loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from atomiton_core.errors import AtomitonError, ExecutionError, ExpressionError
from atomiton_core.nodes.builtin._params import (
    Parameters,
    accepts_original_names,
    check_expression,
)
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
#: The loop types that run over a list of values (the rest count, or ask a condition).
_OVER_VALUES = ("forEach", "forRange")
_CONDITIONED = ("while", "doWhile", "until")
#: The original's concurrency when it said ``parallel: true`` and gave none.
ORIGINAL_PARALLEL_CONCURRENCY = 5


class LoopParams(Parameters):
    #: The original's names: ``times`` is our ``count``; ``continueOnError`` and ``parallel``
    #: mean what :meth:`from_original` makes of them.
    original_names: ClassVar[Mapping[str, str]] = {
        "times": "count",
        "continueOnError": "breakOnError",
        "parallel": "concurrency",
    }
    _original = accepts_original_names()

    loop_type: Literal["forEach", "forRange", "times", "while", "doWhile", "until"] = Field(
        "forEach",
        description="forEach: over `items`; forRange: startValue to endValue (inclusive) by "
        "stepSize; times: `count` times; while: as long as `condition` holds; doWhile: the "
        "same, asked after the first iteration; until: until `condition` holds",
    )
    array: list[Any] | None = Field(None, description="forEach: items when no `items` input")
    iterate_over: str | None = Field(
        None,
        description="forEach: the field of the input mapping that holds the list (dotted, "
        "e.g. files or data.users)",
    )
    count: int = Field(10, ge=0, description="times: how many iterations (the original's times)")
    start_value: int | float = Field(0, description="forRange: the first value")
    end_value: int | float = Field(10, description="forRange: the last value (included)")
    step_size: int | float = Field(1, description="forRange: added each iteration (not 0)")
    condition: str | None = Field(
        None,
        description="while / doWhile / until: Jinja2 expression over `iteration` and `lastResult`",
    )
    max_iterations: int = Field(10_000, ge=1, description="Cap on iterations")
    batch_size: int = Field(
        1,
        ge=1,
        le=1000,
        description="forEach / forRange: items per iteration (above 1, `item` is a list)",
    )
    delay: float = Field(
        0, ge=0, le=60_000, description="ms to wait before each iteration after the first"
    )
    collect_results: bool = Field(True, description="Collect each iteration's outputs")
    break_on_error: bool = Field(
        False, description="Stop at the first failing iteration (else collect `errors`)"
    )
    concurrency: int = Field(1, ge=1, description="Iterations run side by side")

    _check = field_validator("condition")(check_expression)

    @classmethod
    def from_original(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``continueOnError: true`` is ``breakOnError: false``; ``parallel: false`` runs the
        iterations one by one whatever ``concurrency`` says (the original read it only with
        ``parallel: true``, and then took 5 when none was given)."""
        if "continueOnError" in data:
            if "breakOnError" in data or "break_on_error" in data:
                raise ValueError(
                    "'continueOnError' is the original's opposite of 'breakOnError': give one "
                    "of them"
                )
            go_on = data.pop("continueOnError")
            data["breakOnError"] = (not go_on) if isinstance(go_on, bool) else go_on
        if "parallel" in data:
            parallel = data.pop("parallel")
            if parallel is True:
                data.setdefault("concurrency", ORIGINAL_PARALLEL_CONCURRENCY)
            elif parallel is False:
                data.pop("concurrency", None)
                data["concurrency"] = 1
            else:
                raise ValueError(f"parallel must be true or false, got {parallel!r}")
        return super().from_original(data)

    @model_validator(mode="after")
    def _needs(self) -> LoopParams:
        if self.loop_type in _CONDITIONED and self.condition is None:
            raise ValueError(f"loopType {self.loop_type!r} needs a 'condition'")
        if self.loop_type == "forRange" and self.step_size == 0:
            raise ValueError("loopType 'forRange' needs a stepSize other than 0")
        if self.batch_size > 1 and self.loop_type not in _OVER_VALUES:
            raise ValueError(
                f"batchSize groups the items of forEach and forRange loops; loopType "
                f"{self.loop_type!r} has none"
            )
        if self.iterate_over is not None and self.loop_type != "forEach":
            raise ValueError(
                f"iterateOver picks the list of a forEach loop, not of {self.loop_type!r}"
            )
        return self

    def range_length(self) -> int:
        """How many values forRange runs over: start, start + step, ... up to end."""
        span = (self.end_value - self.start_value) / self.step_size
        return max(math.floor(span + 1e-9) + 1, 0)


def _field(source: Any, path: str) -> Any:
    """``iterateOver``: the list at ``path`` (dotted) of the input mapping."""
    value = source
    for part in path.split("."):
        if not isinstance(value, Mapping):
            raise ExecutionError(
                f"iterateOver {path!r} reads field {part!r} of the input, which is "
                f"{type(value).__name__}, not a mapping",
                hint="feed the loop the mapping that holds the list (a file-system list's "
                "output holds `files`), or drop iterateOver to loop over a list input",
                retryable=False,
            )
        if part not in value:
            known = ", ".join(map(str, list(value)[:10])) or "none"
            raise ExecutionError(
                f"iterateOver {path!r}: the input has no field {part!r} (its fields: {known})",
                retryable=False,
            )
        value = value[part]
    return value


def _values(params: LoopParams, source: Any) -> list[Any]:
    if params.loop_type == "forRange":
        n = params.range_length()
        if n > params.max_iterations * params.batch_size:
            raise ExecutionError(
                f"the loop would run over {n} values, more than maxIterations "
                f"({params.max_iterations})",
                hint="raise maxIterations",
                retryable=False,
            )
        values: list[Any] = [params.start_value + i * params.step_size for i in range(n)]
    else:
        if params.iterate_over is not None:
            source = _field(source, params.iterate_over)
        values = as_list(source, f"input 'items'{_of(params)}")
    size = params.batch_size
    if size > 1:
        return [values[i : i + size] for i in range(0, len(values), size)]
    return values


def _of(params: LoopParams) -> str:
    return f" (its field {params.iterate_over!r})" if params.iterate_over else ""


@node(
    "loop",
    params=LoopParams,
    outputs={"iterationCount": int, "errors": list, "results": list},
    container=True,
    child_sources=ITEM_SOURCES | {"iteration"},
    name="Loop",
    category="logic",
    icon="repeat",
    description="Run the child nodes once per item (forEach), per value of a range, N times, "
    "or while a condition holds",
)
async def loop(
    ctx: NodeContext, params: LoopParams, items: Any = None, input: Any = None
) -> dict[str, Any]:
    source = items if items is not None else input if input is not None else params.array
    values: list[Any] = []
    total: int | None
    if params.loop_type in _OVER_VALUES:
        values = _values(params, source)
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
    until = params.loop_type == "until"
    names = ctx.child_outputs

    def keep_going(iteration: int, last_result: Outputs | None) -> bool:
        if condition is None:
            return True
        scope = dict(ctx.variables)
        scope.update(iteration=iteration, lastResult=last_result, vars=ctx.variables)
        try:
            return bool(condition(**scope)) is not until
        except Exception as exc:
            raise ExpressionError(
                f"condition {params.condition!r} failed at iteration {iteration}: {exc}",
                node_id=ctx.node_id,
                retryable=False,
            ) from exc

    if params.loop_type != "doWhile" and condition is not None and not keep_going(0, None):
        return {"iterationCount": 0, "errors": [], **({n: [] for n in names})}

    sequential = params.concurrency == 1
    over_values = params.loop_type in _OVER_VALUES
    pause = params.delay / 1000

    async def run_one(i: int) -> Outputs:
        if pause and i:
            await asyncio.sleep(pause)
        item = values[i] if over_values else i
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
