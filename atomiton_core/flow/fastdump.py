"""Saving flows fast: libyaml's C emitter for new text, and splicing for text that was loaded.

ruamel.yaml's round-trip emitter keeps comments, order and quoting, but it is pure Python: a
10,000-node flow took seconds to save, where PyYAML's C dumper writes the same data in under
a second. Saving therefore takes one of two fast paths, and ruamel only when neither applies:

- A flow with no source text (built in Python) has no comments or styles to keep, so
  :func:`dumps` writes its data with PyYAML's C emitter, keys in their order. Quoting must be
  safe for every reader, so a string is written plain only if it would read back as a string
  under YAML 1.2 (ruamel, and our own reader) *and* under YAML 1.1 (PyYAML, and ruamel given
  ``%YAML 1.1``): ``yes``, ``on``, ``0o17``, ``1e3``, ``~``, ``2025-01-15`` and the like are
  quoted. Multi-line strings are written as literal blocks where libyaml allows it (in a
  spliced piece, see below, they are double-quoted on one line).
- A flow loaded from text keeps that text, and :func:`splice` edits it: the text is parsed
  again with libyaml's C parser, which gives each value's position; every value that did not
  change is copied from the text as it was (comments, quoting, flow or block style included),
  and only what changed is written anew, at the same indentation, by the C emitter. Removed
  keys and items are cut out with their lines (and the comment lines just above them), new
  ones are appended. A list of items whose ids changed follows the new order, each item
  moving with its comments; in any other list, equal items stay paired, so inserting or
  removing one rewrites nothing else. Editing text by position instead of re-emitting a
  whole document is what makes a small change to a large flow cheap: the cost is one C
  parse plus the changes (and the caller reading the result back, to check it).

Anything these paths do not handle raises :class:`Unsupported`, and the caller saves through
ruamel as before: YAML aliases in the loaded text (a spliced anchor would change every alias),
tagged or anchored collections, several documents, values that are not plain data (dates,
bytes, sets, subclasses of str or dict; a tuple is written as a list, as ruamel writes it),
and layouts the splicer does not edit (an item whose value starts on the line after its
``-``, a mapping that begins mid-line after ``---``).
Without PyYAML's C extension, ``available()`` is False.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import math
import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from atomiton_core.flow import fastyaml

__all__ = ["Unsupported", "available", "collector_paused", "dumps", "same", "splice"]

try:
    import yaml
    from yaml.cyaml import CParser as _CParser
    from yaml.cyaml import CSafeDumper as _CSafeDumper
except ImportError:  # no PyYAML, or PyYAML without libyaml
    _CParser = None
    _CSafeDumper = object


class Unsupported(Exception):
    """This save needs the full round-trip emitter (ruamel)."""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while: parsing a large flow makes a
    great many small objects, none of them cyclic, and the collector would walk them all
    again and again (a tenth of a second or more for 10,000 nodes)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def available() -> bool:
    return _CParser is not None


# -- the emitter -------------------------------------------------------------------------

_STR = "tag:yaml.org,2002:str"
_BREAKS = re.compile("[\n\r\x85\u2028\u2029]")
#: Breaks a literal block cannot hold for every reader (NEL, LS and PS are line breaks in
#: YAML 1.1, not in 1.2; a CR would read as a newline): such strings are double-quoted.
_ODD_BREAKS = re.compile("[\r\x85\u2028\u2029]")


class _Dumper(_CSafeDumper):  # type: ignore[misc]
    """PyYAML's C dumper, quoting a string wherever any YAML reader would not read a string."""


