"""Flows written for the original Atomiton's ``image`` and ``image-composite`` nodes.

Each test names the original file (Develonaut/atomiton, packages/@atomiton/nodes/src/, at the
commit given) the name or value comes from. Real images in tmp_path, real runs.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from atomiton_core import Conductor, ExecutionError, create_conductor, loads_flow
from atomiton_core.testing import run_node
from PIL import Image

from atomiton_nodes_image.node import ImageParams


@pytest.fixture
def conductor() -> Conductor:
    return create_conductor(f"memory://t-{uuid.uuid4().hex}", record_runs=False)


def png(path: Path, size: tuple[int, int], colour: Any, mode: str = "RGB") -> str:
    Image.new(mode, size, colour).save(path, format="PNG")
    return str(path)


def flow(parameters: dict[str, Any], **more: Any) -> Any:
    node = {"id": "img", "type": "image", "parameters": parameters}
    return loads_flow(json.dumps({"id": "t", "name": "t", "nodes": [node], **more}))


def run(conductor: Conductor, **parameters: Any) -> dict[str, Any]:
    result = conductor.run(flow(parameters))
    assert result.status == "completed", result.nodes["img"].error
    outputs: dict[str, Any] = result.nodes["img"].outputs
    return outputs


def opened(result: Any) -> Image.Image:
    img = Image.open(result if isinstance(result, str) else io.BytesIO(result))
    img.load()
    return img


def problems_at(conductor: Conductor, parameters: dict[str, Any], where: str) -> list[Any]:
    return [p for p in conductor.validate(flow(parameters)).errors if p.location == where]


def run_error(parameters: dict[str, Any], **ports: Any) -> ExecutionError:
    """The error of a run whose ``ports`` are connected (so validation lets it run) with
    these values, None being nothing: the node's own check must catch what is missing."""
    with pytest.raises(ExecutionError) as caught:
        run_node("image", parameters, inputs=ports)
    return caught.value


def test_images_output_and_output_format(conductor: Conductor, tmp_path: Path) -> None:
    """``images`` (the first the base), ``output`` (the path written) and
    ``format`` (schemas/image/index.ts, 25e39b83); ``outputFormat``, ``backgroundColor``
    "transparent" and ``padding`` (schemas/image-composite/index.ts, 46b0171c)."""
    base = png(tmp_path / "base.png", (40, 30), (255, 0, 0))
    mark = png(tmp_path / "mark.png", (10, 10), (0, 0, 255))
    target = tmp_path / "out" / "result.jpg"
    out = run(
        conductor,
        operation="overlay",
        images=[base, mark],
        output=str(target),
        outputFormat="jpeg",
        position="top-left",
        padding=2,
        backgroundColor="transparent",
    )
    assert out["result"] == str(target)
    img = opened(str(target))
    assert img.format == "JPEG" and img.size == (40, 30)
    r, _, b = img.convert("RGB").getpixel((6, 6))  # type: ignore[misc]
    assert b > 200 and r < 60  # the mark, 2 px in from the corner
    r, _, b = img.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    assert r > 200 and b < 60


def test_images_with_our_names_is_a_problem(conductor: Conductor, tmp_path: Path) -> None:
    [problem] = conductor.validate(flow({"images": ["a.png"], "inputPath": "b.png"})).errors
    assert problem.node_id == "img" and "'images'" in problem.message


def test_defaults_are_the_originals(conductor: Conductor, tmp_path: Path) -> None:
    """operation "overlay", quality 90, opacity 1, position center, blendMode "over"
    (schemas/image/index.ts and definitions/image/index.ts, 25e39b83)."""
    defaults = ImageParams(inputPath="x.png", overlayPath="y.png")
    assert defaults.operation == "overlay" and defaults.quality == 90
    assert defaults.opacity is None and defaults.position is None  # 1 and center when run
    assert defaults.blend_mode == "over"
    noisy = tmp_path / "noise.png"
    Image.effect_noise((64, 64), 80).convert("RGB").save(noisy)
    implicit = run(conductor, operation="convert", format="jpeg", inputPath=str(noisy))
    explicit = run(conductor, operation="convert", format="jpeg", quality=90, inputPath=str(noisy))
    low = run(conductor, operation="convert", format="jpeg", quality=75, inputPath=str(noisy))
    assert implicit["result"] == explicit["result"] != low["result"]


