"""A fast YAML reader for loading flows: libyaml's C parser, YAML 1.2 core-schema values.

Loading needs plain data only; the round-trip document (comments, styles) is parsed from the
text when a flow is saved. ruamel.yaml's round-trip parser is pure Python (about a second per
50 kB here); this reader walks libyaml's parse events and builds dicts and lists directly,
resolving plain scalars with ruamel's own YAML 1.2 patterns, so both readers give the same
data (``yes``/``on`` stay strings, ``0o17`` is octal) — a property test holds them to it.

Anything unusual (merge keys, duplicate keys, complex keys, custom tags, timestamps) raises
:class:`Unsupported`, and the caller lets ruamel read the text instead. Without PyYAML's C
extension, ``available()`` is False.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from atomiton_core.errors import FlowLoadError
from atomiton_core.flow.budget import MAX_DEPTH

__all__ = ["Unsupported", "available", "load"]

try:
    import yaml
    from yaml.cyaml import CParser as _CParser
except ImportError:  # no PyYAML, or PyYAML without libyaml
    _CParser = None


class Unsupported(Exception):
    """This text needs the full reader (ruamel)."""


def _ruamel_pattern(tag: str) -> re.Pattern[str]:
    from ruamel.yaml import resolver

    for versions, rtag, pattern, _ in resolver.implicit_resolvers:
        if rtag == f"tag:yaml.org,2002:{tag}" and (1, 2) in versions:
            return cast("re.Pattern[str]", pattern)  # ruamel's LazyEval of a pattern
    raise LookupError(tag)  # pragma: no cover - ruamel always has them


_INT = _ruamel_pattern("int")
_FLOAT = _ruamel_pattern("float")
_TIMESTAMP = _ruamel_pattern("timestamp")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NUMERIC_START = frozenset("-+0123456789.")


def _int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    for prefix, base in (("0b", 2), ("0o", 8), ("0x", 16)):
        if digits.startswith(prefix):
            return sign * int(digits[2:], base)
    return sign * int(digits, 10)


def _float(text: str) -> float:
    value = text.replace("_", "").lower()
    sign = -1.0 if value.startswith("-") else 1.0
    value = value.lstrip("+-")
    if value == ".inf":
        return sign * float("inf")
    if value == ".nan":
        return float("nan")
    return sign * float(value)


def _plain(text: str) -> Any:
    """A plain (unquoted, untagged) scalar, as YAML 1.2's core schema reads it."""
    if text in _NULLS:
        return None
    first = text[0]
    if first in "tTfF":
        return _BOOLS.get(text, text)
    if first in _NUMERIC_START:
        if _INT.match(text):
            return _int(text)
        if _FLOAT.match(text):
            return _float(text)
        if _TIMESTAMP.match(text):
            raise Unsupported("timestamp")
    if text in ("<<", "="):
        raise Unsupported("merge or value key")
    return text


_TAGGED: dict[str, Callable[[str], Any]] = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": _int,
    "tag:yaml.org,2002:float": _float,
    "tag:yaml.org,2002:bool": lambda text: _BOOLS[text],
    "tag:yaml.org,2002:null": lambda text: None,
}


def available() -> bool:
    return _CParser is not None


def load(text: str, stats: dict[str, Any] | None = None) -> Any:
    """Parse one YAML document. Raises yaml.YAMLError for bad YAML, Unsupported for YAML
    this reader leaves to ruamel. ``stats["aliases"]`` counts the aliases it met (none: the
    document cannot expand, and its depth was checked while reading)."""
    parser = _CParser(text)
    stack: list[Any] = []  # containers being built
    keys: list[Any] = []  # per open mapping: the pending key (or _NO_KEY)
    anchors: dict[str, Any] = {}
    root: Any = _NO_KEY
    try:
        while True:
            event = parser.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.tag is not None and event.tag != "!":
                    convert = _TAGGED.get(event.tag)
                    if convert is None:
                        raise Unsupported(f"tag {event.tag}")
                    try:
                        value = convert(event.value)
                    except (ValueError, KeyError):
                        raise Unsupported(f"tagged value {event.value!r}") from None
                elif event.implicit[0] and not event.style:
                    value = _plain(event.value)
                else:
                    value = event.value
                if event.anchor is not None:
                    anchors[event.anchor] = value
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if event.tag is not None and event.tag not in (
                    "tag:yaml.org,2002:map",
                    "tag:yaml.org,2002:seq",
                ):
                    raise Unsupported(f"tag {event.tag}")
                container: Any = {} if kind is yaml.MappingStartEvent else []
                if len(stack) >= MAX_DEPTH:
                    mark = event.start_mark
                    raise FlowLoadError(
                        f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels",
                        hint="flatten the data, or pass it in as an input",
                    )
                if event.anchor is not None:
                    anchors[event.anchor] = container
                stack.append(container)
                keys.append(_NO_KEY)
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop()
                keys.pop()
            elif kind is yaml.AliasEvent:
                value = anchors[event.anchor]
                if stats is not None:
                    stats["aliases"] = stats.get("aliases", 0) + 1
            elif kind is yaml.StreamEndEvent:
                break
            else:  # stream / document start and end
                continue
            if not stack:
                if root is not _NO_KEY:
                    raise Unsupported("several documents")
                root = value
                continue
            top = stack[-1]
            if type(top) is list:
                top.append(value)
            elif keys[-1] is _NO_KEY:
                if isinstance(value, dict | list):
                    raise Unsupported("complex key")
                if value in top:
                    raise Unsupported(f"duplicate key {value!r}")
                keys[-1] = value
            else:
                top[keys[-1]] = value
                keys[-1] = _NO_KEY
    finally:
        parser.dispose()
    return None if root is _NO_KEY else root


class _NoKey:
    __slots__ = ()


_NO_KEY: Any = _NoKey()
