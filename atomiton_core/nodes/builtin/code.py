"""``code``: a Python snippet run on the node's inputs, always in a worker process, with limits.

The snippet is the body of a function: its inputs are names (``items``, or ``inputs["a-b"]``
for a port that is not an identifier), the flow's variables are ``vars``; ``return`` gives the
``result`` output, and so does a last line that is an expression (``sum(items)``). What it
prints is the ``stdout`` output (up to 1 MB). A syntax error is found when the flow is
validated, naming the line.

By default an attempt may use 5 s of wall time (``timeout: 5000``), 5 s of CPU
(``cpuLimit``), 256 MB of memory (``memoryLimit``) and start no process (``processLimit: 0``);
a flow may change each. User code is off when the conductor's security says
``allowCode: false``, and in the server's ``--safe`` mode.

The original's code node (``definitions/code/schema.ts``) ran a JavaScript expression; here the
snippet is Python, and the original's JavaScript runs as a ``javascript`` node
(atomiton-lang-js), which validation says when a snippet does not parse as Python and looks
like JavaScript. ``returnType`` converts the result as the original's did.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import keyword
import math
import traceback
from typing import Any, Literal

from pydantic import Field, field_validator

from atomiton_core.errors import CodeNotAllowed, ConfigurationError, ExecutionError
from atomiton_core.nodes.builtin._params import javascript_node_hint, looks_like_javascript
from atomiton_core.nodes.definition import Parameters, node

__all__ = ["code"]

#: What a snippet's ``print`` may write to the ``stdout`` output.
STDOUT_LIMIT = 1024 * 1024

DEFAULT_SETTINGS = {
    "isolation": "process",
    "timeout": 5000,
    "cpuLimit": 5,
    "memoryLimit": 256,
    "processLimit": 0,
}


class CodeParams(Parameters):
    code: str = Field(
        description="Python: the body of a function over the inputs; `return` (or a last "
        "expression) gives `result`",
        json_schema_extra={"format": "python"},
    )
    return_type: Literal["auto", "string", "number", "boolean", "object", "array"] = Field(
        "auto",
        description="Convert `result` to this type as the original did (auto: as it is; "
        "number: 0 for what is not one; object / array: JSON text is parsed)",
    )

    @field_validator("code")
    @classmethod
    def _compiles(cls, source: str) -> str:
        try:
            _compile(source, "<code>")
        except SyntaxError as exc:
            line = f": {exc.text.strip()!r}" if exc.text else ""
            message = f"syntax error at line {exc.lineno}: {exc.msg}{line}"
            if looks_like_javascript(source):
                message += (
                    "; the code node runs Python, and this is JavaScript (the original's code "
                    f"node ran JavaScript): to run it as written, {javascript_node_hint()}"
                )
            raise ValueError(message) from None
        return source


def _js_text(value: Any) -> str:
    """``String(value ?? "")`` as the original's code node converted to ``string``; lists and
    mappings as JSON (JavaScript wrote ``[object Object]``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _js_number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return 0 if isinstance(value, float) and math.isnan(value) else value
    if value is None:
        return 0
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        try:
            number = float(text)
        except ValueError:
            return 0
        return int(number) if number.is_integer() and "." not in text else number
    return 0


def _js_truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")  # [] and {} are true, as in JavaScript


def convert_result(value: Any, return_type: str) -> Any:
    """The original's ``returnType``: what its code node made of a result of another type."""
    if return_type == "string":
        return _js_text(value)
    if return_type == "number":
        return _js_number(value)
    if return_type == "boolean":
        return _js_truthy(value)
    if return_type == "object":
        if value is None or isinstance(value, dict | list):
            return value
        try:
            return json.loads(_js_text(value))
        except ValueError:
            return {}
    if return_type == "array":
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                return [value]
            return parsed if isinstance(parsed, list) else [value]
        return [value]
    return value


class _CappedText(io.StringIO):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.cut = False

    def write(self, text: str) -> int:
        room = self.limit - self.tell()
        if room <= 0:
            self.cut = True
            return len(text)
        if len(text) > room:
            self.cut = True
        return super().write(text[:room])


def _compile(source: str, filename: str) -> Any:
    tree = ast.parse(source, filename)
    body = tree.body
    if body and isinstance(body[-1], ast.Expr):
        last = body[-1]
        body[-1] = ast.copy_location(ast.Return(value=last.value), last)
    function = ast.parse("def __code__():\n    pass").body[0]
    assert isinstance(function, ast.FunctionDef)
    function.body = body or [ast.Pass()]
    module = ast.Module(body=[function], type_ignores=[])
    ast.fix_missing_locations(module)
    return compile(module, filename, "exec")


def _where(exc: BaseException, filename: str, source: str) -> str:
    """`` at line 3: `x = 1 / 0` `` for the snippet's innermost frame in the traceback."""
    lines = source.splitlines()
    found = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    if not found or found[-1].lineno is None:
        return ""
    n = found[-1].lineno
    text = lines[n - 1].strip() if 0 < n <= len(lines) else ""
    return f" at line {n}: `{text}`" if text else f" at line {n}"


@node(
    "code",
    params=CodeParams,
    outputs={"result": Any, "stdout": str},
    name="Code",
    category="code",
    icon="code",
    settings=DEFAULT_SETTINGS,
)
def code(ctx: Any, params: CodeParams, **inputs: Any) -> dict[str, Any]:
    """Run a Python snippet on the inputs, in a worker process with CPU, memory and time
    limits."""
    if not ctx.security.allow_code:
        raise CodeNotAllowed(
            "user code is disabled on this conductor",
            hint="the server's --safe mode and the security setting allowCode: false turn "
            "the code node off",
        )
    if not getattr(ctx, "isolated", False):
        raise ConfigurationError(
            "the code node always runs in a worker process",
            hint="remove 'isolation: none' from the node",
        )
    filename = f"<code node {ctx.node_id}>"
    compiled = _compile(params.code, filename)
    scope: dict[str, Any] = {"__builtins__": builtins, "__name__": "__code__"}
    scope.update({k: v for k, v in inputs.items() if k.isidentifier() and not keyword.iskeyword(k)})
    scope["inputs"] = dict(inputs)
    scope["vars"] = dict(ctx.variables)
    out = _CappedText(STDOUT_LIMIT)
    # The one place user Python runs, on purpose: this node is the flow author's own code
    # (not an expression, which goes through the sandbox), reached only in a worker process
    # held to its limits (checked just above), and never where allowCode is off or --safe.
    exec(compiled, scope)
    try:
        with contextlib.redirect_stdout(out):
            result = scope["__code__"]()
    except MemoryError:
        raise  # the worker reports it against memoryLimit
    except Exception as exc:
        raise ExecutionError(
            f"code raised {type(exc).__name__}: {exc}{_where(exc, filename, params.code)}",
            retryable=False,
            user_exception=type(exc).__name__,
        ) from None
    if params.return_type != "auto":
        result = convert_result(result, params.return_type)
    stdout = out.getvalue()
    if out.cut:
        stdout += f"\n[stdout cut at {STDOUT_LIMIT} characters]"
    return {"result": result, "stdout": stdout}
