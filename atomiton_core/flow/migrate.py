"""``atomiton migrate``: rewrite a flow written for the original Atomiton into one that runs here.

What it changes, each change reported on a line of its own (:class:`Change`):

- **parameter names**: each node type's parameter model declares the original's names
  (``original_names``) and how its parameters become ours (``from_original``); the node's
  parameters go through that, and only the keys that changed are written back (a renamed key
  keeps its place and its comment);
- **JavaScript**: the original's functions (a transform's ``transformFunction``,
  ``filterCondition``, ``reduceFunction``) and conditions (a loop's ``condition``) become
  Jinja2 expressions when they are simple (``item => item.price * 2`` is
  ``item.price * 2``; see :func:`translate_function`); what is not simple is kept as it is
  (the optional package ``atomiton-lang-js`` runs it) and flagged. A ``code`` node whose
  code is JavaScript (the original's code node ran JavaScript, ours runs Python) becomes a
  ``javascript`` node;
- **what the original's transform never read**: ``inputType`` / ``outputType`` go; a
  JavaScript ``expression`` ``return data.filter(f)`` / ``data.map(f)`` becomes that
  operation with ``f`` (in Jinja2, else as its ``transformFunction``); a JavaScript ``code``
  (with ``inputParams``, ``returnType``, ``async``) makes the node a ``javascript`` node
  when the catalogue has that type. Other JavaScript the node type refuses is flagged;
- **spreadsheets**: one written for the original reads every CSV cell as text
  (``inferTypes: false``) and its edges from ``output`` come from ``records``, as the
  original's did;
- **node types the original renamed**: ``csv-reader`` is ``spreadsheet``,
  ``image-composite`` is ``image`` (when no installed plugin provides the old name);
- **loops and parallels**: the original wired a ``loop``'s ``item`` (and a ``parallel``'s
  ``output``) to the nodes that do the per-item work, side by side with it; here a container
  runs the nodes nested in it. The per-item nodes move into the container (see
  :meth:`_Migrator.nest` for which ones), the edges from it become edges from the container
  inside, and an edge from a moved node to one left outside becomes an output of the
  container (the list of that node's per-item values) feeding it.

Everything else is left as it was: comments, key order, quoting, the layout of every line
not changed (ruamel.yaml's round trip, with the original text's lines restored wherever the
emitter re-wrote unchanged values). A flow that needs no change comes back byte for byte.

The flow layer knows node types through :class:`~atomiton_core.flow.protocols.CatalogueLike`
only: the caller passes the catalogue (``create_conductor().catalogue``).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import io
import itertools
import json
import re
import warnings
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError, YAMLWarning
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from atomiton_core.errors import FlowLoadError
from atomiton_core.flow.javascript import (
    _SPACE,
    NotTranslated,
    Translation,
    _is_jinja,
    _Lexer,
    _short,
    _Token,
    translate_expression,
    translate_function,
)
from atomiton_core.flow.models import Flow, pydantic_message
from atomiton_core.flow.original import ORIGINAL_TYPES
from atomiton_core.flow.settings import RESERVED_PARAMETERS
from atomiton_core.flow.yaml_io import MAX_TEXT, dumps_flow, loads_flow, read_plain, to_plain
from atomiton_core.wire import CONFIG

if TYPE_CHECKING:
    from atomiton_core.flow.protocols import CatalogueLike, NodeTypeLike

__all__ = [
    "Change",
    "Migration",
    "NotTranslated",
    "Translation",
    "migrate",
    "translate_expression",
    "translate_function",
]

#: Node types the original renamed itself (its registry at 259a5052 lists ``csv-reader`` and
#: ``image-composite``; its later definitions are ``spreadsheet`` and ``image``).

#: The original's JavaScript functions, by node type: parameter -> (the operations that run
#: it, the names its arguments have here). Each becomes the type's Jinja2 ``expression``.
FUNCTIONS: Mapping[str, Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "transform": {
        "filterCondition": (("filter",), ("item", "index")),
        "transformFunction": (("map", "filter"), ("item", "index")),
        "reduceFunction": (("reduce",), ("acc", "item", "index")),
    },
}
#: The original's JavaScript conditions, by node type: parameter -> the names they read.
CONDITIONS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "loop": {"condition": ("iteration", "lastResult")},
}

#: Marks of JavaScript that neither a Jinja2 expression nor Python has (the same marks the
#: built-in nodes' validation looks for).
_JAVASCRIPT = re.compile(
    r"=>|===|!==|\$\{|^\s*//|\b(?:const|let|var|function)\s+[\w$]|;\s*$", re.MULTILINE
)


# -- the report ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One thing ``migrate`` changed, or kept as it was and flagged (``translated`` False)."""

    __pydantic_config__ = CONFIG

    #: renamed, translated, removed, retyped, nested, rewired, or kept
    action: str
    message: str
    node_id: str | None = None
    parameter: str | None = None
    edge_id: str | None = None
    #: The line of the original text it is about.
    line: int | None = None
    translated: bool = True

    def __str__(self) -> str:
        where = []
        if self.node_id is not None:
            where.append(f"node {self.node_id!r}")
        if self.edge_id is not None:
            where.append(f"edge {self.edge_id!r}")
        if self.parameter is not None:
            where.append(f"parameter {self.parameter!r}")
        at = f" (line {self.line})" if self.line is not None else ""
        verdict = "translated" if self.translated else "flagged   "
        return f"{verdict} {', '.join(where) or 'flow'}{at}: {self.message}"


@dataclass(frozen=True, slots=True)
class Migration:
    """What :func:`migrate` made of a flow: the new text and every change, by the line of
    the original text it is about."""

    text: str
    original: str
    changes: tuple[Change, ...] = ()
    source: str | None = None

    @property
    def changed(self) -> bool:
        return self.text != self.original

    @property
    def flagged(self) -> tuple[Change, ...]:
        """What was kept as it was: it needs a look (or atomiton-lang-js) to run here."""
        return tuple(c for c in self.changes if not c.translated)

    @property
    def ok(self) -> bool:
        """Everything it found was translated."""
        return not self.flagged

    def report(self) -> str:
        """One line per change."""
        return "\n".join(str(c) for c in self.changes)

    def flow(self) -> Flow:
        """The migrated flow, loaded."""
        return loads_flow(self.text, source=self.source)


