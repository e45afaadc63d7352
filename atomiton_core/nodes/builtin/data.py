"""Data nodes: ``const`` (a literal value), ``edit-fields`` (set values from templates) and
``transform`` (list operations).

Both evaluate user text only through the Jinja2 sandbox (``atomiton_core.nodes.expressions``),
except the original's JavaScript functions of ``transform`` (``transformFunction``,
``filterCondition``, ``reduceFunction``), which the optional package ``atomiton-lang-js`` runs
in its V8 sandbox (a process of its own, time and memory limits, no files or network);
without it, validation names the package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from atomiton_core.errors import ExpressionError
from atomiton_core.nodes.builtin._params import Parameters
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import node
from atomiton_core.nodes.expressions import compile_expression


class ConstParams(Parameters):
    value: Any = Field(
        None,
        description="The value it outputs, as written (any YAML/JSON value; not a template)",
        json_schema_extra={"template": False},
    )


@node(
    "const",
    params=ConstParams,
    outputs={"output": Any},
    name="Constant",
    category="data",
    icon="quote",
    blocking=False,
    pure=True,
    description="Output a literal value (a list, a mapping, a number, a text) to other nodes",
)
def const(ctx: NodeContext, params: ConstParams) -> dict[str, Any]:
    return {"output": params.value}


class EditFieldsParams(Parameters):
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields to set; string values are templates over `input` and variables",
    )
    keep_only_set: bool = Field(
        False, description="Output only these fields instead of merging them into the input"
    )


@node(
    "edit-fields",
    params=EditFieldsParams,
    outputs={"output": Any},
    name="Edit Fields",
    category="data",
    icon="pencil-line",
    blocking=False,
    description="Create or overwrite fields; values are Jinja2 templates ({{ input.x }})",
)
def edit_fields(ctx: NodeContext, params: EditFieldsParams, input: Any = None) -> dict[str, Any]:
    rendered = {key: ctx.render(value, input=input) for key, value in params.values.items()}
    if params.keep_only_set or not isinstance(input, dict):
        return {"output": rendered}
    return {"output": {**input, **rendered}}


Operation = Literal[
    "map",
    "filter",
    "reduce",
    "sort",
    "group",
    "flatten",
    "unique",
    "reverse",
    "limit",
    "skip",
    "slice",
]
_NEEDS_EXPRESSION = {"map", "filter", "reduce", "group"}
#: What runs the original's JavaScript functions, and how to get it.
JAVASCRIPT_PACKAGE = "atomiton_lang_js"
JAVASCRIPT_INSTALL = "pip install atomiton-lang-js"
#: The operations that run each of the original's JavaScript parameters.
_JAVASCRIPT_OPERATIONS = {
    "transform_function": ("map", "filter"),
    "filter_condition": ("filter",),
    "reduce_function": ("reduce",),
}


class TransformParams(Parameters):
    operation: Operation = Field("map", description="What to do with the list")
    expression: str | None = Field(
        None,
        description="Per-item Jinja2 expression over `item`, `index` (and `acc` for reduce), "
        "e.g. item.price * 2; the key for sort/group/unique",
    )
    initial: Any = Field(None, description="reduce: the starting accumulator")
    order: Literal["asc", "desc"] = Field("asc", description="sort: direction")
    depth: int = Field(1, ge=1, description="flatten: how many levels")
    count: int | None = Field(None, ge=0, description="limit / skip: how many items")
    start: int | None = Field(None, description="slice: first index (negative counts from end)")
    end: int | None = Field(None, description="slice: index to stop before")
    transform_function: str | None = Field(
        None,
        description="map / filter: a JavaScript function (item, index) => ..., as in the "
        f"original (needs atomiton-lang-js: {JAVASCRIPT_INSTALL}); `expression` is the "
        "Jinja2 way",
    )
    filter_condition: str | None = Field(
        None, description="filter: a JavaScript function (item, index) => ..., as in the original"
    )
    reduce_function: str | None = Field(
        None,
        description="reduce: a JavaScript function (acc, item, index) => ..., as in the original",
    )
    reduce_initial: str | None = Field(
        None, description="reduce with reduceFunction: the starting accumulator, read as JSON"
    )

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_expression(value)
            except ExpressionError as exc:
                raise ValueError(exc.message + "; " + (exc.hint or "")) from None
        return value

    def javascript(self) -> str | None:
        """The JavaScript function this operation runs, if the flow gave one (the original's
        transform ignored those of other operations, and so does this one)."""
        if self.operation == "map":
            return self.transform_function
        if self.operation == "filter":
            return self.filter_condition or self.transform_function
        if self.operation == "reduce":
            return self.reduce_function
        return None

    @field_validator("transform_function", "filter_condition", "reduce_function")
    @classmethod
    def _javascript_runs(cls, value: str | None, info: ValidationInfo) -> str | None:
        operation = info.data.get("operation")
        if value is None or operation not in _JAVASCRIPT_OPERATIONS[info.field_name or ""]:
            return value
        if importlib.util.find_spec(JAVASCRIPT_PACKAGE) is None:
            raise ValueError(
                f"the {operation} function is JavaScript, which runs with the atomiton-lang-js "
                f"package: {JAVASCRIPT_INSTALL}; or write it as a Jinja2 'expression' "
                "(atomiton migrate translates simple arrow functions), e.g. "
                "expression: item.price * 2"
            )
        return value

    @model_validator(mode="after")
    def _one_kind_of_function(self) -> TransformParams:
        if self.javascript() is not None and self.expression is not None:
            raise ValueError(
                "give the function either as a Jinja2 'expression' or as JavaScript "
                "(transformFunction / filterCondition / reduceFunction), not both"
            )
        return self

    @model_validator(mode="after")
    def _expression_needed(self) -> TransformParams:
        if (
            self.operation in _NEEDS_EXPRESSION
            and self.expression is None
            and self.javascript() is None
        ):
            raise ValueError(f"operation {self.operation!r} needs an 'expression'")
        if self.operation in ("limit", "skip") and self.count is None:
            raise ValueError(f"operation {self.operation!r} needs a 'count'")
        return self


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return json.dumps(value, sort_keys=True, default=repr)
    return value


def _initial(text: str) -> Any:
    """The original's ``reduceInitial``: JSON, else a number, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        number = float(text.strip() or 0)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