class _FragmentDumper(_Dumper):
    """For pieces spliced into a text: no anchors (a piece cannot refer to another)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: Any, data: str) -> Any:
    if _BREAKS.search(data) is None:
        return dumper.represent_scalar(_STR, data)
    # a literal block if libyaml allows it (else it writes double quotes)
    style = '"' if _ODD_BREAKS.search(data) else "|"
    return dumper.represent_scalar(_STR, data, style=style)


def _represent_str_on_one_line(dumper: Any, data: str) -> Any:
    # a piece spliced into a text is not followed by its own end: a literal block would
    # take in the indented comment lines after it, so a multi-line string is escaped
    style = None if _BREAKS.search(data) is None else '"'
    return dumper.represent_scalar(_STR, data, style=style)


def _refuse(dumper: Any, data: Any) -> Any:
    raise Unsupported(f"a {type(data).__name__} value")


def _setup() -> None:
    from ruamel.yaml import resolver

    # PyYAML's own resolvers are YAML 1.1's; ruamel's add 1.2's (and its 1.1 ones)
    for _versions, tag, pattern, first in resolver.implicit_resolvers:
        compiled = re.compile(pattern.pattern, pattern.flags)  # not ruamel's lazy wrapper
        _Dumper.add_implicit_resolver(tag, compiled, list(first))
    _Dumper.add_representer(str, _represent_str)
    for kind in (bytes, set, date, datetime):  # dates, binary, sets: ruamel writes them
        _Dumper.add_representer(kind, _refuse)
    _Dumper.add_representer(None, _refuse)  # anything else PyYAML does not know
    _FragmentDumper.add_representer(str, _represent_str_on_one_line)


if _CParser is not None:
    _setup()


def _emit(value: Any, dumper: type[Any], flow: bool) -> str:
    stream = io.StringIO()
    emitter = dumper(
        stream,
        default_flow_style=flow,
        sort_keys=False,
        allow_unicode=True,
        width=-1,  # never fold a line: every scalar but a literal block is on one line
    )
    try:
        emitter.open()
        emitter.represent(value)
        emitter.close()
    except Unsupported:
        raise
    except (yaml.YAMLError, UnicodeError, RecursionError, TypeError, ValueError) as exc:
        raise Unsupported(f"{type(exc).__name__}: {exc}") from None
    finally:
        emitter.dispose()
    return stream.getvalue()


def dumps(data: Any) -> str:
    """Plain data (a flow's ``to_data()``) as block-style YAML text, keys in their order."""
    if not available():
        raise Unsupported("no libyaml")
    return _emit(data, _Dumper, flow=False)


def _block_piece(value: Any) -> list[str]:
    """``value`` (a one-key mapping, or a one-item list) in block style, as lines."""
    lines = _emit(value, _FragmentDumper, flow=False).split("\n")[:-1]
    if lines[-1] == "...":  # the document end libyaml writes after a "|+" block: not here
        lines.pop()
    return lines


def _flow_value(value: Any) -> str:
    """``value`` in flow style, on one line, as it may stand inside ``[...]`` or ``{...}``."""
    text = _emit([value], _FragmentDumper, flow=True)
    if not (text.startswith("[") and text.endswith("]\n")) or text.count("\n") != 1:
        raise Unsupported("a flow value that does not fit on one line")
    return text[1:-2]


def _flow_entry(key: str, value: Any) -> str:
    text = _emit({key: value}, _FragmentDumper, flow=True)
    if not (text.startswith("{") and text.endswith("}\n")) or text.count("\n") != 1:
        raise Unsupported("a flow entry that does not fit on one line")
    return text[1:-2]


def _inline_block(value: Any) -> str | None:
    """A scalar or an empty collection as it may follow ``key: `` or ``- `` on one line."""
    if isinstance(value, dict | list) and value:
        return None
    lines = _block_piece([value])
    if len(lines) != 1 or not lines[0].startswith("- "):
        return None
    return lines[0][2:]


# -- comparing ---------------------------------------------------------------------------


def same(old: Any, new: Any) -> bool:
    """Equal and of the same types throughout (``True`` and ``1`` differ; a NaN is the same
    as a NaN), key order aside: what decides whether a value's text can be kept. An int and
    a float of the same value are the same: a model field typed ``float`` holds the file's
    ``60000`` as ``60000.0``, and the file's text says it."""
    if old is new:
        return True
    try:
        equal = old == new
    except Exception:  # a value without a usable ==: written anew
        return False
    return _same_types(old, new) if equal else _same_with_nans(old, new)


_NUMBERS = (int, float)


def _same_with_nans(old: Any, new: Any) -> bool:
    """``same`` for values ``==`` found unequal: they are, unless a NaN made them so."""
    kind = type(old)
    if kind is not type(new):
        return False
    if kind is float:
        return math.isnan(old) and math.isnan(new)
    if kind is dict:
        return old.keys() == new.keys() and all(same(v, new[k]) for k, v in old.items())
    if kind is list:
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new, strict=True))
    return False