# -- the document ---------------------------------------------------------------------------


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) of the text's block style, so that the
    lines ruamel writes anew look like those around them (``nodes:`` then ``  - id:``)."""
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    for line, nxt in itertools.pairwise(lines):
        if not re.match(r"^\s*[^\s#-][^#]*:\s*$", line):
            continue
        own = len(line) - len(line.lstrip())
        inner = len(nxt) - len(nxt.lstrip())
        if inner <= own and not nxt.lstrip().startswith("- "):
            continue
        if nxt.lstrip().startswith("- "):
            if sequence is None and inner >= own:
                offset = inner - own
                sequence = (offset + 2, offset)
        elif mapping is None:
            mapping = inner - own
        if mapping is not None and sequence is not None:
            break
    seq, offset = sequence or (4, 2)
    return mapping or 2, max(seq, offset + 2), offset


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    mapping, sequence, offset = _guess_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.width = 4096
    return yaml


def _load(yaml: YAML, text: str, where: str, source: str | None) -> Any:
    if len(text) > MAX_TEXT:
        raise FlowLoadError(
            f"{where}: {len(text):,} characters, over the limit of {MAX_TEXT:,} for a flow file",
            source=source,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", YAMLWarning)
            return yaml.load(text)
    except YAMLError as exc:
        raise FlowLoadError.from_yaml(where, exc) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise FlowLoadError(f"{where}: cannot be read: {exc}", source=source) from None


def _dump(yaml: YAML, document: Any) -> str:
    buf = io.StringIO()
    yaml.dump(document, buf)
    return buf.getvalue()


_MARKERS = re.compile(r"^(?:---|\.\.\.|%.*)\s*$")


def _restore(original: str, after: str) -> str:
    """``after`` (ruamel's text of the edited document), with each run of its lines that says
    what the original's lines there said, in other words (a value ruamel wrote on one line
    that the original wrapped onto the next), as the original wrote it; and the document
    markers (``---``, ``...``) ruamel leaves out."""
    orig = original.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    head: list[str] = []
    tail: list[str] = []
    while orig and _MARKERS.match(orig[0]) and not (new and new[0] == orig[0]):
        head.append(orig.pop(0))
    while orig and orig[-1].strip() == "..." and not (new and new[-1] == orig[-1]):
        tail.insert(0, orig.pop())
    pieces = head
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, orig, new).get_opcodes():
        if tag == "replace" and _same_block(orig[i1:i2], new[j1:j2]):
            pieces.extend(orig[i1:i2])
        else:
            pieces.extend(new[j1:j2])
    return "".join(pieces + tail)


def _same_block(old: list[str], new: list[str]) -> bool:
    """Whether two runs of lines at the same indentation write the same data."""

    def indent(lines: list[str]) -> int:
        return min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)

    depth = indent(old)
    if depth != indent(new):
        return False
    try:
        a = read_plain("".join(ln[depth:] for ln in old))
        b = read_plain("".join(ln[depth:] for ln in new))
    except FlowLoadError:
        return False
    return a is not None and json.dumps(a, default=repr) == json.dumps(b, default=repr)


def _plain(value: Any) -> Any:
    return to_plain(value, checked=True)


def _like(old: Any, new: Any) -> Any:
    """``new`` written in the quoting style of the value it replaces."""
    if isinstance(new, str) and isinstance(
        old, DoubleQuotedScalarString | SingleQuotedScalarString
    ):
        return type(old)(new)
    return new


def _line(holder: Any, key: Any = None) -> int | None:
    lc = getattr(holder, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        return int(lc.key(key)[0] + 1) if isinstance(holder, dict) else int(lc.item(key)[0] + 1)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _rename_key(mapping: Any, old: str, new: str, value: Any) -> None:
    """Give ``old`` the name ``new`` (and ``value``) in place: same position, and the same
    comment as far after the value as it was."""
    position = list(mapping).index(old)
    before = mapping[old]
    comment = mapping.ca.items.pop(old, None)
    del mapping[old]
    mapping.insert(position, new, value)
    if comment is None:
        return
    mapping.ca.items[new] = comment
    mark = getattr(comment[2], "start_mark", None) if len(comment) > 2 else None
    if mark is not None and not isinstance(value, dict | list):
        with contextlib.suppress(AttributeError, TypeError):  # else ruamel places it
            mark.column += len(new) - len(old) + len(str(value)) - len(str(before))


def _insert_after(mapping: Any, after: Sequence[str], key: str, value: Any) -> None:
    """Set ``key``: where it is, else just after the first of ``after`` there, else last."""
    if key in mapping:
        mapping[key] = _like(mapping[key], value)
        return
    keys = list(mapping)
    for anchor in after:
        if anchor in mapping:
            mapping.insert(keys.index(anchor) + 1, key, value)
            return
    mapping[key] = value


def _shift_comments(node: Any, delta: int) -> None:
    """Indent the comments of a subtree moved ``delta`` columns deeper as its lines are."""
    stack = [node]
    while stack:
        item = stack.pop()
        ca = getattr(item, "ca", None)
        if ca is not None:
            tokens: list[Any] = []
            pending = [*ca.items.values(), ca.comment, getattr(ca, "end", None)]
            while pending:
                entry = pending.pop()
                if isinstance(entry, list):
                    pending.extend(entry)
                elif entry is not None and hasattr(entry, "start_mark"):
                    tokens.append(entry)
            for token in tokens:
                first, *rest = token.value.split("\n")
                moved = [" " * delta + ln if ln.lstrip().startswith("#") else ln for ln in rest]
                token.value = "\n".join([first, *moved])
                if first.startswith("#") and token.start_mark is not None:
                    token.start_mark.column += delta
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _flow_text(mapping: Any) -> str:
    """How a mapping in flow style ({a: 1}) is written, to measure it."""
    bare = CommentedMap(mapping.items())  # without the comment after it
    bare.fa.set_flow_style()
    buf = io.StringIO()
    YAML(typ="rt").dump(bare, buf)
    return buf.getvalue().strip()


def _shown(value: Any) -> str:
    """A value as a flow file writes it: true, "text", [1, 2]."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


