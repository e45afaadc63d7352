"""Glob patterns with braces (``*.{jpg,png}``), matched like a shell matches file names."""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

__all__ = ["expand_braces", "matcher"]


def expand_braces(pattern: str) -> list[str]:
    """``a{b,c{d,e}}`` -> ``[ab, acd, ace]``; unbalanced braces are kept literally."""
    depth = 0
    start = -1
    for i, ch in enumerate(pattern):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                parts = _split_top(inner)
                if len(parts) < 2:
                    continue
                head, tail = pattern[:start], pattern[i + 1 :]
                out: list[str] = []
                for part in parts:
                    out.extend(expand_braces(head + part + tail))
                return out
    return [pattern]


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        current += ch
    parts.append(current)
    return parts


@lru_cache(maxsize=256)
def matcher(pattern: str) -> re.Pattern[str]:
    """One compiled regex for all brace alternatives of ``pattern``."""
    alternatives = [fnmatch.translate(p) for p in expand_braces(pattern)]
    return re.compile("|".join(f"(?:{a})" for a in alternatives))
