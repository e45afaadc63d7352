"""Data nodes: ``const`` (a literal value), ``edit-fields`` (set values from templates) and
``transform`` (list operations).

Both evaluate user text only through the Jinja2 sandbox (``atomiton_core.nodes.expressions``),
except the original's JavaScript functions of ``transform`` (``transformFunction``,
``filterCondition``, ``reduceFunction``), which the optional package ``atomiton-lang-js`` runs
in its V8 sandbox (a process of its own, time and memory limits, no files or network);
without it, validation names the package to install.

``transform`` takes the original's parameters (``definitions/transform/schema.ts``,
``docs/nodes/transform.md``): ``sortKey`` / ``groupKey`` / ``groupBy`` (a property name, made
an ``expression``), ``sortDirection``, ``flattenDepth``, ``limitCount``, ``skipCount``,
``sliceStart``, ``sliceEnd``, ``reduceInitial``, and its defaults: without a function, map is
the identity, filter keeps the truthy items and reduce adds from 0. What the original's flows
put on a transform that its transform never read (a JavaScript ``expression``, ``code``,
``inputParams``...) is refused with what to do instead: it ran none of it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from atomiton_core.errors import CodeNotAllowed, ExpressionError
from atomiton_core.nodes.builtin._params import (
    JAVASCRIPT_INSTALL,
    JAVASCRIPT_PACKAGE,
    Parameters,
    accepts_original_names,
    javascript_node_hint,
    looks_like_javascript,
)
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

    @field_validator("values", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        """The original also took ``values`` as the text of a JSON object."""
        if not isinstance(value, str) or "{{" in value:
            return value  # a mapping, or a template rendered when the run starts
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(
                f"values must be a mapping, or the text of a JSON object: {exc}"
            ) from None
        if not isinstance(parsed, dict):
            raise ValueError(
                f"values must be a mapping, or the text of a JSON object; this text holds "
                f"{type(parsed).__name__} {value[:60]!r}"
            )
        return parsed


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
#: What runs when no function is given, as in the original: map is the identity (its
#: ``transformFunction: item => item``), filter keeps the truthy items, reduce sums (its
#: ``reduceFunction: (acc, item) => acc + item`` from ``reduceInitial: "0"``).
_DEFAULT_EXPRESSION = {"reduce": "acc + item"}
#: The original's default JavaScript, which needs no JavaScript to run (spaces removed), by
#: the parameter's names (flow file, Python).
_TRIVIAL_JAVASCRIPT = {
    ("transformFunction", "transform_function"): ("item=>item", "(item)=>item"),
    ("reduceFunction", "reduce_function"): ("(acc,item)=>acc+item",),
}
#: The operations that run each of the original's JavaScript parameters.
_JAVASCRIPT_OPERATIONS = {
    "transform_function": ("map", "filter"),
    "filter_condition": ("filter",),
    "reduce_function": ("reduce",),
}
#: The original's property-name parameters, by the operation that read them (in the order
#: it looked: group read groupKey, else groupBy, else sortKey).
_KEYS_READ = {"sort": ("sortKey",), "group": ("groupKey", "groupBy", "sortKey")}
#: What a key missing from an item sorts or groups by (the original: undefined).
_MISSING_KEY = {"sort": "none", "group": "'undefined'"}
#: Parameters the original's flows put on a transform that its transform never read.
_SNIPPET = ("code", "inputParams", "returnType", "async")


def _key_expression(name: str, key: Any, operation: str) -> str:
    """The original's ``sortKey: price`` (a property name) as an expression over ``item``."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{name} must be the name of a property of the items, got {key!r}")
    text = json.dumps(key)
    return f"(item[{text}] if item is mapping and {text} in item else {_MISSING_KEY[operation]})"