def _same_types(old: Any, new: Any) -> bool:
    kind = type(old)
    if kind is not type(new):
        return kind in _NUMBERS and type(new) in _NUMBERS
    if kind is dict:
        return all(_same_types(v, new[k]) for k, v in old.items())
    if kind is list:
        return all(_same_types(a, b) for a, b in zip(old, new, strict=True))
    if kind is float:
        return math.copysign(1.0, old) == math.copysign(1.0, new)
    return True


# -- the text, parsed with positions -----------------------------------------------------

_SCALAR, _MAP, _SEQ = 0, 1, 2


class _Node:
    """A collection of the parsed text: where it is (``start``/``end`` character offsets),
    its plain data, and per entry the value's position, plain data and, for a collection,
    its node (a mapping also keeps its keys and their positions)."""

    __slots__ = (
        "end",
        "flow",
        "kends",
        "keys",
        "kids",
        "kind",
        "kstarts",
        "start",
        "value",
        "values",
        "vends",
        "vstarts",
    )

    def __init__(self, kind: int, flow: bool, start: int) -> None:
        self.kind = kind
        self.flow = flow
        self.start = start
        self.end = -1
        self.value: Any = {} if kind == _MAP else []
        self.keys: list[str] = []
        self.kstarts: list[int] = []
        self.kends: list[int] = []
        self.kids: list[_Node | None] = []  # None for a scalar
        self.values: list[Any] = []
        self.vstarts: list[int] = []
        self.vends: list[int] = []


