"""Run JavaScript in a sandbox: a fresh V8 isolate in a process of its own, per evaluation.

Why a process and not V8 in this one: some allocations end V8 with a fatal error that takes
its whole process down (``new Array(2 ** 31).fill(0)`` fails a hash table's size check; a
heap that outgrows V8's own limit aborts), and a builtin V8 cannot interrupt makes even
closing the isolate wait for it. In a process of its own, the conductor never sees any of
that: the host answers or dies, and either way this side raises one of
:mod:`atomiton_lang_js.errors`. The price is a process start per evaluation (about 0.1 s:
Python, mini-racer, V8), paid once per node run, not per item.

What the code can reach: ECMAScript's own globals (``JSON``, ``Math``, ``Date``, ``Intl``,
typed arrays, ``WebAssembly``...), a ``console`` whose output comes back as ``stdout``, and
``setTimeout``. Nothing of the host: no ``require``, ``process``, ``fetch``,
``XMLHttpRequest``, no module loader (``import()`` rejects), no file, no network. Values
cross as JSON, both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal
from uuid import UUID

from atomiton_core.errors import AtomitonError, ConfigurationError, ExecutionError, InvalidInput

from atomiton_lang_js.errors import (
    JavaScriptError,
    JavaScriptMemoryError,
    JavaScriptSyntaxError,
    JavaScriptTimeout,
)

__all__ = [
    "DEFAULT_HEAP_LIMIT",
    "DEFAULT_TIME_LIMIT",
    "STDOUT_LIMIT",
    "JavaScriptResult",
    "Operation",
    "is_identifier",
    "run_javascript",
]

#: Milliseconds the code may run, by default.
DEFAULT_TIME_LIMIT = 1000.0
#: Megabytes the code may use, by default.
DEFAULT_HEAP_LIMIT = 64
#: Characters of ``console`` output kept.
STDOUT_LIMIT = 1024 * 1024
#: Seconds the host may take beyond ``timeLimit`` to start and answer before it is killed.
HOST_GRACE_S = 15.0

Operation = Literal["call", "map", "filter", "reduce"]

_HOST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_host.py")
_INSTALL_HINT = "pip install atomiton-lang-js (it brings mini-racer, V8 for Python)"
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
#: Words a JavaScript parameter cannot be called (reserved in strict or sloppy code).
_RESERVED = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "implements",
        "interface",
        "let",
        "package",
        "private",
        "protected",
        "public",
        "static",
        "yield",
        "await",
        "arguments",
        "eval",
    ]
)
_TAIL = 2000


def is_identifier(name: str) -> bool:
    """True if ``name`` can be a JavaScript parameter name."""
    return bool(_IDENTIFIER.fullmatch(name)) and name not in _RESERVED


@dataclass(frozen=True)
class JavaScriptResult:
    """What an evaluation gave: its value (JSON data; ``None`` for ``undefined``), what it
    printed with ``console``, and how long it ran (ms, in V8, from compiling to the value)."""

    value: Any
    stdout: str
    duration_ms: float


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, UUID | PurePath):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


def _arguments(payload: Mapping[str, Any], node_id: str | None) -> tuple[str, bool]:
    """The payload as JSON text, and whether it is strict JSON (no NaN, no Infinity), which
    the host hands to ``JSON.parse``: far less memory than a literal of that size."""
    try:
        try:
            return json.dumps(
                payload, default=_jsonable, allow_nan=False, separators=(",", ":")
            ), True
        except ValueError:  # NaN or Infinity: only a JavaScript literal has them
            return json.dumps(
                payload, default=_jsonable, allow_nan=True, separators=(",", ":")
            ), False
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(
            f"the input cannot cross into JavaScript: {exc}",
            node_id=node_id,
            hint="values cross as JSON (text, numbers, booleans, null, lists, mappings with "
            "text keys; dates become ISO text); convert the others first",
            retryable=False,
        ) from None


async def run_javascript(
    code: str,
    *,
    names: Mapping[str, Any] | None = None,
    operation: Operation = "call",
    items: Sequence[Any] | None = None,
    initial: Any = 0,
    argument: Any = None,
    is_async: bool = False,
    time_limit: float = DEFAULT_TIME_LIMIT,
    heap_limit: float = DEFAULT_HEAP_LIMIT,
    node_id: str | None = None,
) -> JavaScriptResult:
    """Evaluate ``code`` in a fresh sandbox and give its value.

    ``code`` is an expression (``data.length``), a function (``item => item.price * 2``) or
    a function body with ``return``; ``names`` are its parameters (name -> value). Its value,
    for ``operation``:

    - ``call``: the value itself, promises awaited; a function is called with ``argument``;
    - ``map`` / ``filter``: the value must be a function, called ``(item, index)`` for each
      of ``items``, as the original's transform did;
    - ``reduce``: a function called ``(acc, item, index)`` from ``initial``.

    ``time_limit`` is in milliseconds, ``heap_limit`` in megabytes. Cancelling the awaiting
    task kills the sandbox at once.
    """
    bound = dict(names or {})
    bad = sorted(n for n in bound if not is_identifier(n))
    if bad:
        raise ConfigurationError(
            f"{bad} cannot be JavaScript parameter names",
            node_id=node_id,
            hint="use names made of letters, digits, _ and $, not starting with a digit, "
            "and not a reserved word",
        )
    if operation != "call" and not isinstance(items, list | tuple):
        raise InvalidInput(
            f"operation {operation!r} needs a list of items, got {type(items).__name__}",
            node_id=node_id,
            hint="send a list (an array) to the node's input",
            retryable=False,
        )
    header = {
        "names": list(bound),
        "code": code,
        "async": is_async,
        "operation": operation,
        "timeLimit": float(time_limit),
        "heapLimit": int(heap_limit * 1024 * 1024),
        "stdoutLimit": STDOUT_LIMIT,
    }
    arguments, header["strict"] = _arguments(
        {
            "values": list(bound.values()),
            "items": list(items) if items is not None else None,
            "initial": initial,
            "argument": argument,
        },
        node_id,
    )
    request = (json.dumps(header) + "\n" + arguments).encode("utf-8", "surrogatepass")
    out, err, status = await _run_host(request, time_limit / 1000 + HOST_GRACE_S, node_id)
    return _reply(out, err, status, code, time_limit, heap_limit, node_id)


async def _run_host(
    request: bytes, limit_s: float, node_id: str | None
) -> tuple[bytes, bytes, int]:
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            _HOST,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ExecutionError(
            f"cannot start the JavaScript sandbox: {exc.strerror or exc}", node_id=node_id
        ) from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(request), limit_s)
    except TimeoutError:
        raise JavaScriptTimeout(
            f"the JavaScript sandbox did not answer within {limit_s:g} s",
            node_id=node_id,
            hint="raise 'timeLimit' (ms); the sandbox was killed",
            limit="timeLimit",
        ) from None
    finally:  # whatever happened (cancelled, timed out, answered), the sandbox is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 5)
    return out, err, proc.returncode if proc.returncode is not None else -signal.SIGKILL


def _reply(
    out: bytes,
    err: bytes,
    status: int,
    code: str,
    time_limit: float,
    heap_limit: float,
    node_id: str | None,
) -> JavaScriptResult:
    first, _, value = out.partition(b"\n")
    try:
        head: dict[str, Any] = json.loads(first)
    except ValueError:
        raise _died(status, err, heap_limit, node_id) from None
    if head.get("ok"):
        stdout = str(head.get("stdout", ""))
        if head.get("stdoutCut"):
            stdout += f"\n[stdout cut at {STDOUT_LIMIT} characters]"
        return JavaScriptResult(
            value=None if head.get("undefined") else json.loads(value),
            stdout=stdout,
            duration_ms=float(head.get("ms", 0.0)),
        )
    kind = head.get("kind")
    if kind == "syntax":
        raise _syntax_error(str(head.get("message", "")), code, node_id)
    if kind == "thrown":
        raise _thrown(head, code, node_id)
    if kind == "timeout":
        raise JavaScriptTimeout(
            f"JavaScript ran longer than its timeLimit of {time_limit:g} ms",
            node_id=node_id,
            hint="raise 'timeLimit' (ms), or make the code do less (is there an endless loop?)",
            limit="timeLimit",
        )
    if kind == "memory":
        raise _memory_error(heap_limit, node_id)
    if kind == "notFunction":
        raise JavaScriptError(
            f"the code must be a function for this operation, and it is a {head.get('type')}",
            node_id=node_id,
            hint="write a function, e.g. item => item.price * 2 (map), row => row.active "
            "(filter), (acc, item) => acc + item (reduce)",
            retryable=False,
        )
    raise JavaScriptError(
        f"JavaScript failed: {head.get('message', head)}", node_id=node_id, retryable=False
    )


def _memory_error(heap_limit: float, node_id: str | None) -> JavaScriptMemoryError:
    return JavaScriptMemoryError(
        f"JavaScript needed more memory than its heapLimit of {heap_limit:g} MB",
        node_id=node_id,
        hint="raise 'heapLimit' (MB), or make the code use less",
        retryable=False,
        limit="heapLimit",
    )


def _died(status: int, err: bytes, heap_limit: float, node_id: str | None) -> AtomitonError:
    text = err[-_TAIL:].decode("utf-8", "replace")
    if b"out of memory" in err.lower() or b"heap limit" in err.lower():
        return _memory_error(heap_limit, node_id)  # V8 ended its process: a fatal OOM
    if b"No module named 'py_mini_racer'" in err:
        return ConfigurationError(
            "the JavaScript sandbox needs mini-racer, which is not installed",
            node_id=node_id,
            hint=_INSTALL_HINT,
        )
    if status < 0:
        try:
            how = f"died of {signal.Signals(-status).name}"
        except ValueError:
            how = f"died of signal {-status}"
    else:
        how = f"exited with status {status}"
    tail = text.strip()
    return ExecutionError(
        f"the JavaScript sandbox {how}" + (f"; it said:\n{tail}" if tail else ""),
        node_id=node_id,
        hint="this is a bug in the sandbox or V8, not in the flow; the conductor is unaffected",
        exit_code=status,
    )


def _user_line(line: int, code: str) -> int | None:
    """The code's own line for a line of the script it was wrapped in (line 1 is ours)."""
    n = line - 1
    return n if 1 <= n <= max(1, code.count("\n") + 1) else None


