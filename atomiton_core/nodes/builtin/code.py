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
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import keyword
import traceback
from typing import Any

from pydantic import Field, field_validator

from atomiton_core.errors import CodeNotAllowed, ConfigurationError, ExecutionError
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

    @field_validator("code")
    @classmethod
    def _compiles(cls, source: str) -> str:
        try:
            _compile(source, "<code>")
        except SyntaxError as exc:
            line = f": {exc.text.strip()!r}" if exc.text else ""
            raise ValueError(f"syntax error at line {exc.lineno}: {exc.msg}{line}") from None
        return source


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
    stdout = out.getvalue()
    if out.cut:
        stdout += f"\n[stdout cut at {STDOUT_LIMIT} characters]"
    return {"result": result, "stdout": stdout}
