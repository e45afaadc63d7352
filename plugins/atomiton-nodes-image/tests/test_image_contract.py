"""The image node against the core's property-based node contract, on real image bytes."""

from __future__ import annotations

import io
import typing

import pytest
from hypothesis import strategies as st
from PIL import Image

from atomiton_nodes_image.node import Operation

# the testing kit is new: prefer its public name, fall back to the module defining it
testing = pytest.importorskip("atomiton_core.testing")
check_node = getattr(testing, "check_node", None) or (
    pytest.importorskip("atomiton_core.testing.contract").check_node
)


def _encoded(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red").save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = [
    _encoded("RGB", (9, 7), "PNG"),
    _encoded("RGBA", (5, 12), "PNG"),
    _encoded("L", (8, 8), "JPEG"),
    _encoded("P", (6, 4), "GIF"),
    b"not an image",
]
images = st.sampled_from(IMAGES)

# local files and other URLs are never drawn: inputs come in as bytes only
params = st.fixed_dictionaries(
    {
        "operation": st.sampled_from(typing.get_args(Operation)),
    },
    optional={
        "format": st.sampled_from(["png", "jpeg", "webp", "gif", "bmp", "tiff"]),
        "quality": st.integers(1, 100),
        "width": st.integers(1, 20),
        "height": st.integers(1, 20),
        "scale": st.floats(0.05, 3),
        "fit": st.sampled_from(["contain", "cover", "fill", "inside", "outside"]),
        "maintainAspectRatio": st.booleans(),
        "left": st.integers(0, 10),
        "top": st.integers(0, 10),
        "angle": st.floats(-720, 720),
        "position": st.sampled_from(["top-left", "center", "bottom-right", {"x": 2, "y": -3}]),
        "margin": st.integers(0, 5),
        "opacity": st.floats(0, 1),
        "blur": st.floats(0.1, 4),
        "sharpen": st.booleans(),
        "grayscale": st.booleans(),
        "background": st.sampled_from(["white", "#00000080", "nonsense"]),
        "direction": st.sampled_from(["horizontal", "vertical"]),
        "watermarkText": st.text(max_size=8),
        "fontSize": st.integers(1, 30),
        "color": st.sampled_from(["black", "#ff000080", "not-a-colour"]),
    },
).filter(
    lambda p: not (p.get("operation") == "resize" and not {"width", "height", "scale"} & set(p))
)

inputs = st.fixed_dictionaries(
    {"input": images}, optional={"overlay": st.lists(images, min_size=1, max_size=2)}
)


def _valid(p: dict[str, object]) -> bool:
    op = p["operation"]
    return not (
        (op == "crop" and not {"width", "height"} <= set(p))
        or (op == "rotate" and "angle" not in p)
    )


@pytest.mark.slow
def test_image_keeps_the_node_contract() -> None:
    check_node(
        "image",
        params=params.filter(_valid),
        inputs=inputs,
        rules=("declared-outputs", "atomiton-errors", "inputs-not-mutated"),
        max_examples=100,
    )
