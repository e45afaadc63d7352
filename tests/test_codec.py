"""The codec: every value it accepts comes back equal and of the same types; anything else is
refused naming where it sits."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atomiton_core import codec
from atomiton_core.errors import ValueNotEncodable

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes()
    | st.dates()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.uuids()
)
hashables = st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.dates()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.frozensets(hashables, max_size=3)
        | st.sets(hashables, max_size=3)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def through_frames(value: Any) -> Any:
    frames = codec.to_frames(codec.encode(value))
    return codec.decode(codec.from_frames([bytes(f) for f in frames]))


@given(values)
def test_what_goes_in_comes_out(value: Any) -> None:
    assert same(through_frames(value), value)


@given(values)
def test_the_tree_is_json(value: Any) -> None:
    encoded = codec.encode(value)
    json.dumps(encoded.tree, allow_nan=False)
    assert all(isinstance(b, bytes) for b in encoded.blobs)


flat = st.dictionaries(
    st.text(max_size=3) | st.just("$"),
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    max_size=4,
)


@given(values | flat | st.floats())
def test_a_value_said_to_be_its_own_tree_is(value: Any) -> None:
    """What the run log digests without a walk (a loop item's variables) is exactly what
    the walk would have given: the digests of variables and inputs are unchanged."""
    from atomiton_core.storage.runs import _dumps, digest, pack, value_digest

    encoded = codec.encode(value)
    walked = _dumps(encoded.tree)
    expected = digest(pack(walked, encoded.blobs) if encoded.blobs else walked)
    assert value_digest(value, "value") == expected
    if codec.is_own_tree(value):
        assert same(encoded.tree, value) and encoded.blobs == []
        assert _dumps(value) == walked


def test_bytes_travel_as_blobs_not_in_the_json() -> None:
    encoded = codec.encode({"image": b"\x89PNG" * 1000})
    assert encoded.blobs == [b"\x89PNG" * 1000]
    assert len(json.dumps(encoded.tree)) < 50


def test_special_floats_paths_and_tagged_dicts() -> None:
    value = {
        "nan": math.inf,
        "neg": -math.inf,
        "p": Path("/tmp/x"),
        "pp": PurePosixPath("a/b"),
        "$": "a user's key that looks like a tag",
        "td": dt.timedelta(seconds=90),
        "t": dt.time(1, 2, 3),
        "u": uuid.UUID(int=5),
        "d": Decimal("0.10"),
    }
    back = through_frames(value)
    assert same(back, value)
    assert math.isnan(through_frames(math.nan))


def test_an_unknown_value_is_refused_naming_where_it_is() -> None:
    with pytest.raises(ValueNotEncodable) as info:
        codec.encode({"rows": [1, {"when": object()}]}, where="outputs", node_id="n1")
    err = info.value
    assert err.node_id == "n1"
    assert "outputs.rows[1].when" in err.message
    assert "builtins.object" in err.message
    assert err.context["where"] == "outputs.rows[1].when"


def test_a_value_that_contains_itself_is_refused() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueNotEncodable, match=r"value\[1\] .* contains itself"):
        codec.encode(loop)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_a_plugin_registers_its_own_type() -> None:
    codec.register(
        "test.point",
        Point,
        lambda p: f"{p.x},{p.y}".encode(),
        lambda b: Point(*map(int, b.decode().split(","))),
    )
    assert through_frames({"p": Point(1, 2)}) == {"p": Point(1, 2)}
    with pytest.raises(ValueError, match="already registered"):
        codec.register("test.point", dict, bytes, bytes)
    with pytest.raises(ValueError, match="built-in"):
        codec.register("bytes", Point, bytes, bytes)


def test_a_tag_no_codec_reads_is_a_clear_error() -> None:
    with pytest.raises(ValueNotEncodable, match="no installed codec reads"):
        codec.decode(codec.Encoded({"$": "elsewhere.thing", "blob": 0}, [b""]))