class TransformParams(Parameters):
    #: The original's names (``definitions/transform/schema.ts``, ``docs/nodes/transform.md``).
    original_names: ClassVar[Mapping[str, str]] = {
        "sortKey": "expression",
        "groupKey": "expression",
        "groupBy": "expression",
        "sortDirection": "order",
        "flattenDepth": "depth",
        "limitCount": "count",
        "skipCount": "count",
        "sliceStart": "start",
        "sliceEnd": "end",
    }
    _original = accepts_original_names()

    operation: Operation = Field("map", description="What to do with the list")
    expression: str | None = Field(
        None,
        description="Per-item Jinja2 expression over `item`, `index` (and `acc` for reduce), "
        "e.g. item.price * 2; the key for sort/group/unique. Without one: map is the "
        "identity, filter keeps truthy items, reduce adds (acc + item)",
    )
    initial: Any = Field(0, description="reduce: the starting accumulator")
    order: Literal["asc", "desc"] = Field("asc", description="sort: direction")
    depth: int = Field(1, ge=1, le=10, description="flatten: how many levels (1-10)")
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
        None, description="reduce: the starting accumulator as text, read as JSON (the original's)"
    )
    # What the original's flows put on a transform and its transform never read: refused,
    # each with what to do instead (not in the schema: an editor never offers them).
    code: SkipJsonSchema[Any] = None
    input_params: SkipJsonSchema[Any] = None
    return_type: SkipJsonSchema[Any] = None
    async_: SkipJsonSchema[Any] = Field(None, alias="async")
    input_type: SkipJsonSchema[Any] = None
    output_type: SkipJsonSchema[Any] = None

    @classmethod
    def from_original(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``sortKey`` / ``groupKey`` / ``groupBy`` (property names) become the ``expression``
        of the operation that read them, ``limitCount`` / ``skipCount`` the ``count`` of
        theirs; those the operation did not read are dropped, as the original ignored them."""
        operation = data.get("operation", "map")
        keys = {n: data.pop(n) for n in ("sortKey", "groupKey", "groupBy") if n in data}
        name = next((n for n in _KEYS_READ.get(operation, ()) if n in keys), None)
        if name is not None:
            if data.get("expression") is not None:
                raise ValueError(
                    f"{name!r} (a property name) and 'expression' both give the {operation} "
                    "key: give one of them"
                )
            data["expression"] = _key_expression(name, keys[name], operation)
        for reads, original in (("limit", "limitCount"), ("skip", "skipCount")):
            if original in data:
                value = data.pop(original)
                if operation == reads:
                    if data.get("count") is not None:
                        raise ValueError(
                            f"{original!r} is the original's name for 'count': give one of them"
                        )
                    data["count"] = value
        return super().from_original(data)

    @model_validator(mode="before")
    @classmethod
    def _trivial_javascript(cls, data: Any) -> Any:
        """The original's default functions (``item => item``, ``(acc, item) => acc + item``)
        are what this transform does without one: they need no JavaScript."""
        if not isinstance(data, dict):
            return data
        for names, trivial in _TRIVIAL_JAVASCRIPT.items():
            for key in names:
                value = data.get(key)
                if isinstance(value, str) and re.sub(r"\s+", "", value) in trivial:
                    data = {k: v for k, v in data.items() if k != key}
        return data

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_expression(value)
            except ExpressionError as exc:
                if looks_like_javascript(value):
                    raise ValueError(
                        "'expression' is a Jinja2 expression, and this is JavaScript, which "
                        "the original's transform never read under 'expression' (it passed "
                        "the list through unchanged, its default map item => item). To run it "
                        f"as written, {javascript_node_hint()}; or write it in Jinja2, e.g. "
                        "operation: filter with expression: item.active == 'true'"
                    ) from None
                raise ValueError(exc.message + "; " + (exc.hint or "")) from None
        return value

    @field_validator("code", "input_params", "return_type", "async_", "input_type", "output_type")
    @classmethod
    def _never_read(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        name = cls.model_fields[info.field_name or ""].alias or info.field_name
        if name == "code":
            raise ValueError(
                "the original's transform never read 'code' (a code node's parameter): it "
                "passed the list through unchanged, its default map item => item. To run "
                f"this JavaScript as written, {javascript_node_hint()}: it takes code, "
                "inputParams, returnType and async as the original's code node did; to keep "
                "the original's result, remove it"
            )
        if name in _SNIPPET:
            raise ValueError(
                f"the original's transform never read {name!r}: it goes with a code node's "
                "'code'; move them to a node of type 'javascript' (atomiton-lang-js), or "
                "remove it"
            )
        raise ValueError(
            f"the original's transform never read {name!r} (it did nothing): remove it"
        )

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
        if self.operation == "group" and self.expression is None:
            raise ValueError(
                "operation 'group' needs an 'expression' (the key, e.g. item.category) or "
                "the original's groupKey (a property name)"
            )
        if self.operation in ("limit", "skip") and self.count is None:
            name = "limitCount" if self.operation == "limit" else "skipCount"
            raise ValueError(
                f"operation {self.operation!r} needs a 'count' (the original's {name})"
            )
        return self

    def starting_value(self) -> Any:
        """reduce's accumulator: ``reduceInitial`` read as the original read it, else
        ``initial``."""
        return _initial(self.reduce_initial) if self.reduce_initial is not None else self.initial


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
    if not ctx.security.allow_code:
        raise CodeNotAllowed(
            "user code is disabled on this conductor: this transform's function is JavaScript",
            node_id=ctx.node_id,
            hint="the server's --safe mode and the security setting allowCode: false turn "
            "user code off; write the function as a Jinja2 'expression' instead",
        )
    run = importlib.import_module(JAVASCRIPT_PACKAGE).run_javascript
    done = await run(
        params.javascript(),
        operation=params.operation,
        items=items,
        initial=params.starting_value(),
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

    source = params.expression or _DEFAULT_EXPRESSION.get(op)
    fn: Callable[..., Any] = (
        compile_expression(source) if source else (lambda **names: names["item"])
    )
    result: Any
    if op == "map":
        result = [call(item, i) for i, item in enumerate(items)]
    elif op == "filter":
        result = [item for i, item in enumerate(items) if call(item, i)]
    elif op == "reduce":
        acc = params.starting_value()
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
