"""The line of a flow file that a problem's key path (``nodes[2].parameters.count``) points at.

Flows are read by a fast reader that keeps no positions. Only when there is something to
report is the text parsed again, by ruamel.yaml in round-trip mode, whose mappings and
sequences know the line of each key and item; the key path is walked down that document as
far as it goes (a missing key points at its parent).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

__all__ = ["document_of", "line_of", "path_parts"]

_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def path_parts(location: str) -> list[str | int]:
    """``nodes[2].parameters.count`` -> ``["nodes", 2, "parameters", "count"]``."""
    parts: list[str | int] = []
    for index, key in _PART.findall(location):
        parts.append(int(index) if index else key)
    return parts


def document_of(text: str) -> Any:
    """The round-trip document of ``text``, or None if it does not parse."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError, YAMLWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", YAMLWarning)
            return YAML(typ="rt").load(text)
    except (YAMLError, RecursionError, ValueError, TypeError):
        return None


def line_of(document: Any, location: str) -> int | None:
    """The 1-based line of the deepest part of ``location`` found in ``document``."""
    line: int | None = None
    node = document
    for part in path_parts(location):
        lc = getattr(node, "lc", None)
        try:
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                if lc is not None:
                    line = lc.item(part)[0] + 1
                node = node[part]
            elif isinstance(part, str) and isinstance(node, dict) and part in node:
                if lc is not None:
                    line = lc.key(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line
