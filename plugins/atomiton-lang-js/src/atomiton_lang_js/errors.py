"""How JavaScript fails, as the core's error classes::

    ExpressionError                     EXPRESSION_ERROR
    └── JavaScriptSyntaxError           JS_SYNTAX_ERROR     the code does not parse (line, column)
    ExecutionError                      EXECUTION_FAILED
    ├── JavaScriptError                 JS_ERROR            the code threw (name, line, column)
    ├── NodeTimeout                     TIMEOUT
    │   └── JavaScriptTimeout           TIMEOUT             over timeLimit
    └── ResourceLimitExceeded           RESOURCE_LIMIT
        └── JavaScriptMemoryError       RESOURCE_LIMIT      over heapLimit (``limit: heapLimit``)

A timeout and a memory error keep the core's codes, so whatever handles a node's ``TIMEOUT``
or ``RESOURCE_LIMIT`` handles JavaScript's too; neither is retried (the same code on the same
data runs out again). ``line`` and ``column`` count from 1 in the code as the flow wrote it.
"""

from __future__ import annotations

from atomiton_core.errors import ExecutionError, ExpressionError, NodeTimeout, ResourceLimitExceeded

__all__ = [
    "JavaScriptError",
    "JavaScriptMemoryError",
    "JavaScriptSyntaxError",
    "JavaScriptTimeout",
]


class JavaScriptSyntaxError(ExpressionError):
    """The code is not JavaScript; ``context`` has ``line``, ``column`` and ``source`` (the
    line's text), when V8 named them."""

    # the core types its own codes as ErrorCode members; a plugin's code is a str, as documented
    code = "JS_SYNTAX_ERROR"  # type: ignore[assignment]


class JavaScriptError(ExecutionError):
    """The code threw; ``context`` has ``name`` (``TypeError``...), ``line``, ``column`` and
    ``stack``."""

    code = "JS_ERROR"  # type: ignore[assignment]


class JavaScriptTimeout(NodeTimeout):
    """The code ran longer than its ``timeLimit``; ``context["limit"]`` is ``timeLimit``."""

    retryable_default = False


class JavaScriptMemoryError(ResourceLimitExceeded):
    """The code needed more memory than its ``heapLimit``; ``context["limit"]`` is
    ``heapLimit``."""