# -- the migration --------------------------------------------------------------------------


def migrate(flow: str | Flow, catalogue: CatalogueLike, *, source: str | None = None) -> Migration:
    """Rewrite ``flow`` (its text, or a loaded :class:`~atomiton_core.Flow`) written for the
    original Atomiton into one that runs here, against the node types of ``catalogue``.

    Raises :class:`~atomiton_core.errors.FlowLoadError` for text that is not a flow.
    """
    if isinstance(flow, str):
        text = flow
    else:
        text = dumps_flow(flow)
        source = source or flow.source
    where = source or "<string>"
    yaml = _yaml(text)
    document = _load(yaml, text, where, source)
    if not isinstance(document, dict):
        raise FlowLoadError(f"{where}: not a flow (a mapping with nodes and edges)", source=source)
    to_plain(document, where)  # within the document budget, before anything walks it
    migrator = _Migrator(catalogue, _guess_indent(text)[1])
    migrator.level(document)
    migrator.restructure(document)
    changes = tuple(sorted(migrator.changes, key=lambda c: c.line or 0))
    if not migrator.edited:
        return Migration(text, text, changes, source)
    after = _dump(yaml, document)
    result = _restore(text, after)
    if result != after:  # the restored text must read as the edited document
        try:
            same = read_plain(result) == _plain(document)
        except FlowLoadError:
            same = False
        if not same:
            result = after
    return Migration(result, text, changes, source)


