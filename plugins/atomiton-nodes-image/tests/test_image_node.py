"""The image node on real images (local files, memory:// and bytes), through a real conductor."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from atomiton_core import Conductor, Flow, FlowValidationError, create_conductor, loads_flow
from PIL import Image


@pytest.fixture
def conductor() -> Conductor:
    return create_conductor(f"memory://t-{uuid.uuid4().hex}", record_runs=False)


@pytest.fixture
def root() -> str:
    """A fresh memory:// folder (fsspec's memory filesystem is process-global)."""
    return f"memory://test-{uuid.uuid4().hex}"


def encode(img: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def put(url: str, data: bytes) -> str:
    with fsspec.open(url, "wb") as f:
        f.write(data)
    return url


@pytest.fixture
def base(root: str) -> str:
    """A 40x30 red PNG."""
    return put(f"{root}/base.png", encode(Image.new("RGB", (40, 30), (255, 0, 0))))


@pytest.fixture
def mark(root: str) -> str:
    """A 10x10 opaque blue RGBA PNG."""
    return put(f"{root}/mark.png", encode(Image.new("RGBA", (10, 10), (0, 0, 255, 255))))


def image_flow(*nodes: dict[str, Any], edges: str = "") -> Flow:
    items = "\n".join(
        f"  - id: {n.pop('id', 'img')}\n    type: image\n    parameters: {json.dumps(n)}"
        for n in nodes
    )
    return loads_flow(f"id: image-test\nname: Image test\nnodes:\n{items}\nedges: [{edges}]\n")


def run_one(conductor: Conductor, **parameters: Any) -> dict[str, Any]:
    result = conductor.run(image_flow(parameters))
    node = result.nodes["img"]
    assert result.status == "completed", node.error
    outputs: dict[str, Any] = node.outputs
    return outputs


def decoded(outputs: dict[str, Any]) -> Image.Image:
    """Decode the node's result (bytes or a path) and check it against the reported facts."""
    out = outputs["output"]
    result = out["result"]
    if isinstance(result, bytes):
        data = result
    else:
        with fsspec.open(result, "rb") as f:
            data = f.read()
    img = Image.open(io.BytesIO(data))
    assert (img.width, img.height) == (out["width"], out["height"])
    assert img.format is not None and img.format.lower() == out["format"]
    assert out["size"] == len(data)
    assert outputs["result"] == result
    assert outputs["metadata"] == {k: out[k] for k in ("width", "height", "format", "size")}
    return img


def test_image_is_discovered_and_pillow_stays_unimported() -> None:
    code = (
        "import sys, uuid; from atomiton_core import create_conductor;"
        "c = create_conductor(f'memory://t-{uuid.uuid4().hex}', record_runs=False);"
        "print(c.catalogue['image'].distribution, 'PIL' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["atomiton-nodes-image", "False"]


CASES: list[tuple[dict[str, Any], tuple[int, int], str]] = [
    ({"operation": "resize", "width": 20, "height": 20}, (20, 15), "png"),
    ({"operation": "resize", "width": 20, "height": 20, "fit": "fill"}, (20, 20), "png"),
    ({"operation": "resize", "width": 20, "height": 20, "fit": "cover"}, (20, 20), "png"),
    ({"operation": "resize", "width": 20, "height": 20, "fit": "contain"}, (20, 20), "png"),
    ({"operation": "resize", "width": 20, "height": 20, "fit": "outside"}, (27, 20), "png"),
    (
        {"operation": "resize", "width": 20, "height": 20, "maintainAspectRatio": False},
        (20, 20),
        "png",
    ),
    ({"operation": "resize", "width": 20}, (20, 15), "png"),
    ({"operation": "resize", "height": 60}, (80, 60), "png"),
    ({"operation": "resize", "scale": 0.5, "format": "jpeg"}, (20, 15), "jpeg"),
    ({"operation": "crop", "width": 10, "height": 8, "position": "bottom-right"}, (10, 8), "png"),
    ({"operation": "crop", "width": 10, "height": 8, "left": 5, "top": 5}, (10, 8), "png"),
    ({"operation": "rotate", "angle": 90}, (30, 40), "png"),
    ({"operation": "rotate", "angle": 45, "format": "webp"}, (50, 50), "webp"),
    ({"operation": "convert", "format": "jpeg", "quality": 80}, (40, 30), "jpeg"),
    ({"operation": "convert", "format": "webp"}, (40, 30), "webp"),
    ({"operation": "convert", "format": "png"}, (40, 30), "png"),
    ({"operation": "blur", "blur": 3}, (40, 30), "png"),
    ({"operation": "sharpen", "format": "webp"}, (40, 30), "webp"),
    ({"operation": "grayscale", "format": "jpeg"}, (40, 30), "jpeg"),
    ({"operation": "overlay", "position": "bottom-right"}, (40, 30), "png"),
    ({"operation": "composite", "position": {"x": 3, "y": 4}, "opacity": 0.5}, (40, 30), "png"),
    ({"operation": "blend", "opacity": 0.5}, (40, 30), "png"),
    ({"operation": "merge", "margin": 2}, (52, 30), "png"),
    ({"operation": "merge", "direction": "vertical", "format": "webp"}, (40, 40), "webp"),
    ({"operation": "watermark", "watermarkText": "(c) Ada", "opacity": 1}, (40, 30), "png"),
    ({"operation": "watermark", "scale": 0.25, "margin": 2}, (40, 30), "png"),
]


@pytest.mark.parametrize(("params", "size", "fmt"), CASES, ids=lambda v: json.dumps(v))
def test_image_operation_gives_right_size_and_format(
    conductor: Conductor,
    base: str,
    mark: str,
    params: dict[str, Any],
    size: tuple[int, int],
    fmt: str,
) -> None:
    params = dict(params, inputPath=base)
    if params["operation"] in ("overlay", "composite", "blend", "merge"):
        params["overlayPath"] = mark
    if params["operation"] == "watermark" and "watermarkText" not in params:
        params["watermarkPath"] = mark
    img = decoded(run_one(conductor, **params))
    assert img.size == size
    assert img.format is not None and img.format.lower() == fmt


def test_image_overlay_lands_where_asked(conductor: Conductor, base: str, mark: str) -> None:
    params = {"operation": "overlay", "inputPath": base, "overlayPath": mark}
    img = decoded(run_one(conductor, **params, position="bottom-right", margin=2)).convert("RGB")
    assert img.getpixel((39 - 2, 29 - 2)) == (0, 0, 255)
    assert img.getpixel((39, 29)) == (255, 0, 0)
    assert img.getpixel((0, 0)) == (255, 0, 0)
    img = decoded(run_one(conductor, **params, position={"x": 0, "y": 0}, opacity=0.5))
    r, _, b = img.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert 100 < r < 155 and 100 < b < 155


def test_image_watermark_text_and_image_change_the_right_corner(
    conductor: Conductor, base: str, mark: str, root: str
) -> None:
    big = put(f"{root}/big.png", encode(Image.new("RGB", (200, 100), (0, 0, 0))))
    text = decoded(
        run_one(
            conductor, operation="watermark", inputPath=big, watermarkText="ATOMITON", opacity=1
        )
    ).convert("RGB")
    bright = [text.getpixel((x, y)) != (0, 0, 0) for x in range(200) for y in range(100)]
    assert any(bright)
    assert text.getbbox() is not None
    left, top, _, _ = text.getbbox()  # bottom-right by default
    assert left > 100 and top > 50
    stamped = decoded(
        run_one(conductor, operation="watermark", inputPath=base, watermarkPath=mark, opacity=1)
    ).convert("RGB")
    assert stamped.getpixel((39, 29)) == (0, 0, 255)
    assert stamped.getpixel((0, 0)) == (255, 0, 0)


def test_image_grayscale_flag_applies_after_any_operation(conductor: Conductor, base: str) -> None:
    img = decoded(run_one(conductor, operation="resize", width=10, inputPath=base, grayscale=True))
    assert img.mode == "L"


def test_image_bytes_in_bytes_out(conductor: Conductor, base: str) -> None:
    flow = image_flow(
        {"id": "first", "operation": "resize", "width": 20, "inputPath": base},
        {"id": "second", "operation": "rotate", "angle": 90, "format": "jpeg"},
        edges="{id: e1, source: first, sourceHandle: result, target: second, targetHandle: input}",
    )
    result = conductor.run(flow)
    assert result.status == "completed", result.error
    first, second = result.nodes["first"].outputs, result.nodes["second"].outputs
    assert isinstance(first["result"], bytes) and isinstance(second["result"], bytes)
    assert decoded(second).size == (15, 20)


def test_image_outputs_to_local_and_memory_paths(
    conductor: Conductor, base: str, root: str, tmp_path: Path
) -> None:
    local = tmp_path / "out" / "deep" / "small.webp"  # folders are created
    out = run_one(conductor, operation="resize", width=10, inputPath=base, outputPath=str(local))
    assert out["result"] == str(local)
    with Image.open(local) as written:
        assert written.format == "WEBP"
    target = f"{root}/results/small.jpg"
    out = run_one(conductor, operation="resize", width=10, inputPath=base, outputPath=target)
    assert out["result"] == target
    assert decoded(out).format == "JPEG"
    local_in = tmp_path / "in.png"
    local_in.write_bytes(encode(Image.new("RGB", (8, 8))))
    assert decoded(run_one(conductor, operation="convert", inputPath=str(local_in))).size == (8, 8)


def test_image_output_path_template_uses_the_input(conductor: Conductor, root: str) -> None:
    put(f"{root}/photo.png", encode(Image.new("RGB", (12, 12))))
    flow = loads_flow(
        f"""
id: t
name: t
nodes:
  - id: pick
    type: edit-fields
    parameters: {{values: {{path: "{root}/photo.png", name: photo}}, keepOnlySet: true}}
  - id: img
    type: image
    parameters:
      operation: grayscale
      outputPath: "{root}/gray/{{{{ input.name }}}}.png"
edges:
  - {{id: e1, source: pick, sourceHandle: output, target: img, targetHandle: input}}
"""
    )
    result = conductor.run(flow)
    assert result.status == "completed", result.error
    assert result.nodes["img"].outputs["result"] == f"{root}/gray/photo.png"


def test_image_jpeg_quality_changes_the_size(conductor: Conductor, root: str) -> None:
    noisy = put(f"{root}/noise.png", encode(Image.effect_noise((128, 128), 80).convert("RGB")))
    sizes = {
        q: run_one(conductor, operation="convert", format="jpeg", quality=q, inputPath=noisy)[
            "output"
        ]["size"]
        for q in (10, 95)
    }
    assert sizes[10] * 2 < sizes[95]


def test_image_chains_like_the_original_flow(conductor: Conductor, root: str) -> None:
    photo = put(f"{root}/photo.png", encode(Image.new("RGB", (1600, 900), (30, 120, 200))))
    mark = put(f"{root}/assets/watermark.png", encode(Image.new("RGBA", (64, 32), "white")))
    flow = image_flow(
        {
            "id": "image-resize",
            "operation": "resize",
            "width": 800,
            "height": 600,
            "maintainAspectRatio": True,
            "quality": 85,
            "format": "jpeg",
            "inputPath": photo,
        },
        {
            "id": "image-watermark",
            "operation": "watermark",
            "watermarkPath": mark,
            "position": "bottom-right",
            "opacity": 0.7,
            "scale": 0.25,
            "margin": 10,
        },
        edges="{id: e, source: image-resize, sourceHandle: output, target: image-watermark, "
        "targetHandle: input}",
    )
    result = conductor.run(flow)
    assert result.status == "completed", result.error
    out = decoded(result.nodes["image-watermark"].outputs)
    assert out.size == (800, 450)
    assert out.format == "JPEG"


def test_image_unreadable_inputs_name_the_path(
    conductor: Conductor, root: str, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    cases = {
        str(text): f"cannot read image {str(text)!r}: not an image Pillow can read",
        f"{root}/missing.png": f"cannot read image {root + '/missing.png'!r}: no such file",
    }
    for path, message in cases.items():
        result = conductor.run(image_flow({"operation": "convert", "inputPath": path}))
        assert result.status == "failed"
        assert message in result.nodes["img"].error.message
        assert result.nodes["img"].error.node_id == "img"
    broken = put(f"{root}/broken.png", encode(Image.new("RGB", (50, 50)))[:60])
    result = conductor.run(image_flow({"operation": "convert", "inputPath": broken}))
    assert f"cannot read image {broken!r}" in result.nodes["img"].error.message


def test_image_missing_second_image_and_bad_crop_are_clear(conductor: Conductor, base: str) -> None:
    (problem,) = conductor.validate(image_flow({"operation": "overlay", "inputPath": base})).errors
    assert "operation 'overlay' needs a second image" in problem.message
    result = conductor.run(
        image_flow({"operation": "crop", "width": 50, "height": 5, "inputPath": base})
    )
    assert "does not fit the 40x30 image" in result.nodes["img"].error.message
    (problem,) = conductor.validate(image_flow({"operation": "convert"})).errors
    assert "no image: connect the `input` port or set 'inputPath'" in problem.message
    assert problem.code == "MISSING_PARAMETER" and problem.node_id == "img"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"operation": "resize"}, "needs 'width', 'height' or 'scale'"),
        ({"operation": "crop", "width": 3}, "needs 'width' and 'height'"),
        ({"operation": "rotate"}, "needs 'angle'"),
        ({"operation": "convert", "format": "heic"}, "format"),
        ({"operation": "overlay", "position": "upper-left"}, "position"),
    ],
)
def test_image_bad_parameters_fail_validation(
    conductor: Conductor, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(FlowValidationError, match=message):
        conductor.run(image_flow(params))


def test_image_paths_are_confined_to_allowed_roots(tmp_path: Path, root: str, base: str) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    put(str(inside / "in.png"), encode(Image.new("RGB", (8, 8), (0, 255, 0))))
    confined = create_conductor(
        f"memory://t-{uuid.uuid4().hex}", record_runs=False, config={"allowedRoots": [str(inside)]}
    )
    ok = confined.run(
        image_flow(
            {
                "operation": "grayscale",
                "inputPath": str(inside / "in.png"),
                "outputPath": str(inside / "out.png"),
            }
        )
    )
    assert ok.status == "completed", ok.nodes["img"].error
    for params in (
        {"operation": "grayscale", "inputPath": base},  # reading another root
        {
            "operation": "grayscale",
            "inputPath": str(inside / "in.png"),
            "outputPath": str(inside / ".." / "escape.png"),
        },
    ):
        result = confined.run(image_flow(params))
        err = result.nodes["img"].error
        assert err is not None and err.code == "PATH_NOT_ALLOWED", err
    assert not (tmp_path / "escape.png").exists()
