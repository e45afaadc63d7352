"""Node values as JSON plus binary blobs, and back: how inputs and outputs cross into a worker
process (isolated nodes), and the form a run log stores them in.

``encode(value)`` gives an :class:`Encoded`: a JSON-able ``tree`` and the ``blobs`` it refers
to (bytes values travel as blobs, never as base64 in JSON). ``decode(encoded)`` gives back an
equal value of the same types. Plain JSON data (``None``, booleans, numbers, strings, lists,
dicts with string keys) is its own tree; the other values are tagged dicts ``{"$": tag, ...}``:

===============  ===================================================================
``bytes``        ``bytes``, ``bytearray`` and ``memoryview`` (a blob)
``tuple``        tuples (lists stay lists)
``set``          ``set`` and ``frozenset``
``dict``         dicts whose keys are not all strings, or that use the key ``$``
``float``        ``nan``, ``inf`` and ``-inf``
``datetime``     ``datetime``, ``date``, ``time``, ``timedelta`` (ISO text / seconds)
``decimal``      ``Decimal`` (its text); ``uuid``: ``UUID``; ``path``: ``PurePath``
===============  ===================================================================

A plugin adds its own type with :func:`register` (a tag, a class, a function to bytes and one
back). Any other value is refused with :class:`~atomiton_core.errors.ValueNotEncodable`
naming where it sits (``result[2].image``) and its type.

Why not pickle: unpickling runs code and a pickle only loads where the same classes import,
so a stored run would depend on the code at hand; and JSON alone loses bytes and tuples.
Why not msgpack or CBOR: they would be one more dependency for the same table of tags, and
the run log wants JSON a person can read.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from atomiton_core.errors import ValueNotEncodable

__all__ = ["Encoded", "decode", "encode", "from_frames", "is_own_tree", "register", "to_frames"]

_TAG = "$"


@dataclass(slots=True)
class Encoded:
    """A value as a JSON-able tree and the blobs it refers to by index."""

    tree: Any
    blobs: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Custom:
    tag: str
    cls: type
    to_bytes: Callable[[Any], bytes]
    from_bytes: Callable[[bytes], Any]


_CUSTOM: dict[str, _Custom] = {}
_CUSTOM_BY_CLASS: dict[type, _Custom] = {}
_BUILTIN_TAGS = frozenset(
    {"bytes", "tuple", "set", "frozenset", "dict", "float", "datetime", "date", "time"}
    | {"timedelta", "decimal", "uuid", "path"}
)


def register(
    tag: str,
    cls: type,
    to_bytes: Callable[[Any], bytes],
    from_bytes: Callable[[bytes], Any],
) -> None:
    """Let values of ``cls`` (and its subclasses) be encoded as a blob under ``tag``.

    ``from_bytes(to_bytes(v))`` must give a value equal to ``v``. Registering a tag again
    with the same class replaces it (a module imported twice); another class is refused.
    """
    if tag in _BUILTIN_TAGS or not tag:
        raise ValueError(f"codec tag {tag!r} is taken by a built-in type")
    old = _CUSTOM.get(tag)
    if old is not None and old.cls is not cls:
        raise ValueError(f"codec tag {tag!r} is already registered for {old.cls.__qualname__}")
    custom = _Custom(tag, cls, to_bytes, from_bytes)
    _CUSTOM[tag] = custom
    _CUSTOM_BY_CLASS[cls] = custom


def encode(value: Any, *, where: str = "value", node_id: str | None = None) -> Encoded:
    """``value`` as an :class:`Encoded`; ``where`` names it in an error (``outputs.result``)."""
    blobs: list[bytes] = []
    tree = _Encoder(blobs, node_id).encode(value, where, set())
    return Encoded(tree, blobs)


_SCALARS = frozenset({str, int, bool, type(None)})


def is_own_tree(value: Any) -> bool:
    """``encode(value).tree`` would be ``value`` itself, with no blobs: a scalar, a finite
    float, or a dict with text keys (not ``$``) of those (a loop item's variables). What
    stores values checks this first, and skips the walk."""
    tp = type(value)
    if tp in _SCALARS:
        return True
    if tp is float:
        return math.isfinite(value)
    if tp is not dict or _TAG in value:
        return False
    for k, v in value.items():
        tv = type(v)
        if type(k) is not str or (tv not in _SCALARS and (tv is not float or not math.isfinite(v))):
            return False
    return True


def decode(encoded: Encoded) -> Any:
    """The value :func:`encode` was given (equal, same types)."""
    return _decode(encoded.tree, encoded.blobs)


def to_frames(encoded: Encoded) -> list[bytes]:
    """The tree as UTF-8 JSON, then each blob: frames to write one after another."""
    head = json.dumps(encoded.tree, separators=(",", ":"), allow_nan=False).encode()
    return [head, *encoded.blobs]


def from_frames(frames: list[bytes]) -> Encoded:
    """The :class:`Encoded` value that :func:`to_frames` turned into ``frames``."""
    return Encoded(json.loads(frames[0]), list(frames[1:]))


class _Encoder:
    __slots__ = ("blobs", "node_id")

    def __init__(self, blobs: list[bytes], node_id: str | None) -> None:
        self.blobs = blobs
        self.node_id = node_id

    def blob(self, tag: str, data: bytes) -> dict[str, Any]:
        self.blobs.append(data)
        return {_TAG: tag, "blob": len(self.blobs) - 1}

    def encode(self, value: Any, where: str, seen: set[int]) -> Any:
        tp = type(value)
        if value is None or tp is str or tp is bool or tp is int:
            return value
        if tp is float:
            if math.isfinite(value):
                return value
            return {_TAG: "float", "v": repr(value)}
        if tp is bytes or tp is bytearray or tp is memoryview:
            return self.blob("bytes", bytes(value))
        if tp in (list, tuple, set, frozenset, dict):
            if id(value) in seen:
                raise self.refuse(where, "contains itself", value)
            seen.add(id(value))
            try:
                return self.container(value, tp, where, seen)
            finally:
                seen.discard(id(value))
        return self.scalar(value, where)

    def container(self, value: Any, tp: type, where: str, seen: set[int]) -> Any:
        enc = self.encode
        if tp is list:
            return [enc(v, f"{where}[{i}]", seen) for i, v in enumerate(value)]
        if tp is tuple:
            return {
                _TAG: "tuple",
                "items": [enc(v, f"{where}[{i}]", seen) for i, v in enumerate(value)],
            }
        if tp is set or tp is frozenset:
            items = [enc(v, f"{where}{{…}}", seen) for v in value]
            return {_TAG: "set" if tp is set else "frozenset", "items": items}
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: enc(v, f"{where}.{k}", seen) for k, v in value.items()}
        return {
            _TAG: "dict",
            "items": [
                [enc(k, f"{where} key {k!r}", seen), enc(v, f"{where}[{k!r}]", seen)]
                for k, v in value.items()
            ],
        }

    def scalar(self, value: Any, where: str) -> Any:
        if isinstance(value, bool | int | float | str):  # subclasses (IntEnum, StrEnum...)
            base = next(t for t in (bool, int, float, str) if isinstance(value, t))
            return self.encode(base(value), where, set())
        if isinstance(value, _dt.datetime):
            return {_TAG: "datetime", "v": value.isoformat()}
        if isinstance(value, _dt.date):
            return {_TAG: "date", "v": value.isoformat()}
        if isinstance(value, _dt.time):
            return {_TAG: "time", "v": value.isoformat()}
        if isinstance(value, _dt.timedelta):
            return {_TAG: "timedelta", "v": value.total_seconds()}
        if isinstance(value, Decimal):
            return {_TAG: "decimal", "v": str(value)}
        if isinstance(value, uuid.UUID):
            return {_TAG: "uuid", "v": str(value)}
        if isinstance(value, PurePath):
            flavour = "windows" if isinstance(value, PureWindowsPath) else "posix"
            tree: dict[str, Any] = {_TAG: "path", "v": str(value), "flavour": flavour}
            if not isinstance(value, Path):
                tree["pure"] = True
            return tree
        custom = _CUSTOM_BY_CLASS.get(type(value))
        if custom is None:
            custom = next((c for c in _CUSTOM.values() if isinstance(value, c.cls)), None)
        if custom is not None:
            try:
                data = custom.to_bytes(value)
            except Exception as exc:
                raise self.refuse(where, f"its codec {custom.tag!r} failed: {exc}", value) from exc
            return self.blob(custom.tag, data)
        held = getattr(type(value), "__atomiton_unstored__", None)
        if isinstance(held, tuple):  # a value that says why it is not here to encode
            raise self.refuse(where, held[0], value, held[1])
        raise self.refuse(where, "has no codec", value)

    def refuse(
        self, where: str, why: str, value: Any, hint: str | None = None
    ) -> ValueNotEncodable:
        tp = type(value)
        return ValueNotEncodable(
            f"{where} ({tp.__module__}.{tp.__qualname__}) {why}",
            node_id=self.node_id,
            hint=hint
            or "pass JSON data, bytes, tuples, sets, dates, decimals, UUIDs or paths; "
            "a plugin can add a type with atomiton_core.codec.register",
            where=where,
            value_type=f"{tp.__module__}.{tp.__qualname__}",
        )


def _decode(tree: Any, blobs: list[bytes]) -> Any:
    tp = type(tree)
    if tp is list:
        return [_decode(v, blobs) for v in tree]
    if tp is not dict:
        return tree
    tag = tree.get(_TAG)
    if tag is None:
        return {k: _decode(v, blobs) for k, v in tree.items()}
    if tag == "bytes":
        return blobs[tree["blob"]]
    if tag == "tuple":
        return tuple(_decode(v, blobs) for v in tree["items"])
    if tag == "set":
        return {_decode(v, blobs) for v in tree["items"]}
    if tag == "frozenset":
        return frozenset(_decode(v, blobs) for v in tree["items"])
    if tag == "dict":
        return {_decode(k, blobs): _decode(v, blobs) for k, v in tree["items"]}
    if tag == "float":
        return float(tree["v"])
    if tag == "datetime":
        return _dt.datetime.fromisoformat(tree["v"])
    if tag == "date":
        return _dt.date.fromisoformat(tree["v"])
    if tag == "time":
        return _dt.time.fromisoformat(tree["v"])
    if tag == "timedelta":
        return _dt.timedelta(seconds=tree["v"])
    if tag == "decimal":
        return Decimal(tree["v"])
    if tag == "uuid":
        return uuid.UUID(tree["v"])
    if tag == "path":
        windows = tree.get("flavour") == "windows"
        if windows == (os.name == "nt") and not tree.get("pure"):
            return Path(tree["v"])
        return (PureWindowsPath if windows else PurePosixPath)(tree["v"])
    custom = _CUSTOM.get(tag)
    if custom is None:
        raise ValueNotEncodable(
            f"a stored value has the codec tag {tag!r}, which no installed codec reads",
            hint="install the plugin that registered it",
            tag=tag,
        )
    return custom.from_bytes(blobs[tree["blob"]])
