"""Atomiton's JavaScript: the node type ``javascript`` and :func:`run_javascript`, which runs
the original Atomiton's JavaScript (code snippets, ``transformFunction``) in a V8 sandbox."""

from __future__ import annotations

from atomiton_lang_js.errors import (
    JavaScriptError,
    JavaScriptMemoryError,
    JavaScriptSyntaxError,
    JavaScriptTimeout,
)
from atomiton_lang_js.node import JavaScriptParams, javascript
from atomiton_lang_js.sandbox import JavaScriptResult, run_javascript

__version__ = "0.1.0"

__all__ = [
    "JavaScriptError",
    "JavaScriptMemoryError",
    "JavaScriptParams",
    "JavaScriptResult",
    "JavaScriptSyntaxError",
    "JavaScriptTimeout",
    "__version__",
    "javascript",
    "run_javascript",
]