@dataclass(slots=True)
class _Level:
    """The nodes and edges of one flow or container (``holder``)."""

    holder: Any
    nodes: list[Any] = field(default_factory=list)
    edges: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, holder: Any) -> _Level:
        nodes = holder.get("nodes")
        edges = holder.get("edges")
        return cls(
            holder,
            [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else [],
            [e for e in edges if isinstance(e, dict)] if isinstance(edges, list) else [],
        )

    def ids(self) -> dict[str, Any]:
        return {str(n["id"]): n for n in self.nodes if _text(n.get("id")) is not None}


def _source_handle(edge: Any) -> str:
    return str(edge.get("sourceHandle") or "output")


def _target_handle(edge: Any) -> str:
    return str(edge.get("targetHandle") or "input")


class _Migrator:
    def __init__(self, catalogue: CatalogueLike, indent: int) -> None:
        self.catalogue = catalogue
        #: How much deeper a node moved into a container is (the sequence indent).
        self.indent = indent
        self.changes: list[Change] = []
        self.edited = False

    def change(self, action: str, message: str, **where: Any) -> None:
        translated = where.pop("translated", True)
        self.changes.append(Change(action, message, translated=translated, **where))

    def kept(self, message: str, **where: Any) -> None:
        self.change("kept", message, translated=False, **where)

    # nodes ---------------------------------------------------------------------------------

    def level(self, holder: Any) -> None:
        """Every node of the flow, children included: types, parameters, JavaScript."""
        here = _Level.of(holder)
        for node in here.nodes:
            self.node(node, here)
            if isinstance(node.get("nodes"), list):
                self.level(node)

    def node(self, node: Any, here: _Level) -> None:
        node_id = _text(node.get("id"))
        type_id = node.get("type")
        if node_id is None or not isinstance(type_id, str):
            return
        type_id = self.retype(node, node_id, type_id, here)
        nt = self.catalogue.get(type_id)
        params = node.get("parameters")
        if nt is None or not isinstance(params, CommentedMap):
            return
        # a comment after parameters written on one line ({a: 1}) stays as far after them
        comment = node.ca.items.get("parameters") if params.fa.flow_style() else None
        mark = getattr(comment[2], "start_mark", None) if comment and len(comment) > 2 else None
        width = len(_flow_text(params)) if mark is not None else 0
        handled: set[str] = set()
        if type_id == "transform":
            handled = self.never_read(node_id, params)
            type_id = self.snippet(node, node_id, params, here)
            nt = self.catalogue.get(type_id) or nt
        names: Mapping[str, str] = getattr(nt.params, "original_names", None) or {}
        written_for_the_original = not params.keys().isdisjoint(names)
        self.rename(node_id, nt, params)
        if type_id == "spreadsheet" and written_for_the_original:
            self.spreadsheet(node_id, params, here)
        handled |= self.functions(node_id, type_id, params, handled)
        handled |= self.conditions(node_id, type_id, params)
        self.javascript_left(node_id, nt, params, handled)
        if mark is not None:
            mark.column = max(mark.column + len(_flow_text(params)) - width, 0)

    def retype(self, node: Any, node_id: str, type_id: str, here: _Level) -> str:
        """The original's renamed node types, and its JavaScript code node."""
        new = ORIGINAL_TYPES.get(type_id)
        if new is not None and self.catalogue.get(type_id) is None:
            node["type"] = _like(node["type"], new)
            self.edited = True
            self.change(
                "retyped",
                f"type {type_id!r} -> {new!r} (the original's later name for it)",
                node_id=node_id,
                line=_line(node, "type"),
            )
            self.check_ports(node_id, new, here)
            return new
        code = (node.get("parameters") or {}).get("code") if type_id == "code" else None
        nt = self.catalogue.get("code") if isinstance(code, str) else None
        if nt is not None and isinstance(code, str) and _JAVASCRIPT.search(code):
            try:
                nt.params.model_validate({"code": code})
            except ValueError:
                node["type"] = _like(node["type"], "javascript")
                self.edited = True
                hint = (
                    ""
                    if self.catalogue.get("javascript")
                    else f" ({self.catalogue.missing_hint('javascript')})"
                )
                self.change(
                    "retyped",
                    "type 'code' -> 'javascript': its code is JavaScript, which the "
                    f"original's code node ran (ours runs Python){hint}",
                    node_id=node_id,
                    line=_line(node, "type"),
                )
                self.check_ports(node_id, "javascript", here)
                return "javascript"
        return type_id

    def check_ports(self, node_id: str, type_id: str, here: _Level) -> None:
        """Flag the edges of a retyped node that name a port its new type lacks."""
        nt = self.catalogue.get(type_id)
        if nt is None:
            return
        for edge in here.edges:
            for end, handle, ports, dynamic in (
                ("source", _source_handle(edge), nt.outputs, nt.dynamic_outputs),
                ("target", _target_handle(edge), nt.inputs, nt.dynamic_inputs),
            ):
                if _text(edge.get(end)) == node_id and handle not in ports and not dynamic:
                    self.kept(
                        f"{end} port {handle!r} of {node_id!r}: type {type_id!r} has no such "
                        f"port (its {'outputs' if end == 'source' else 'inputs'}: "
                        f"{', '.join(ports) or 'none'}); wire it to one of those",
                        edge_id=_text(edge.get("id")),
                        line=_line(edge),
                    )

    def rename(self, node_id: str, nt: NodeTypeLike, params: Any) -> None:
        """The type's ``from_original`` on a copy; the keys that changed are written back."""
        model = nt.params
        names: Mapping[str, str] = getattr(model, "original_names", None) or {}
        convert = getattr(model, "from_original", None)
        if not names or convert is None or params.keys().isdisjoint(names):
            return
        old = {k: v for k, v in _plain(params).items() if k not in RESERVED_PARAMETERS}
        try:
            new = convert(copy.deepcopy(old))
        except ValueError as exc:
            self.kept(str(exc), node_id=node_id, line=_line(params))
            return
        if not isinstance(new, dict) or new == old:
            return
        self.edited = True
        added = [k for k in new if k not in old]
        removed: list[str] = []
        for key in [k for k in old if k not in new]:
            target = names.get(key)
            line = _line(params, key)
            if target is not None and target in added:
                added.remove(target)
                same = new[target] == old[key]
                _rename_key(
                    params, key, target, params[key] if same else _like(params[key], new[target])
                )
                shown = "" if same else f" ({_short(_shown(old[key]))} -> "
                shown += "" if same else f"{_short(_shown(new[target]))})"
                self.change(
                    "renamed", f"-> {target!r}{shown}", node_id=node_id, parameter=key, line=line
                )
            else:
                removed.append(key)
        for key in [k for k in old if k in new and new[k] != old[k]]:
            params[key] = _like(params[key], new[key])
            self.change(
                "renamed",
                f"{_short(_shown(old[key]))} -> {_short(_shown(new[key]))} (what the original's "
                "parameters mean here)",
                node_id=node_id,
                parameter=key,
                line=_line(params, key),
            )
        for key in added:
            _insert_after(params, removed[:1], key, new[key])
            self.change(
                "renamed",
                f"set to {_short(_shown(new[key]))} (from the original's "
                f"{', '.join(repr(k) for k in removed) or 'parameters'})",
                node_id=node_id,
                parameter=key,
                line=_line(params),
            )
        for key in removed:
            line = _line(params, key)
            del params[key]
            self.change(
                "removed",
                "removed: the original did not read it here",
                node_id=node_id,
                parameter=key,
                line=line,
            )

    def never_read(self, node_id: str, params: Any) -> set[str]:
        """What the original's flows put on a transform and its transform never read:
        ``inputType`` / ``outputType`` go; a JavaScript ``data.filter(f)`` / ``data.map(f)``
        in ``expression`` (which it never read either) becomes that operation with ``f``, in
        Jinja2 where :func:`translate_function` can, else as its ``transformFunction``. The
        parameters handled (and reported)."""
        for key in _NEVER_READ:
            if key in params:
                line = _line(params, key)
                del params[key]
                self.edited = True
                self.change(
                    "removed",
                    "removed: the original's transform never read it (it did nothing)",
                    node_id=node_id,
                    parameter=key,
                    line=line,
                )
        code = params.get("expression")
        if not isinstance(code, str) or _is_jinja(code):
            return set()
        call = _collection_call(code)
        given = params.get("operation")
        if (
            call is None
            or (given is not None and given != call[0])
            or any(k in params for k in FUNCTIONS["transform"])
        ):
            return set()  # javascript_left flags it, as the transform refuses it
        operation, function = call
        line = _line(params, "expression")
        self.edited = True
        if given is None:
            where = list(params).index("expression")
            params.insert(where, "operation", _like(params["expression"], operation))
        try:
            done = translate_function(function, FUNCTIONS["transform"]["transformFunction"][1])
        except NotTranslated as exc:
            _rename_key(
                params, "expression", "transformFunction", _like(params["expression"], function)
            )
            self.kept(
                f"JavaScript {_short(code)} -> operation: {operation}, transformFunction: "
                f"{_short(function)}; kept as JavaScript ({exc}): it runs with "
                "atomiton-lang-js, or write it as a Jinja2 'expression'",
                node_id=node_id,
                parameter="expression",
                line=line,
            )
            return {"transformFunction"}
        params["expression"] = _like(params["expression"], done.expression)
        self.change(
            "translated",
            f"JavaScript {_short(code)} -> operation: {operation}, expression: "
            f"{done.expression} (the original's transform never read it: it passed the list "
            "through)" + _notes(done),
            node_id=node_id,
            parameter="expression",
            line=line,
        )
        return {"expression"}

    def snippet(self, node: Any, node_id: str, params: Any, here: _Level) -> str:
        """A transform holding a JavaScript ``code`` (the original's code node's
        parameters, which its transform never read) -> a ``javascript`` node running it,
        when the catalogue has that type and the node has nothing else for a transform to
        do; its type."""
        js = self.catalogue.get("javascript")
        given = {k: v for k, v in _plain(params).items() if k not in RESERVED_PARAMETERS}
        if js is None or not isinstance(given.get("code"), str) or not set(given) <= _SNIPPET:
            return "transform"
        try:
            js.params.model_validate(given)
        except ValueError:
            return "transform"  # javascript_left says what the transform refuses
        node["type"] = _like(node["type"], "javascript")
        self.edited = True
        self.change(
            "retyped",
            "type 'transform' -> 'javascript': the original's transform never read its "
            "JavaScript 'code' (it passed the list through); a javascript node runs it as "
            "written, with its inputParams, returnType and async (it needs the "
            "atomiton-lang-js package)",
            node_id=node_id,
            parameter="code",
            line=_line(node, "type"),
        )
        self.check_ports(node_id, "javascript", here)
        return "javascript"

    def spreadsheet(self, node_id: str, params: Any, here: _Level) -> None:
        """A spreadsheet written for the original reads as it did: its CSV reader gave every
        cell as text (``executables/spreadsheet/csvParser.ts``, 245a57bf), and its records
        came out on ``records`` (``definitions/spreadsheet/index.ts``, bfae3ce6: it had no
        ``output`` port, which here is the whole result)."""
        if params.get("operation", "read") != "read":
            return
        if "inferTypes" not in params:
            params["inferTypes"] = False
            self.edited = True
            self.change(
                "translated",
                "set to false: the original's CSV reader gave every cell as text (its "
                "flows compare with 'true' and parseFloat)",
                node_id=node_id,
                parameter="inferTypes",
                line=_line(params),
            )
        for edge in here.edges:
            if _text(edge.get("source")) == node_id and _source_handle(edge) == "output":
                line = _line(edge, "sourceHandle") or _line(edge)
                edge["sourceHandle"] = _like(edge.get("sourceHandle"), "records")
                self.edited = True
                self.change(
                    "rewired",
                    "sourceHandle 'output' -> 'records': the original's spreadsheet had no "
                    "'output' port (here it is the whole result); its records were 'records'",
                    edge_id=_text(edge.get("id")),
                    node_id=node_id,
                    line=line,
                )

    def functions(
        self, node_id: str, type_id: str, params: Any, reported: Iterable[str] = ()
    ) -> set[str]:
        """The original's JavaScript functions -> the type's Jinja2 ``expression`` (but
        those ``reported`` already)."""
        spec = FUNCTIONS.get(type_id)
        if not spec:
            return set()
        operation = params.get("operation", "map")
        reads = [name for name, (ops, _) in spec.items() if operation in ops]
        active = next((n for n in reads if isinstance(params.get(n), str)), None)
        if active is None or active in reported:
            return set()
        code = str(params[active])
        line = _line(params, active)
        if params.get("expression") is not None:
            self.kept(
                "kept: the node gives both this function and an 'expression'; give one",
                node_id=node_id,
                parameter=active,
                line=line,
            )
            return {active}
        try:
            done = translate_function(code, spec[active][1])
        except NotTranslated as exc:
            self.kept(
                f"kept as JavaScript ({exc}): it runs with atomiton-lang-js, or write it as "
                "a Jinja2 'expression'",
                node_id=node_id,
                parameter=active,
                line=line,
            )
            return {active}
        self.edited = True
        _rename_key(params, active, "expression", _like(params[active], done.expression))
        self.change(
            "translated",
            f"JavaScript {_short(code)} -> expression: {done.expression}" + _notes(done),
            node_id=node_id,
            parameter=active,
            line=line,
        )
        for other in reads:  # those the operation ignored, as the original did
            if other != active and other in params:
                line = _line(params, other)
                del params[other]
                self.change(
                    "removed",
                    f"removed: {operation} ran {active!r}, not this one",
                    node_id=node_id,
                    parameter=other,
                    line=line,
                )
        return {active}

    def conditions(self, node_id: str, type_id: str, params: Any) -> set[str]:
        """The original's JavaScript conditions -> Jinja2, where they are not Jinja2 already."""
        handled: set[str] = set()
        for name, names in CONDITIONS.get(type_id, {}).items():
            code = params.get(name)
            if not isinstance(code, str) or _is_jinja(code):
                continue
            handled.add(name)
            line = _line(params, name)
            try:
                done = translate_expression(code, names)
            except NotTranslated as exc:
                self.kept(
                    f"kept as JavaScript ({exc}): write it as a Jinja2 expression",
                    node_id=node_id,
                    parameter=name,
                    line=line,
                )
                continue
            self.edited = True
            params[name] = _like(params[name], done.expression)
            self.change(
                "translated",
                f"JavaScript {_short(code)} -> {done.expression}" + _notes(done),
                node_id=node_id,
                parameter=name,
                line=line,
            )
        return handled

    def javascript_left(
        self, node_id: str, nt: NodeTypeLike, params: Any, handled: set[str]
    ) -> None:
        """Flag JavaScript the node type refuses (a transform's ``expression``, ``code``)."""
        suspects = [
            k
            for k, v in params.items()
            if isinstance(v, str) and k not in handled and _JAVASCRIPT.search(v)
        ]
        if not suspects:
            return
        given = {k: v for k, v in _plain(params).items() if k not in RESERVED_PARAMETERS}
        refused: dict[str, str] = {}
        try:
            nt.params.model_validate(given)
        except ValueError as exc:
            for err in getattr(exc, "errors", list)():
                loc = err.get("loc") or ()
                if loc and isinstance(loc[0], str):
                    refused.setdefault(loc[0], pydantic_message(err))
        for key in suspects:
            if key in refused:
                message = f"kept as JavaScript: {refused[key]}"
                suggestion = _suggest(str(params[key]))
                if suggestion and suggestion.partition("expression: ")[2] not in message:
                    message += f" (a Jinja2 version: {suggestion})"
                self.kept(message, node_id=node_id, parameter=key, line=_line(params, key))

    # loops and parallels -------------------------------------------------------------------

    def restructure(self, holder: Any) -> None:
        """Nest the per-item work of each container at this level, upstream first, then do
        the same inside every container.

        The level is indexed once: a node in the per-item work of a container is not
        another's (its inputs would come from two), and a container inside another's is
        nested with it and handled at the level it moves to.
        """
        here = _Level.of(holder)
        graph = _Graph(here)
        claimed: set[str] = set()
        gone: set[int] = set()
        for node_id in graph.upstream_first():
            node = graph.nodes[node_id]
            if node_id in claimed:
                continue
            moved = self.nest(graph, node_id, node)
            claimed |= moved
            gone.update(id(graph.nodes[n]) for n in moved)
        if gone:
            _drop(holder["nodes"], gone)
            _drop(holder["edges"], graph.moved_edges)
        for node in _Level.of(holder).nodes:
            if isinstance(node.get("nodes"), list):
                self.restructure(node)
                self.fold(node)

    def fold(self, loop: Any) -> None:
        """A loop whose only per-item work is a parallel it feeds each item: the original
        ran each item through the parallel's nodes, several items at once (a loop feeding a
        parallel was how it said "process the items concurrently"). Here the parallel would
        run once per item over that one item's fields: its nodes move into the loop, which
        takes the parallel's concurrency (the original's default 5)."""
        if _text(loop.get("type")) != "loop":
            return
        lid = _text(loop.get("id"))
        here = _Level.of(loop)
        if len(here.nodes) != 1 or _text(here.nodes[0].get("type")) != "parallel":
            return
        par = here.nodes[0]
        pid = _text(par.get("id"))
        inner = _Level.of(par)
        if (
            len(here.edges) != 1
            or _text(here.edges[0].get("source")) != lid
            or _source_handle(here.edges[0]) != "item"
            or _text(here.edges[0].get("target")) != pid
            or not inner.nodes
            or any(_text(e.get("target")) == pid for e in inner.edges)
            or any(
                _text(e.get("source")) == pid and _source_handle(e) != "item" for e in inner.edges
            )
        ):
            return
        self.edited = True
        settings = par.get("parameters") if isinstance(par.get("parameters"), dict) else {}
        concurrency = settings.get("concurrency", 5)
        for n in inner.nodes:
            _shift_comments(n, -self.indent)
        for e in inner.edges:
            _shift_comments(e, -self.indent)
            if _text(e.get("source")) == pid:
                e["source"] = _like(e["source"], lid)
        loop["nodes"] = CommentedSeq(inner.nodes)
        loop["edges"] = CommentedSeq(inner.edges)
        params = loop.get("parameters")
        if not isinstance(params, dict):
            _insert_after(loop, ("type", "name"), "parameters", CommentedMap())
            params = loop["parameters"]
        _insert_after(params, (), "concurrency", concurrency)
        types = {_text(n.get("id")): _text(n.get("type")) for n in inner.nodes}
        for n in inner.nodes:
            self.per_item_file(n, lid)
        for e in inner.edges:
            target = _text(e.get("target"))
            if (
                types.get(_text(e.get("source"))) == "image"
                and types.get(target) == "file-system"
                and _source_handle(e) == "output"
            ):
                _insert_after(
                    e, ("source",), "sourceHandle", _like(e.get("sourceHandle"), "result")
                )
                self.change(
                    "rewired",
                    "sourceHandle 'output' -> 'result': the file-system node writes the image "
                    "itself (an image node's 'output' is its record: the image, its size, its "
                    "format)",
                    edge_id=_text(e.get("id")),
                    line=_line(e),
                )
        names = ", ".join(repr(_text(n.get("id"))) for n in inner.nodes)
        dropped = sorted(k for k in settings if k != "concurrency")
        self.change(
            "folded",
            f"parallel {pid!r} ran each item of loop {lid!r} through its nodes: they are the "
            f"loop's nodes now ({names}), the loop runs {concurrency} items at once"
            + (
                f"; the parallel's {', '.join(dropped)} no longer apply (a loop keeps the "
                "items' order; put a per-item timeout on its nodes)"
                if dropped
                else ""
            ),
            node_id=pid,
            line=_line(par),
        )

    def per_item_file(self, node: Any, lid: str | None) -> None:
        """A file-system write run once per item of a loop, to a folder (a path whose last
        part has no extension, ``/images/output``): the original's flows meant one file per
        item there; each item's file takes the item's name (a file entry's ``name``)."""
        params = node.get("parameters")
        if _text(node.get("type")) != "file-system" or not isinstance(params, dict):
            return
        path = params.get("path")
        if params.get("operation") != "write" or not isinstance(path, str) or "{{" in path:
            return
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if not last or "." in last:
            return
        line = _line(params, "path") or _line(params) or _line(node)
        params["path"] = _like(path, path.rstrip("/") + "/{{ item.name }}")
        self.change(
            "per item",
            f"path {path!r} -> {params['path']!r}: written once per item of loop {lid!r}, "
            "to a folder; each item's file takes its name (the content's format is what the "
            "nodes before it made)",
            node_id=_text(node.get("id")),
            parameter="path",
            line=line,
        )

    def nest(self, graph: _Graph, cid: str, container: Any) -> set[str]:
        """Move the nodes that do a container's per-item work into it; their ids.

        The per-item edges are those from the container whose port is one it offers its
        children (``item``, ``index``...) or ``output`` (the original's generic port, which
        the container does not output here). The nodes they feed, and every node downstream
        of those, are the per-item work, except a node that also takes an input from a node
        that is not (it runs once, after the container: it gets the container's list of the
        per-item values) and, in turn, the nodes downstream of it.
        """
        type_id = container.get("type")
        nt = self.catalogue.get(type_id) if isinstance(type_id, str) else None
        if nt is None or not nt.container or nt.child_sources is None:
            return set()
        inner = container.get("edges")
        produced = {
            _target_handle(e)
            for e in (inner if isinstance(inner, list) else [])
            if isinstance(e, dict) and _text(e.get("target")) == cid
        }
        ports = (set(nt.child_sources) | {"output"}) - set(nt.outputs) - produced
        per_item = [
            e
            for e in graph.outgoing.get(cid, [])
            if _source_handle(e) in ports and graph.target(e) in graph.nodes
        ]
        if not per_item:
            return set()
        feeds = {id(e) for e in per_item}
        chain: set[str] = set()
        stack = [graph.target(e) for e in per_item]
        while stack:
            n = stack.pop()
            if n in chain or n == cid or n not in graph.nodes:
                continue
            chain.add(n)
            stack.extend(graph.target(e) for e in graph.outgoing.get(n, []))

        def fed_from_outside(n: str) -> Any:
            return next(
                (
                    e
                    for e in graph.incoming.get(n, [])
                    if graph.source(e) not in chain and id(e) not in feeds
                ),
                None,
            )

        shrinking = True
        while shrinking:
            outside = {n for n in chain if fed_from_outside(n) is not None}
            chain -= outside
            shrinking = bool(outside)
        kind = str(type_id)
        back = next(
            (e for n in chain for e in graph.outgoing.get(n, []) if graph.target(e) == cid), None
        )
        if back is not None:
            self.kept(
                f"not nested: node {graph.source(back)!r} of its per-item work feeds the "
                f"{kind} itself; nest the per-item nodes by hand",
                node_id=cid,
                line=_line(container),
            )
            return set()
        for e in per_item:
            target = graph.target(e)
            if target not in chain:
                self.kept(
                    f"{kind} {cid!r} feeds {target!r} per item, but {target!r} also takes "
                    f"an input from {graph.source(fed_from_outside(target))!r}, which runs "
                    f"once: move {target!r} into the {kind}'s nodes by hand (with what it "
                    "needs)",
                    edge_id=_text(e.get("id")),
                    line=_line(e),
                )
        if chain:
            self.move(
                graph, cid, container, nt, chain, [e for e in per_item if graph.target(e) in chain]
            )
        return chain

    def move(
        self,
        graph: _Graph,
        cid: str,
        container: Any,
        nt: NodeTypeLike,
        chain: set[str],
        per_item: list[Any],
    ) -> None:
        self.edited = True
        kind = nt.id
        moved = [graph.nodes[n] for n in sorted(chain, key=graph.rank.__getitem__)]
        inside: list[Any] = []
        collected: dict[tuple[str, str], str] = {}
        taken = {
            *nt.outputs,
            *(_target_handle(e) for e in (container.get("edges") or []) if isinstance(e, dict)),
        }
        rewired: list[Change] = []
        for e in per_item:
            if _source_handle(e) == "output":
                _insert_after(e, ("source",), "sourceHandle", _like(e.get("sourceHandle"), "item"))
                rewired.append(
                    Change(
                        "rewired",
                        f"sourceHandle 'output' -> 'item': inside {kind} {cid!r}, the value "
                        "of each item",
                        edge_id=_text(e.get("id")),
                        line=_line(e),
                    )
                )
        inside.extend(per_item)
        leaving = [e for n in chain for e in graph.outgoing.get(n, [])]
        for e in sorted(leaving, key=lambda e: graph.edge_rank[id(e)]):
            s, t = graph.source(e), graph.target(e)
            if t in chain:
                inside.append(e)
                continue
            key = (s, _source_handle(e))
            port = collected.get(key)
            if port is None:
                port = collected[key] = _port_name(key, taken)
                taken.add(port)
                inside.append(self.collect_edge(e, graph, cid, key, port))
            e["source"] = _like(e["source"], cid)
            _insert_after(e, ("source",), "sourceHandle", _like(e.get("sourceHandle"), port))
            rewired.append(
                Change(
                    "rewired",
                    f"now from output {port!r} of {kind} {cid!r}: the list of what {s!r} "
                    f"gives on {key[1]!r} per item (the original wired {s!r} to {t!r} "
                    "directly)",
                    edge_id=_text(e.get("id")),
                    line=_line(e),
                )
            )
        names = ", ".join(repr(_text(n.get("id"))) for n in moved)
        self.change(
            "nested",
            f"moved {len(moved)} node(s) that did its per-item work into its nodes: {names}",
            node_id=cid,
            line=_line(container),
        )
        self.changes.extend(rewired)
        graph.moved_edges.update(id(e) for e in inside)
        children = container.get("nodes")
        if not isinstance(children, list):
            _insert_after(
                container, ("parameters", "version", "name", "type"), "nodes", CommentedSeq()
            )
            children = container["nodes"]
        for n in moved:
            _shift_comments(n, self.indent)
        children.extend(moved)
        wires = container.get("edges")
        if not isinstance(wires, list):
            _insert_after(container, ("nodes",), "edges", CommentedSeq())
            wires = container["edges"]
        for e in inside:
            _shift_comments(e, self.indent)
        wires.extend(inside)

    @staticmethod
    def collect_edge(like: Any, graph: _Graph, cid: str, key: tuple[str, str], port: str) -> Any:
        """The edge inside a container that makes ``port`` the list of what ``key`` gives."""
        edge = CommentedMap()
        if _text(like.get("id")) is not None:
            edge["id"] = f"{like['id']}-collect"
        edge["source"] = key[0]
        edge["sourceHandle"] = key[1]
        edge["target"] = cid
        edge["targetHandle"] = port
        if graph.flow_style:
            edge.fa.set_flow_style()
        return edge


class _Graph:
    """One level's nodes and edges, indexed by node id."""

    def __init__(self, here: _Level) -> None:
        self.nodes: dict[str, Any] = {}
        for n in here.nodes:
            node_id = _text(n.get("id"))
            if node_id is not None and node_id not in self.nodes:
                self.nodes[node_id] = n
        self.order = list(self.nodes)
        self.rank = {n: i for i, n in enumerate(self.order)}
        self.edges = here.edges
        self.edge_rank = {id(e): i for i, e in enumerate(self.edges)}
        self.ends: dict[int, tuple[str | None, str | None]] = {}
        self.outgoing: dict[str, list[Any]] = {}
        self.incoming: dict[str, list[Any]] = {}
        for e in self.edges:
            s, t = _text(e.get("source")), _text(e.get("target"))
            self.ends[id(e)] = (s, t)
            if s is not None:
                self.outgoing.setdefault(s, []).append(e)
            if t is not None:
                self.incoming.setdefault(t, []).append(e)
        #: Edges moved into a container (by ``id()``), to drop from the level.
        self.moved_edges: set[int] = set()
        first = self.edges[0] if self.edges else None
        self.flow_style = bool(getattr(getattr(first, "fa", None), "flow_style", bool)())

    def source(self, edge: Any) -> str:
        return str(self.ends[id(edge)][0])

    def target(self, edge: Any) -> str:
        return str(self.ends[id(edge)][1])

    def upstream_first(self) -> list[str]:
        """The node ids, each after those that feed it (file order within a cycle)."""
        waiting = dict.fromkeys(self.order, 0)
        feeds: dict[str, list[str]] = {}
        for s, t in self.ends.values():
            if s in waiting and t in waiting and s != t:
                waiting[str(t)] += 1
                feeds.setdefault(str(s), []).append(str(t))
        ready = deque(n for n in self.order if waiting[n] == 0)
        done: list[str] = []
        while ready:
            n = ready.popleft()
            done.append(n)
            for t in feeds.get(n, []):
                waiting[t] -= 1
                if waiting[t] == 0:
                    ready.append(t)
        seen = set(done)
        return done + [n for n in self.order if n not in seen]


def _drop(seq: Any, doomed: set[int]) -> None:
    """Remove the items of a CommentedSeq whose ``id()`` is in ``doomed`` at once, their
    comments with them (ruamel's own deletion renumbers the comments item by item)."""
    keep = [i for i, item in enumerate(seq) if id(item) not in doomed]
    if len(keep) == len(seq):
        return
    comments = {new: seq.ca.items[old] for new, old in enumerate(keep) if old in seq.ca.items}
    items = [seq[i] for i in keep]
    list.clear(seq)
    list.extend(seq, items)
    seq.ca.items.clear()
    seq.ca.items.update(comments)


def _port_name(key: tuple[str, str], taken: set[str]) -> str:
    """A container output for what node ``key[0]``'s port ``key[1]`` gives per item."""
    base = key[0] if key[1] == "output" else f"{key[0]}-{key[1]}"
    base = re.sub(r"[^A-Za-z0-9_-]", "_", base)
    if not re.match(r"[A-Za-z_]", base):
        base = f"_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _notes(done: Translation) -> str:
    return f" (note: {'; '.join(done.notes)})" if done.notes else ""


_COLLECTION_CALL = re.compile(
    r"^(?:return\s+)?[A-Za-z_$][\w$]*\.(filter|map)\((.*)\)\s*;?\s*$", re.S
)


def _suggest(code: str) -> str | None:
    """``return data.filter(row => ...)`` as a transform's operation and expression."""
    body = _SPACE.sub(" ", code).strip()
    m = _COLLECTION_CALL.match(body)
    if m is None:
        return None
    try:
        done = translate_function(m.group(2))
    except NotTranslated:
        return None
    return f"operation: {m.group(1)}, expression: {done.expression}"


#: What the original's flows put on a transform that nothing ever read.
_NEVER_READ = ("inputType", "outputType")
#: The original's code node's parameters, which its flows put on transforms too.
_SNIPPET = frozenset({"code", "inputParams", "returnType", "async"})
#: ``return data.filter(`` / ``data.map(``: the transform's input list, as the original's
#: code node and atomiton-lang-js name it.
_CALL_HEAD = re.compile(r"(?:return\s+)?(?:data|input)\s*\.\s*(filter|map)\s*\(")
_CALL_TAIL = re.compile(r"\)(?:\s+|;|//[^\n]*|/\*.*?\*/)*", re.S)
_OPEN = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


def _collection_call(code: str) -> tuple[str, str] | None:
    """``// comment\nreturn data.filter(<function>);`` as ("filter", "<function>"); None
    for anything else (a chain, a second statement, text the lexer does not read)."""
    lead = _SPACE.match(code)
    start = lead.end() if lead else 0
    head = _CALL_HEAD.match(code, start)
    if head is None:
        return None
    try:
        whole = _Lexer(code).tokens()[0]
        prefix = _Lexer(code[start : head.end()]).tokens()[0][:-1]
    except NotTranslated:
        return None
    closes = [m.start() for m in re.finditer(r"\)", code) if m.start() >= head.end()]
    for close in reversed(closes):
        if not _CALL_TAIL.fullmatch(code, close):
            continue
        function = code[head.end() : close].strip()
        try:
            inner = _Lexer(function).tokens()[0][:-1]
            tail = _Lexer(code[close:]).tokens()[0]
        except NotTranslated:
            continue
        if prefix + inner + tail == whole and _balanced(inner) and _is_function(inner):
            return head.group(1), function
    return None


def _balanced(tokens: list[_Token]) -> bool:
    depth = 0
    for token in tokens:
        if token.kind == "op":
            depth += _OPEN.get(token.value, 0)
            if depth < 0:
                return False
    return depth == 0


def _is_function(tokens: list[_Token]) -> bool:
    """``function (...) {...}``, ``async ...``, ``x => ...`` or ``(...) => ...``."""
    if not tokens:
        return False
    first = tokens[0]
    if first.kind == "name" and first.value in ("function", "async"):
        return True
    if first.kind == "name":
        return len(tokens) > 1 and tokens[1] == _Token("op", "=>")
    if first != _Token("op", "("):
        return False
    depth = 0
    for i, token in enumerate(tokens):
        if token.kind == "op":
            depth += _OPEN.get(token.value, 0)
        if depth == 0:
            return tokens[i + 1 : i + 2] == [_Token("op", "=>")]
    return False