_COLLECTION_TAGS = (None, "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _scalar(event: Any) -> Any:
    """A scalar event's value, read as the loader reads it (:mod:`fastyaml`)."""
    tag = event.tag
    if tag is not None and tag != "!":
        convert = fastyaml._TAGGED.get(tag)
        if convert is None:
            raise Unsupported(f"tag {tag}")
        try:
            return convert(event.value)
        except (ValueError, KeyError):
            raise Unsupported(f"tagged value {event.value!r}") from None
    if event.implicit[0] and not event.style:
        return fastyaml._plain(event.value)
    return event.value


def _parse(text: str) -> _Node:
    """The text as a tree of positioned values; Unsupported for what the splicer leaves to
    ruamel (aliases, tagged or anchored collections, several documents)."""
    if _CParser is None:
        raise Unsupported("no libyaml")
    parser = _CParser(text)
    stack: list[_Node] = []
    pending: list[tuple[str, int, int] | None] = []  # per open mapping: its key, if read
    root: _Node | None = None
    plain = fastyaml._plain
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    map_start, seq_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    map_end, seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    try:
        while True:
            event = parser.get_event()
            kind = type(event)
            if kind is scalar_event:
                child = None
                start, end = event.start_mark.index, event.end_mark.index
                if event.tag is None and not event.style and event.implicit[0]:
                    value = plain(event.value)
                else:
                    value = _scalar(event)
            elif kind is map_start or kind is seq_start:
                if event.anchor is not None or event.tag not in _COLLECTION_TAGS:
                    raise Unsupported("an anchored or tagged collection")
                stack.append(
                    _Node(
                        _MAP if kind is map_start else _SEQ,
                        bool(event.flow_style),
                        event.start_mark.index,
                    )
                )
                pending.append(None)
                continue
            elif kind is map_end or kind is seq_end:
                child = stack.pop()
                pending.pop()
                if child.flow:
                    child.end = event.end_mark.index
                    if text[child.start] not in "[{" or text[child.end - 1] not in "]}":
                        raise Unsupported("a single-pair mapping inside a flow list")
                elif child.vends:  # a block collection ends where its last value ends
                    child.end = child.vends[-1]
                    if child.kind == _MAP:
                        child.end = max(child.end, child.kends[-1])
                else:  # pragma: no cover - libyaml makes no empty block collection
                    raise Unsupported("an empty block collection")
                start, end, value = child.start, child.end, child.value
            elif kind is alias_event:
                raise Unsupported("a YAML alias")
            elif kind is yaml.StreamEndEvent:
                break
            else:  # stream and document start and end
                continue
            if not stack:
                if root is not None or child is None:
                    raise Unsupported("several documents, or a scalar one")
                root = child
                continue
            top = stack[-1]
            if top.kind == _MAP:
                key = pending[-1]
                if key is None:
                    if child is not None:
                        raise Unsupported("a complex key")
                    name = str(value)  # as the loader's to_plain names keys
                    if name in top.value:
                        raise Unsupported(f"duplicate key {name!r}")
                    pending[-1] = (name, start, end)
                    continue
                top.keys.append(key[0])
                top.kstarts.append(key[1])
                top.kends.append(key[2])
                top.value[key[0]] = value
                pending[-1] = None
            else:
                top.value.append(value)
            top.kids.append(child)
            top.values.append(value)
            top.vstarts.append(start)
            top.vends.append(end)
    except yaml.YAMLError as exc:
        raise Unsupported(f"unreadable text: {exc}") from None
    except fastyaml.Unsupported as exc:
        raise Unsupported(str(exc)) from None
    finally:
        parser.dispose()
    if root is None:
        raise Unsupported("no document")
    return root


# -- splicing ----------------------------------------------------------------------------


def splice(text: str, data: Any) -> str:
    """``text`` (a YAML document) edited to hold ``data``: unchanged values keep their text.

    ``data`` is plain (dicts, lists, scalars). The result, read back, gives ``data`` (with
    the keys of the text first, in the text's order); the caller may check that it does.
    """
    bom = ""
    if text.startswith("\ufeff"):  # libyaml's positions do not count a leading BOM
        bom, text = "\ufeff", text[1:]
    if "\ufeff" in text:
        raise Unsupported("a byte order mark inside the text")
    if not text.endswith("\n"):
        text += "\n"
    with collector_paused():
        root = _parse(text)
        if same(root.value, data):
            return bom + text
        if root.kind != _MAP or not isinstance(data, dict):
            raise Unsupported("a document that is not a mapping")
        return bom + _Splicer(text).document(root, data)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    """Just past the newline ending the line ``pos`` is on (``pos`` itself if it starts a
    line that a block scalar's end reached)."""
    if pos > 0 and text[pos - 1] == "\n":
        return pos
    found = text.find("\n", pos)
    return len(text) if found < 0 else found + 1


def _blank(piece: str) -> bool:
    return not piece.strip(" ")


def _question_mark(text: str, a: int, b: int) -> int:
    """The ``?`` of an explicit key between two flow entries (``text[a:b]`` holds only
    commas, spaces and comments), or -1."""
    at = a
    for line in text[a:b].split("\n"):
        found = line.split("#", 1)[0].find("?")
        if found >= 0:
            return at + found
        at += len(line) + 1
    return -1


def _kind(value: Any) -> int:
    return _MAP if isinstance(value, dict) else _SEQ if isinstance(value, list) else _SCALAR


class _Out:
    """Text being assembled from new pieces and ranges of the original (adjacent ranges are
    joined, so a long run of unchanged values costs one slice)."""

    __slots__ = ("a", "b", "parts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: list[str] = []
        self.a = self.b = -1

    def copy(self, a: int, b: int) -> None:
        if a >= b:
            return
        if a == self.b:
            self.b = b
            return
        self._flush()
        self.a, self.b = a, b

    def add(self, piece: str) -> None:
        if piece:
            self._flush()
            self.parts.append(piece)

    def _flush(self) -> None:
        if self.b > self.a >= 0:
            self.parts.append(self.text[self.a : self.b])
        self.a = self.b = -1

    def value(self) -> str:
        self._flush()
        return "".join(self.parts)


def _pairs(node: _Node, new: Any) -> list[tuple[int | None, Any, Any]]:
    """(index of the old entry or None for a new one, key, new value), in output order: a
    mapping keeps the text's key order and appends new keys; a list of items with ids
    follows the new order when the ids changed (as the round-trip merge does), else equal
    items are paired and the others by position."""
    if node.kind == _MAP:
        old_keys = node.value
        out: list[tuple[int | None, Any, Any]] = [
            (i, key, new[key]) for i, key in enumerate(node.keys) if key in new
        ]
        out += [(None, k, v) for k, v in new.items() if k not in old_keys]
        return out
    old = node.values
    keyed = all(isinstance(x, dict) and "id" in x for x in old) and all(
        isinstance(x, dict) and "id" in x for x in new
    )
    if keyed:
        try:
            if [x["id"] for x in old] != [x["id"] for x in new]:
                by_id = {x["id"]: i for i, x in enumerate(old)}
                return [(by_id.get(x["id"]), None, x) for x in new]
        except TypeError:  # an id that cannot be a dict key: matched by position
            pass
    # equal items stay paired, so an item inserted or removed moves nothing else; an item
    # that changed is paired with the one at its place
    pairs: list[tuple[int | None, Any, Any]] = []
    i = j = 0
    while j < len(new):
        if i < len(old) and same(old[i], new[j]):
            pairs.append((i, None, new[j]))
        elif i + 1 < len(old) and same(old[i + 1], new[j]):  # old[i] was removed
            i += 1
            continue
        elif i < len(old) and j + 1 < len(new) and same(old[i], new[j + 1]):  # new[j] added
            pairs.append((None, None, new[j]))
            j += 1
            continue
        else:
            pairs.append((i if i < len(old) else None, None, new[j]))
        i += 1
        j += 1
    return pairs


class _Splicer:
    def __init__(self, text: str) -> None:
        self.text = text

    def document(self, root: _Node, data: dict[str, Any]) -> str:
        text = self.text
        if root.flow:
            return text[: root.start] + self.flow(root, data) + text[root.end :]
        start = _line_start(text, root.start)
        if not _blank(text[start : root.start]):
            raise Unsupported("a document that starts mid-line")
        end = _line_end(text, root.end)
        return text[:start] + self.block(root, data, start) + text[end:]

    # block collections: whole lines per entry

    def region_start(self, node: _Node, floor: int) -> int:
        """Where a block collection's text begins: its first line (for a list, with the
        comment lines just above it, down from ``floor``), or its first entry if that
        shares a line with a ``-`` or ``?`` before it."""
        text = self.text
        start = _line_start(text, node.start)
        if not _blank(text[start : node.start]):
            return node.start
        if node.kind == _SEQ:
            while start > floor:
                above = _line_start(text, start - 1)
                line = text[above : start - 1].strip(" \t\r")
                if above < floor or (line and not line.startswith("#")):
                    break
                start = above
        return start

    def bounds(self, node: _Node, col: int) -> tuple[list[int], list[int]]:
        """Each entry's start (its key, ``?`` or ``-``) and the end of its last line."""
        text = self.text
        starts: list[int] = []
        ends: list[int] = []
        last = -1
        is_map = node.kind == _MAP
        for i, (value_start, value_end) in enumerate(zip(node.vstarts, node.vends, strict=True)):
            if is_map:
                start = node.kstarts[i]
                p = start - 1
                while p >= 0 and text[p] in " \t":
                    p -= 1
                if p >= 0 and text[p] == "?":
                    start = p
                end = max(node.kends[i], value_end)
            else:
                start = node.start if i == 0 else _line_start(text, value_start) + col
                if text[start : start + 1] != "-" or not _blank(text[start + 1 : value_start]):
                    raise Unsupported("a list item that does not start on its '-' line")
                end = value_end
            if i == 0:
                if start != node.start:
                    raise Unsupported("an unexpected first entry")
            else:
                line = _line_start(text, start)
                if start - line != col or not _blank(text[line:start]) or line < last:
                    raise Unsupported("entries not aligned")
            last = _line_end(text, end)
            starts.append(start)
            ends.append(last)
        return starts, ends

    def block(self, node: _Node, new: Any, region: int) -> str:
        """The text replacing ``[region, end of the last entry's line)`` of a block
        collection, for its new value (a dict for a mapping, a list for a list)."""
        text = self.text
        first = node.start
        col = first - _line_start(text, first)
        inline = region == first and col > 0 and not _blank(text[first - col : first])
        starts, ends = self.bounds(node, col)
        out = _Out(text)
        pad = " " * col
        empty = True
        for i, key, value in _pairs(node, new):
            # the lead: blank and comment lines above the entry, and its indentation
            if empty and inline:
                pass  # glued to the "- " (or "? ") before it
            elif i is None or (i == 0 and inline):
                out.add(pad)
            else:
                out.copy(region if i == 0 else ends[i - 1], starts[i])
            if i is None:
                out.add(self.new_block_entry(node.kind, key, value, col))
            else:
                self.block_entry(out, node, i, key, value, starts[i], ends[i], col)
            empty = False
        if empty:
            closed = "{}" if node.kind == _MAP else "[]"
            return ("" if inline else pad) + closed + "\n"
        return out.value()

    def block_entry(
        self,
        out: _Out,
        node: _Node,
        i: int,
        key: Any,
        value: Any,
        start: int,
        end: int,
        col: int,
    ) -> None:
        text = self.text
        if same(node.values[i], value):
            out.copy(start, end)
            return
        kid = node.kids[i]
        value_start, value_end = node.vstarts[i], node.vends[i]
        if kid is not None and _kind(value) == kid.kind and (kid.flow or value):
            if kid.flow:
                out.copy(start, value_start)
                out.add(self.flow(kid, value))
                out.copy(value_end, end)
            else:
                head_end = node.kends[i] if node.kind == _MAP else start
                region = self.region_start(kid, _line_end(text, head_end))
                out.copy(start, region)
                out.add(self.block(kid, value, region))
            return
        block_value = kid is not None and not kid.flow
        if not block_value:
            piece = (
                _flow_value(value)
                if kid is not None and _kind(value) != _SCALAR
                else _inline_block(value)
            )
            if piece is not None:
                if value_start == value_end:  # an empty value: "key:" or "-"
                    piece = " " + piece
                elif text[value_end - 1] == "\n":
                    piece += "\n"  # a block scalar ended its line
                out.copy(start, value_start)
                out.add(piece)
                out.copy(value_end, end)
                return
        if block_value:  # the comment on the key's line, if any, stays
            rest = ""
            if node.kind == _MAP:
                after = text[node.kends[i] : _line_end(text, node.kends[i])].rstrip("\r\n")
                if after.lstrip(" \t").startswith(":"):
                    rest = after.lstrip(" \t")[1:]
                    rest = rest if rest.lstrip(" \t").startswith("#") else ""
        else:  # the comment after the value
            rest = text[value_end:end].rstrip("\r\n")
        if not rest.strip(" \t\r"):
            rest = ""
        elif not rest.lstrip(" \t").startswith("#"):
            raise Unsupported("text after a value on its line")
        lines = _block_piece({key: value} if node.kind == _MAP else [value])
        out.add(self.indented(lines, col, rest))

    def new_block_entry(self, kind: int, key: Any, value: Any, col: int) -> str:
        return self.indented(_block_piece({key: value} if kind == _MAP else [value]), col, "")

    @staticmethod
    def indented(lines: list[str], col: int, comment: str) -> str:
        """Emitted lines placed at column ``col`` (the first is already there), with the
        comment that ended the replaced entry's line after the first."""
        pad = " " * col
        head = lines[0] + comment + "\n"
        return head + "".join(pad + line + "\n" if line else "\n" for line in lines[1:])

    # flow collections: edited in place, on the lines they are on

    def flow(self, node: _Node, new: Any) -> str:
        """The text replacing ``[start, end)`` of a flow collection, for its new value."""
        text = self.text
        is_map = node.kind == _MAP
        starts: list[int] = []
        ends: list[int] = []
        for j, (value_start, value_end) in enumerate(zip(node.vstarts, node.vends, strict=True)):
            start = node.kstarts[j] if is_map else value_start
            mark = _question_mark(text, ends[-1] if ends else node.start + 1, start)
            starts.append(start if mark < 0 else mark)
            ends.append(max(node.kends[j], value_end) if is_map else value_end)
        if starts:
            head, tail = text[node.start : starts[0]], text[ends[-1] : node.end]
        else:
            head, tail = text[node.start : node.start + 1], text[node.start + 1 : node.end]
        seps = [text[ends[i] : starts[i + 1]] for i in range(len(starts) - 1)]
        usual = seps[-1] if seps and "#" not in seps[-1] else ", "
        pieces: list[tuple[int | None, str]] = []
        for i, key, value in _pairs(node, new):
            if i is None:
                pieces.append((None, _flow_entry(key, value) if is_map else _flow_value(value)))
                continue
            kid = node.kids[i]
            value_start, value_end = node.vstarts[i], node.vends[i]
            if same(node.values[i], value):
                piece = text[starts[i] : ends[i]]
            elif kid is not None and _kind(value) == kid.kind:
                piece = (
                    text[starts[i] : value_start]
                    + self.flow(kid, value)
                    + text[value_end : ends[i]]
                )
            elif value_start == value_end:  # an empty value ("{a: }", "{a}"): the entry anew
                piece = _flow_entry(key, value) if is_map else _flow_value(value)
            else:
                piece = (
                    text[starts[i] : value_start] + _flow_value(value) + text[value_end : ends[i]]
                )
            pieces.append((i, piece))
        if not pieces:
            return "{}" if is_map else "[]"
        out = [head, pieces[0][1]]
        for (a, _), (b, piece) in itertools.pairwise(pieces):
            out.append(seps[a] if a is not None and b == a + 1 else usual)
            out.append(piece)
        out.append(tail)
        return "".join(out)