def test_blur_bounds_are_the_originals(conductor: Conductor, tmp_path: Path) -> None:
    """``blur``: 0 to 100 (schemas/image/index.ts, 25e39b83); 0 blurs nothing."""
    noisy = tmp_path / "noise.png"
    Image.effect_noise((32, 32), 80).convert("RGB").save(noisy)
    same = run(conductor, operation="convert", blur=0, inputPath=str(noisy))
    assert opened(same["result"]).tobytes() == Image.open(noisy).tobytes()
    blurred = run(conductor, operation="convert", blur=100, inputPath=str(noisy))
    assert opened(blurred["result"]).tobytes() != Image.open(noisy).tobytes()
    [problem] = problems_at(conductor, {"blur": 101}, "nodes[0].parameters.blur")
    assert problem.node_id == "img"


def test_blend_modes(conductor: Conductor, tmp_path: Path) -> None:
    """``blendMode`` (schemas/image/index.ts, 25e39b83): the mixes Pillow has; the
    Porter-Duff operators are reported, naming the parameter."""
    base = png(tmp_path / "base.png", (20, 20), (200, 100, 0))
    grey = png(tmp_path / "grey.png", (20, 20), (128, 128, 128))

    def pixel(mode: str) -> Any:
        out = run(conductor, images=[base, grey], blendMode=mode)
        return opened(out["result"]).convert("RGB").getpixel((10, 10))

    assert pixel("over") == pixel("normal") == (128, 128, 128)
    assert pixel("multiply") == (100, 50, 0)
    assert pixel("darken") == (128, 100, 0)
    assert pixel("lighten") == (200, 128, 128)
    assert pixel("difference") == (72, 28, 128)
    [problem] = problems_at(conductor, {"blendMode": "xor"}, "nodes[0].parameters.blendMode")
    assert problem.node_id == "img" and "not supported" in problem.message


def test_merge_with_images_stacks_them_as_the_original(
    conductor: Conductor, tmp_path: Path
) -> None:
    """The original's merge composited ``images[1:]`` over ``images[0]``
    (executables/image/operations.ts, 25e39b83); ours tiles them only when asked
    (``direction``)."""
    base = png(tmp_path / "base.png", (40, 30), (255, 0, 0))
    a = png(tmp_path / "a.png", (10, 10), (0, 0, 255))
    b = png(tmp_path / "b.png", (4, 4), (0, 255, 0))
    img = opened(run(conductor, operation="merge", images=[base, a, b])["result"])
    assert img.size == (40, 30)
    assert img.convert("RGB").getpixel((20, 15)) == (0, 255, 0)
    assert img.convert("RGB").getpixel((16, 11)) == (0, 0, 255)
    tiled = opened(
        run(conductor, operation="merge", images=[base, a], direction="horizontal")["result"]
    )
    assert tiled.size == (50, 30)


def test_width_and_height_resize_the_base_first(conductor: Conductor, tmp_path: Path) -> None:
    """In the original's compositions ``width``/``height`` resize the base first, fit
    "cover" by default (executables/image/operations.ts, 25e39b83)."""
    base = png(tmp_path / "base.png", (40, 20), (255, 0, 0))
    mark = png(tmp_path / "mark.png", (4, 4), (0, 0, 255))
    out = run(conductor, operation="composite", images=[base, mark], width=10, height=10)
    assert opened(out["result"]).size == (10, 10)
    out = run(conductor, operation="composite", images=[base, mark], width=10, fit="fill")
    assert opened(out["result"]).size == (10, 20)


def test_a_list_into_input_is_the_base_and_the_rest(conductor: Conductor, tmp_path: Path) -> None:
    """The original's ``images`` input port (definitions/image-composite/ports.ts, 259a5052)
    becomes our ``input``: a list is the base, then images over it. So an ``overlay`` whose
    ``input`` is connected needs no ``overlay`` port nor ``overlayPath`` before the run."""
    base = png(tmp_path / "base.png", (20, 20), (255, 0, 0))
    mark = png(tmp_path / "mark.png", (20, 20), (0, 0, 255))
    nodes = [
        {"id": "list", "type": "edit-fields", "parameters": {"values": {"all": [base, mark]}}},
        {"id": "img", "type": "image", "parameters": {"operation": "overlay"}},
    ]
    edge = {"source": "list", "sourceHandle": "output", "target": "img", "targetHandle": "input"}
    pick = {"id": "pick", "type": "transform", "parameters": {"operation": "reduce"}}
    pick["parameters"]["expression"] = "item.all"
    nodes.insert(1, pick)
    edges = [
        {**edge, "target": "pick"},
        {**edge, "source": "pick", "target": "img"},
    ]
    result = conductor.run(
        loads_flow(json.dumps({"id": "t", "name": "t", "nodes": nodes, "edges": edges}))
    )
    assert result.status == "completed", result.error
    img = opened(result.nodes["img"].outputs["result"])
    assert img.convert("RGB").getpixel((10, 10)) == (0, 0, 255)