def _syntax_error(message: str, code: str, node_id: str | None) -> JavaScriptSyntaxError:
    lines = message.split("\n")
    found = re.match(r"<anonymous>:(\d+): (?:SyntaxError: )?(.*)", lines[0])
    what = found.group(2) if found else lines[0]
    line = _user_line(int(found.group(1)), code) if found else None
    column = None
    source = None
    if line is not None and len(lines) >= 3 and "^" in lines[2]:
        source = lines[1]
        column = lines[2].index("^") + 1
    if line is None:  # V8 stumbled on the wrapper's closing: the code did not end
        where, what = "", "the code ends too early (a bracket, brace or string is not closed?)"
    else:
        where = f" at line {line}, column {column}" if column else f" at line {line}"
    shown = f": {source.strip()!r}" if source and source.strip() else ""
    return JavaScriptSyntaxError(
        f"JavaScript syntax error{where}: {what}{shown}",
        node_id=node_id,
        hint="the code is an expression (item.price * 2), a function (item => ...) or a "
        "function body with return",
        retryable=False,
        line=line,
        column=column,
        source=source,
    )


def _thrown(head: Mapping[str, Any], code: str, node_id: str | None) -> JavaScriptError:
    name = str(head.get("name") or "Error")
    message = str(head.get("message") or "")
    stack = head.get("stack")
    line = column = None
    if isinstance(stack, str):
        found = re.search(r"code\.js:(\d+):(\d+)", stack)
        if found:
            line = _user_line(int(found.group(1)), code)
            column = int(found.group(2)) if line is not None else None
    where = f" at line {line}, column {column}" if line else ""
    if head.get("stage") == "result":
        what = f"the code's value cannot become JSON ({name}: {message})"
        hint: str | None = "return JSON data: no BigInt, no cycles"
    else:
        what = f"JavaScript threw {name}{where}: {message}"
        hint = None
    # the code's frames, on its own lines; the wrapper's frames are left out
    frames = [f for f in (stack or "").split("\n") if "<anonymous>" not in f]
    text = re.sub(
        r"code\.js:(\d+):(\d+)",
        lambda m: f"code:{_user_line(int(m[1]), code) or '?'}:{m[2]}",
        "\n".join(frames),
    )
    return JavaScriptError(
        what,
        node_id=node_id,
        hint=hint,
        retryable=False,
        name=name,
        line=line,
        column=column,
        stack=text or None,
    )
