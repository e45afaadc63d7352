"""What the built-in nodes' parameter models share: the public Parameters base (camelCase keys,
unknown ones refused), expression checks, and how to tell the original's JavaScript apart."""

from __future__ import annotations

import importlib.util
import re

from atomiton_core.errors import ExpressionError
from atomiton_core.nodes.definition import Parameters, accepts_original_names
from atomiton_core.nodes.expressions import compile_expression

__all__ = [
    "JAVASCRIPT_INSTALL",
    "JAVASCRIPT_PACKAGE",
    "Parameters",
    "accepts_original_names",
    "check_expression",
    "javascript_node_hint",
    "looks_like_javascript",
]

#: What runs the original's JavaScript, and how to get it.
JAVASCRIPT_PACKAGE = "atomiton_lang_js"
JAVASCRIPT_INSTALL = "pip install atomiton-lang-js"

#: Marks of JavaScript that neither a Jinja2 expression nor Python has.
_JAVASCRIPT = re.compile(
    r"=>|===|!==|\$\{|^\s*//|\b(?:const|let|var|function)\s+[\w$]|;\s*$",
    re.MULTILINE,
)


def looks_like_javascript(text: str) -> bool:
    """True for text written in the original's JavaScript (``return data.filter(row =>
    row.active === 'true');``): an arrow, ``===``, a ``//`` comment, a ``const``..."""
    return bool(_JAVASCRIPT.search(text))


def javascript_node_hint() -> str:
    """How to run a snippet of the original's JavaScript here: the ``javascript`` node."""
    installed = importlib.util.find_spec(JAVASCRIPT_PACKAGE) is not None
    package = "atomiton-lang-js" if installed else f"atomiton-lang-js: {JAVASCRIPT_INSTALL}"
    return f"make it a node of type 'javascript' with this text as its 'code' ({package})"


def check_expression(value: str | None) -> str | None:
    """Field validator: a Jinja2 expression parameter must compile (None passes)."""
    if value is not None:
        try:
            compile_expression(value)
        except ExpressionError as exc:
            if looks_like_javascript(value):
                raise ValueError(
                    f"{exc.message}: this is JavaScript, and the expression is Jinja2 "
                    "(e.g. iteration < 100 and lastResult is none)"
                ) from None
            raise ValueError(exc.message) from None
    return value