async def _javascript(ctx: NodeContext, params: TransformParams, items: list[Any]) -> Any:
    """Run the original's function over the items in atomiton-lang-js's sandbox: one
    evaluation for the whole list, errors its own (JS_SYNTAX_ERROR with the line, JS_ERROR,
    TIMEOUT, RESOURCE_LIMIT)."""
    run = importlib.import_module(JAVASCRIPT_PACKAGE).run_javascript
    if params.reduce_initial is not None:
        initial = _initial(params.reduce_initial)
    else:
        initial = params.initial if params.initial is not None else 0  # the original's "0"
    done = await run(
        params.javascript(),
        operation=params.operation,
        items=items,
        initial=initial,
        names={"vars": dict(ctx.variables)},
        time_limit=ctx.settings.timeout or 1000.0,
        node_id=ctx.node_id,
    )
    return done.value


def _flatten(items: list[Any], depth: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if depth > 0 and isinstance(item, list | tuple):
            out.extend(_flatten(list(item), depth - 1))
        else:
            out.append(item)
    return out


@node(
    "transform",
    params=TransformParams,
    outputs={"output": Any},
    name="Transform",
    category="data",
    icon="wand-2",
    blocking=False,
    pure=True,
    description="map / filter / reduce / sort / group / flatten / unique / reverse / limit / "
    "skip / slice a list with sandboxed expressions",
)
async def transform(ctx: NodeContext, params: TransformParams, input: Any) -> dict[str, Any]:
    items: list[Any] = list(input) if isinstance(input, list | tuple) else [input]
    op = params.operation
    if params.javascript() is not None:
        return {"output": await _javascript(ctx, params, items)}
    scope = dict(ctx.variables)
    scope["vars"] = ctx.variables

    def call(item: Any, index: int, **extra: Any) -> Any:
        scope["item"] = item
        scope["index"] = index
        scope.update(extra)
        try:
            return fn(**scope)
        except ExpressionError as exc:
            raise ExpressionError(
                f"{exc.message} (on item {index})",
                node_id=ctx.node_id,
                hint=exc.hint,
                retryable=False,
            ) from exc

    fn: Callable[..., Any] = (
        compile_expression(params.expression)
        if params.expression
        else (lambda **names: names["item"])
    )
    result: Any
    if op == "map":
        result = [call(item, i) for i, item in enumerate(items)]
    elif op == "filter":
        result = [item for i, item in enumerate(items) if call(item, i)]
    elif op == "reduce":
        acc = params.initial
        for i, item in enumerate(items):
            acc = call(item, i, acc=acc)
        result = acc
    elif op == "sort":
        keyed = [(call(item, i), i, item) for i, item in enumerate(items)]
        try:
            keyed.sort(key=lambda t: (t[0] is None, t[0]), reverse=params.order == "desc")
        except TypeError as exc:
            raise ExpressionError(
                f"cannot sort, keys are not comparable: {exc}",
                node_id=ctx.node_id,
                hint="give an 'expression' that yields keys of one type",
            ) from exc
        result = [t[2] for t in keyed]
    elif op == "group":
        groups: dict[str, list[Any]] = {}
        for i, item in enumerate(items):
            groups.setdefault(str(call(item, i)), []).append(item)
        result = groups
    elif op == "flatten":
        result = _flatten(items, params.depth)
    elif op == "unique":
        seen: set[Any] = set()
        result = []
        for i, item in enumerate(items):
            key = _hashable(call(item, i))
            if key not in seen:
                seen.add(key)
                result.append(item)
    elif op == "reverse":
        result = items[::-1]
    elif op == "limit":
        result = items[: params.count]
    elif op == "skip":
        result = items[params.count :]
    else:  # slice
        result = items[params.start : params.end]
    return {"output": result}
