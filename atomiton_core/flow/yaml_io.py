"""Flow files: a load -> save cycle loses nothing (comments, key order, quoting, unknown keys).

Loading reads with libyaml's C parser (:mod:`~atomiton_core.flow.fastyaml`) and remembers the
text. Saving takes the fastest way that keeps everything (:mod:`~atomiton_core.flow.fastdump`):

- a flow built in Python (no text) is written by PyYAML's C emitter, quoted so that YAML 1.1
  and 1.2 readers read the same values;
- a loaded flow's text is spliced: unchanged values keep their text, comments and styles,
  changed ones are written anew in place, removed keys go, new ones are appended. The result
  is read back and compared with the flow's data before it is used.

Both run at about the speed of PyYAML's C dumper (a 10,000-node flow in well under a second,
``benchmarks/save.py``). ruamel.yaml's round-trip emitter (pure Python, seconds for such a
flow) remains for what they leave alone: text that only ruamel could read (merge keys,
timestamps, custom tags), text with YAML aliases, values such as dates or sets. It merges
the flow's data into the round-trip document the same way: unchanged values keep their
quoting and comments, keys keep their order, removed keys go, new ones are appended.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import YAMLError, YAMLWarning

from atomiton_core.errors import FlowLoadError
from atomiton_core.files import atomic_write_text, backend_hint
from atomiton_core.flow import budget, fastdump, fastyaml
from atomiton_core.flow.models import Flow

_log = logging.getLogger("atomiton.flow")

__all__ = [
    "dump_flow",
    "dumps_flow",
    "load_flow",
    "loads_flow",
    "read_plain",
    "save_flow",
    "to_plain",
]


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def to_plain(value: Any, where: str = "<flow>", *, checked: bool = False) -> Any:
    """Convert ruamel's round-trip types to plain dicts, lists, str, int, float, bool, once
    the document is known to be within its budget (:mod:`~atomiton_core.flow.budget`;
    ``checked``: the reader already knows it is)."""
    if not checked:
        budget.check(value, where)
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, TaggedScalar):  # a custom tag: the value it tags (saved with its tag)
        return None if value.value is None else str(value.value)
    return value


_UNSET: Any = object()
#: The longest flow text read (a 100,000-node flow is about 20 MB).
MAX_TEXT = 256 * 1024 * 1024


def loads_flow(text: str, *, source: str | None = None) -> Flow:
    """Parse flow YAML (or JSON, a subset of YAML) text.

    The fast C reader (see ``fastyaml``) builds the data; the round-trip document that keeps
    comments and styles is parsed from the same text only when the flow is saved. Text the
    fast reader refuses goes through ruamel, whose error messages name the line.
    """
    where = source or "<string>"
    data, document, checked = _parse(text, where, source)
    flow = Flow.from_data(to_plain(data, where, checked=checked), source=source, text=text)
    flow._document = document
    flow._text = text if document is None else None
    return flow


def read_plain(text: str, *, source: str | None = None) -> Any:
    """YAML (or JSON) text as plain data, within the document budget, or FlowLoadError."""
    where = source or "<string>"
    data, _, checked = _parse(text, where, source)
    return to_plain(data, where, checked=checked)


def _parse(text: str, where: str, source: str | None) -> tuple[Any, Any, bool]:
    """(data, the round-trip document when ruamel had to read it, whether the reader already
    checked the budget: the fast reader met no alias and checked the depth)."""
    if len(text) > MAX_TEXT:
        raise FlowLoadError(
            f"{where}: {len(text):,} characters, over the limit of {MAX_TEXT:,} for a flow file",
            source=source,
        )
    data = _UNSET
    stats: dict[str, Any] = {}
    if fastyaml.available():
        try:
            data = fastyaml.load(text, stats)
        except FlowLoadError as exc:
            raise exc.located(where, source) from None
        except Exception as exc:  # anything unusual: ruamel decides, and explains
            if "nesting depth" in str(exc):  # ruamel would take seconds to fail the same way
                raise FlowLoadError(
                    f"{where}: nested too deeply to read",
                    source=source,
                    hint=f"a flow may nest {budget.MAX_DEPTH} levels",
                ) from None
            data = _UNSET
    document = None
    if data is _UNSET:
        try:
            with warnings.catch_warnings():  # a reused anchor is valid YAML: the last wins
                warnings.simplefilter("ignore", YAMLWarning)
                document = data = _yaml().load(text)
        except YAMLError as exc:
            raise FlowLoadError.from_yaml(where, exc) from None
        except RecursionError:
            raise FlowLoadError(
                f"{where}: nested too deeply to read",
                source=source,
                hint=f"a flow may nest {budget.MAX_DEPTH} levels",
            ) from None
        except Exception as exc:  # ruamel's constructors fail on odd input in their own ways
            raise FlowLoadError(
                f"{where}: a value cannot be read: {exc}",
                source=source,
                hint="write very long numbers as strings (quoted)",
            ) from None
    checked = document is None and data is not _UNSET and not stats.get("aliases")
    return data, document, checked


def load_flow(path: str | os.PathLike[str]) -> Flow:
    """Load a flow file: a local path or any fsspec URL."""
    import fsspec

    where = os.fspath(path)
    try:
        with fsspec.open(where, "r", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise FlowLoadError(f"{where}: no such flow file", source=where) from None
    except ImportError as exc:  # fsspec has no backend installed for the URL's protocol
        raise FlowLoadError(
            f"{where}: cannot read: {exc}", source=where, hint=backend_hint(where)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowLoadError(f"{where}: cannot read: {exc}", source=where) from None
    return loads_flow(text, source=where)


def _same_scalar(old: Any, new: Any) -> bool:
    plain = to_plain(old)
    return type(plain) is type(new) and plain == new


def _merge(old: Any, new: Any) -> Any:
    """Merge plain ``new`` into round-trip ``old``, keeping what is unchanged as it was."""
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            old[key] = _merge(old[key], value) if key in old else value
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        keyed = all(isinstance(x, dict) and "id" in x for x in old) and all(
            isinstance(x, dict) and "id" in x for x in new
        )
        if keyed and [x["id"] for x in old] != [x["id"] for x in new]:
            try:
                by_id = {x["id"]: x for x in old}
                found = [by_id.get(x["id"]) for x in new]
            except TypeError:  # an id that cannot be a dict key: matched by position below
                pass
            else:
                old[:] = [x if o is None else _merge(o, x) for o, x in zip(found, new, strict=True)]
                return old
        for i, value in enumerate(new[: len(old)]):
            old[i] = _merge(old[i], value)
        del old[len(new) :]
        old.extend(new[len(old) :])
        return old
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        return new
    if isinstance(old, datetime | date) and old == new:
        return old
    if isinstance(new, float):  # ruamel's ScalarFloat can re-emit exponents imprecisely
        return new
    return old if _same_scalar(old, new) else new


def _document_for(flow: Flow) -> Any:
    data = flow.to_data()
    if flow._document is None and flow._text is not None:
        try:  # the round trip, parsed when first needed
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", YAMLWarning)
                flow._document = _yaml().load(flow._text)
        except (YAMLError, RecursionError, ValueError, TypeError):
            # text libyaml read but ruamel cannot (a tab after a key's colon, say): the
            # flow is written plainly, without the text's comments and styles
            flow._document = None
        flow._text = None
    if flow._document is None:
        flow._document = _merge(CommentedMap(), data)
    else:
        flow._document = _merge(flow._document, data)
    return flow._document


def _fast_text(flow: Flow) -> str | None:
    """The flow's text by the fast paths (see the module's docstring), or None for ruamel."""
    if flow._document is not None or not fastdump.available():
        return None
    data = flow.to_data()
    try:
        if flow._text is None:
            return fastdump.dumps(data)
        text = fastdump.splice(flow._text, data)
    except fastdump.Unsupported as exc:
        _log.debug("%s: saved through ruamel: %s", flow.source or flow.id, exc)
        return None
    if text != flow._text and not _reads_back(text, data):
        _log.debug("%s: the spliced text does not read back: saved through ruamel", flow.id)
        return None
    flow._text = text  # the next save edits this text
    return text


def _reads_back(text: str, data: Any) -> bool:
    stats: dict[str, Any] = {}
    with fastdump.collector_paused():
        try:
            again = fastyaml.load(text, stats)
        except Exception:
            return False
        if stats.get("aliases"):
            return False
        return fastdump.same(again, data) or fastdump.same(_plain(again), data)


def dumps_flow(flow: Flow) -> str:
    """The flow as YAML text, keeping the comments, order and styles it was loaded with."""
    text = _fast_text(flow)
    if text is not None:
        return text
    buf = io.StringIO()
    _yaml().dump(_document_for(flow), buf)
    return buf.getvalue()


def dump_flow(flow: Flow, stream: Any) -> None:
    stream.write(dumps_flow(flow))


def save_flow(flow: Flow, path: str | os.PathLike[str]) -> None:
    """Write a flow file atomically: a failed save leaves the old file as it was."""
    text = dumps_flow(flow)
    where = os.fspath(path)
    if where.startswith("file://"):
        where = where.removeprefix("file://")
    atomic_write_text(where, text)
