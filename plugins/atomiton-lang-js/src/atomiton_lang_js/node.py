"""The ``javascript`` node: the original's JavaScript code snippets and transform functions,
run in the sandbox of :mod:`atomiton_lang_js.sandbox`.

It takes what the original's ``code`` node took (``code``, ``inputParams``, ``returnType``,
``async``, and ``memoryLimit`` / ``timeout`` as limits) and what its ``transform`` applied a
``transformFunction`` for (``operation: map | filter | reduce``), so an original flow's
JavaScript runs as written.
"""

from __future__ import annotations

from typing import Any, Literal

from atomiton_core import NodeContext, Parameters, node
from atomiton_core.errors import CodeNotAllowed, ConfigurationError
from pydantic import Field, field_validator

from atomiton_lang_js.errors import JavaScriptError
from atomiton_lang_js.sandbox import (
    DEFAULT_HEAP_LIMIT,
    DEFAULT_TIME_LIMIT,
    is_identifier,
    run_javascript,
)

__all__ = ["JavaScriptParams", "javascript"]

ReturnType = Literal["any", "auto", "string", "number", "boolean", "object", "array"]


class JavaScriptParams(Parameters):
    code: str = Field(
        min_length=1,
        description="JavaScript: an expression (data.length), a function (item => "
        "item.price * 2) or a function body with return; its names are the inputs "
        "(input, data, each port), vars and inputs",
        json_schema_extra={"format": "javascript"},
    )
    operation: Literal["call", "map", "filter", "reduce"] = Field(
        "call",
        description="call: the code's value (a function is called with the input); map / "
        "filter / reduce: the code is a function applied to each item of the input list",
    )
    initial: Any = Field(0, description="reduce: the starting accumulator")
    input_params: str = Field(
        "data",
        description="The original's inputParams: comma-separated names that hold the port of "
        "that name, or else the input",
    )
    return_type: ReturnType = Field(
        "any", description="The type the value must have (any / auto: no check)"
    )
    async_: bool = Field(
        False, alias="async", description="The code is the body of an async function (await)"
    )
    time_limit: float | None = Field(
        None,
        gt=0,
        le=3_600_000,
        description=f"ms the JavaScript may run; default: the node's timeout, else "
        f"{DEFAULT_TIME_LIMIT:g}",
    )
    heap_limit: float | None = Field(
        None,
        ge=1,
        le=16_384,
        description=f"MB the JavaScript may use; default: the node's memoryLimit, else "
        f"{DEFAULT_HEAP_LIMIT}",
    )

    @field_validator("input_params")
    @classmethod
    def _names(cls, value: str) -> str:
        bad = [n for n in _split(value) if not is_identifier(n)]
        if bad:
            raise ValueError(
                f"inputParams {bad} cannot be JavaScript names: use letters, digits, _ and $, "
                "not starting with a digit, and no reserved word"
            )
        return value


def _split(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


def _names(
    ctx: NodeContext, params: JavaScriptParams, input: Any, ports: dict[str, Any]
) -> dict[str, Any]:
    """What the code sees: ``vars``, ``inputs`` (every port), ``input``, each port with a
    usable name, and the ``inputParams`` names (their port, or else the input)."""
    names: dict[str, Any] = {"vars": dict(ctx.variables), "inputs": {"input": input, **ports}}
    names["input"] = input
    names.update({k: v for k, v in ports.items() if is_identifier(k)})
    for name in _split(params.input_params):
        names[name] = ports.get(name, input)
    return names


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for name, types in _TYPES.items():
        if isinstance(value, types):
            return name
    return type(value).__name__


def _limits(ctx: NodeContext, params: JavaScriptParams) -> tuple[float, float]:
    settings = ctx.settings
    if ctx.isolated and settings.memory_limit is not None:
        raise ConfigurationError(
            "memoryLimit on an isolated javascript node would hold its worker's address "
            "space, which V8 needs far more of than it uses",
            hint="drop 'isolation: process': the sandbox is a process of its own already, "
            "held to memoryLimit / heapLimit",
        )
    time_limit = params.time_limit or settings.timeout or DEFAULT_TIME_LIMIT
    heaps = [h for h in (params.heap_limit, settings.memory_limit) if h is not None]
    return time_limit, min(heaps) if heaps else DEFAULT_HEAP_LIMIT


@node(
    "javascript",
    params=JavaScriptParams,
    outputs={"output": Any, "result": Any, "stdout": str},
    name="JavaScript",
    category="code",
    icon="code",
    description="Run JavaScript (the original's code snippets and transform functions) in a "
    "V8 sandbox with time and memory limits and no access to files or network",
    own_limits=("memoryLimit",),
)
async def javascript(
    ctx: NodeContext, params: JavaScriptParams, input: Any = None, **ports: Any
) -> dict[str, Any]:
    """Evaluate the code over the inputs in a fresh V8 sandbox; ``output`` and ``result``
    are its value, ``stdout`` what it printed with ``console``."""
    if not ctx.security.allow_code:
        raise CodeNotAllowed(
            "user code is disabled on this conductor",
            node_id=ctx.node_id,
            hint="the server's --safe mode and the security setting allowCode: false turn "
            "the javascript node off",
        )
    time_limit, heap_limit = _limits(ctx, params)
    done = await run_javascript(
        params.code,
        names=_names(ctx, params, input, ports),
        operation=params.operation,
        items=input if params.operation != "call" else None,
        initial=params.initial,
        argument=input,
        is_async=params.async_,
        time_limit=time_limit,
        heap_limit=heap_limit,
        node_id=ctx.node_id,
    )
    value = done.value
    expected = params.return_type
    if expected not in ("any", "auto") and _type_of(value) != expected:
        raise JavaScriptError(
            f"the code's value is {_type_of(value)}, and returnType says {expected}",
            hint="return a value of that type, or set returnType: any",
            retryable=False,
        )
    ctx.logger.debug("javascript ran %.1f ms", done.duration_ms)
    return {"output": value, "result": value, "stdout": done.stdout}