def test_image_composite_is_not_a_node_type(conductor: Conductor) -> None:
    """The original replaced image-composite with image (executables/registry.ts, 25e39b83):
    its nodes are migrated (the type renamed; image takes all its parameter names)."""
    assert conductor.catalogue.get("image-composite") is None
    params = {"outputFormat": "png", "backgroundColor": "transparent", "padding": 0}
    ImageParams.model_validate({**params, "maintainAspectRatio": True, "blendMode": "normal"})


def test_a_list_into_input_gives_the_watermark_too(tmp_path: Path) -> None:
    """A watermark stamps the second image of a list into ``input``, as an overlay does."""
    base = png(tmp_path / "base.png", (40, 40), (255, 0, 0))
    mark = png(tmp_path / "mark.png", (8, 8), (0, 0, 255))
    out = run_node("image", {"operation": "watermark", "opacity": 1}, input=[base, mark])
    img = opened(out["result"]).convert("RGB")
    assert img.getpixel((35, 35)) == (0, 0, 255) and img.getpixel((5, 5)) == (255, 0, 0)


def test_no_image_fails_naming_the_parameter(tmp_path: Path) -> None:
    """What validation cannot know, the run checks: a connected ``input`` that brings
    nothing, or one image where a second is needed, fails naming the parameter to set."""
    err = run_error({"operation": "convert"}, input=None)
    assert err.node_id == "node" and err.context["parameter"] == "inputPath"
    assert "no image" in err.message
    base = png(tmp_path / "base.png", (20, 20), (255, 0, 0))
    for op in ("overlay", "composite", "blend", "merge"):
        err = run_error({"operation": op}, input=base)
        assert err.context["parameter"] == "overlayPath", op
        assert f"operation {op!r} needs a second image" in err.message
        err = run_error({"operation": op}, input=[base])
        assert err.context["parameter"] == "overlayPath", op
    err = run_error({"operation": "watermark"}, input=base)
    assert err.context["parameter"] == "watermarkPath"
    err = run_error({"operation": "watermark", "overlayPath": base}, input=base)
    assert err.context["parameter"] == "watermarkPath"  # a watermark's is watermarkPath


@pytest.mark.parametrize(
    ("parameters", "connected", "missing"),
    [
        ({"operation": "convert"}, {"input"}, []),
        ({"operation": "convert"}, set(), ["inputPath"]),
        ({"operation": "overlay", "inputPath": "a.png"}, set(), ["overlayPath"]),
        ({"operation": "overlay", "inputPath": "a.png"}, {"overlay"}, []),
        ({"operation": "overlay"}, {"input"}, []),  # a list into input may bring both
        ({"operation": "merge"}, set(), ["inputPath", "overlayPath"]),
        ({"operation": "watermark", "inputPath": "a.png"}, set(), ["watermarkPath"]),
        ({"operation": "watermark", "inputPath": "a.png"}, {"overlay"}, []),
        ({"operation": "watermark"}, {"input"}, []),
        (
            {"operation": "watermark", "inputPath": "a", "overlayPath": "b"},
            set(),
            ["watermarkPath"],
        ),
        ({"operation": "watermark", "inputPath": "a", "watermarkText": "(c)"}, set(), []),
    ],
)
def test_missing_inputs_given_the_connected_ports(
    parameters: dict[str, Any], connected: set[str], missing: list[str]
) -> None:
    found = ImageParams.model_validate(parameters).missing_inputs(frozenset(connected))
    assert [name for name, _ in found] == missing


def test_no_image_is_a_validation_problem(conductor: Conductor) -> None:
    cases = {
        "inputPath": {"operation": "convert"},
        "overlayPath": {"operation": "overlay", "inputPath": "a.png"},
        "watermarkPath": {"operation": "watermark", "inputPath": "a.png"},
    }
    for name, parameters in cases.items():
        [problem] = conductor.validate(flow(parameters)).errors
        assert problem.code == "MISSING_PARAMETER", problem
        assert problem.node_id == "img"
        assert problem.location == f"nodes[0].parameters.{name}"
