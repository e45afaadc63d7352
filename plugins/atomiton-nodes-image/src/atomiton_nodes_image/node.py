"""The ``image`` node: its parameters and declaration. Pillow is imported only when it runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from atomiton_core import NodeContext, Parameters, node
from atomiton_core.nodes.definition import accepts_original_names
from pydantic import Field, field_validator, model_validator

__all__ = ["BLEND_MODES", "COMPOSITIONS", "ImageParams", "Point", "image"]

Operation = Literal[
    "resize",
    "crop",
    "rotate",
    "convert",
    "blur",
    "sharpen",
    "grayscale",
    "overlay",
    "composite",
    "blend",
    "merge",
    "watermark",
]
Fit = Literal["contain", "cover", "fill", "inside", "outside"]
Format = Literal["png", "jpeg", "jpg", "webp", "gif", "bmp", "tiff"]
NamedPosition = Literal[
    "top-left",
    "top",
    "top-center",
    "top-right",
    "left",
    "center-left",
    "center",
    "middle",
    "right",
    "center-right",
    "bottom-left",
    "bottom",
    "bottom-center",
    "bottom-right",
]


#: The original's blend modes (sharp's) that Pillow gives; ``normal`` is image-composite's
#: name for ``over``. Its Porter-Duff operators (``in``, ``dest-atop``...), ``exclusion``,
#: ``color-dodge`` and ``color-burn`` are refused when the flow is validated.
BLEND_MODES = (
    "over",
    "normal",
    "multiply",
    "screen",
    "overlay",
    "darken",
    "lighten",
    "hard-light",
    "soft-light",
    "difference",
    "add",
)
#: The original's image operations whose second images stack over the first.
COMPOSITIONS = ("overlay", "composite", "blend", "merge")


class _Model(Parameters):
    pass


class Point(_Model):
    """An explicit position: pixels from the top-left corner."""

    x: int
    y: int


class ImageParams(_Model):
    """The original's names are accepted too (its ``image`` and ``image-composite``
    definitions): ``images`` (the first is the image, the others are stacked over it),
    ``output``, ``outputFormat``, ``backgroundColor`` and ``padding``."""

    original_names: ClassVar[Mapping[str, str]] = {
        "images": "inputPath",
        "output": "outputPath",
        "outputFormat": "format",
        "backgroundColor": "background",
        "padding": "margin",
    }
    _original = accepts_original_names()

    @classmethod
    def from_original(cls, data: dict[str, Any]) -> dict[str, Any]:
        images = data.pop("images", None)
        if images is not None:
            if isinstance(images, str):
                images = [images]
            if not isinstance(images, list) or not images:
                raise ValueError("'images' must be a list of image paths, the first the base")
            for taken in ("inputPath", "input_path", "overlayPath", "overlay_path"):
                if taken in data:
                    raise ValueError(
                        f"'images' gives the image and the images over it: drop {taken!r}"
                    )
            data["inputPath"] = images[0]
            if len(images) > 1:
                data["overlayPath"] = images[1:]
            if data.get("operation") == "merge" and "direction" not in data:
                # the original's merge stacked the images over the first, it did not tile them
                data["operation"] = "overlay"
        if str(data.get("backgroundColor", "")).lower() == "transparent":
            data["backgroundColor"] = "#00000000"
        return super().from_original(data)

    operation: Operation = Field(
        "overlay", description="What to do with the image (the original's default: overlay)"
    )
    input_path: str | None = Field(
        None, description="Image to read (any fsspec URL) when the `input` port is not connected"
    )
    output_path: str | None = Field(
        None, description="Where to write the result (any fsspec URL); without it: bytes"
    )
    format: Format | None = Field(
        None, description="Output format; default: from outputPath's extension, else the input's"
    )
    quality: int = Field(90, ge=1, le=100, description="jpeg / webp quality")
    width: int | None = Field(None, gt=0, description="resize / crop: target width in pixels")
    height: int | None = Field(None, gt=0, description="resize / crop: target height in pixels")
    maintain_aspect_ratio: bool = Field(
        True, description="resize without `fit`: true = inside, false = fill"
    )
    fit: Fit | None = Field(
        None,
        description="resize with width and height: contain (letterbox), cover (crop), fill "
        "(stretch), inside (fit within), outside (cover both, no crop)",
    )
    scale: float | None = Field(
        None,
        gt=0,
        description="resize: factor; overlay / composite / watermark: the overlay's width as "
        "a fraction of the image's width",
    )
    left: int | None = Field(None, ge=0, description="crop: x of the box (default: by position)")
    top: int | None = Field(None, ge=0, description="crop: y of the box (default: by position)")
    angle: float | None = Field(None, description="rotate: degrees clockwise")
    position: NamedPosition | Point | None = Field(
        None,
        description="Where an overlay, watermark, crop box or contained image goes: a name "
        "(bottom-right, center...) or {x, y}; default center (watermark: bottom-right)",
    )
    margin: int = Field(0, ge=0, description="Pixels kept from the edges for named positions")
    opacity: float | None = Field(
        None,
        ge=0,
        le=1,
        description="overlay / watermark / blend strength (default 1; watermark and blend 0.5)",
    )
    blur: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Gaussian blur sigma, 0-100 (operation blur: default 2); else blur after it",
    )
    sharpen: bool = Field(False, description="Sharpen after the operation")
    grayscale: bool = Field(False, description="Convert to grayscale after the operation")
    background: str | None = Field(
        None,
        description="Colour for new pixels (contain, rotate, merge gaps) and for flattening "
        "transparency into jpeg; default transparent (jpeg: white)",
    )
    overlay_path: str | list[str] | None = Field(
        None,
        description="overlay / composite / blend / merge: the second image, or several (also "
        "the `overlay` port); overlay and composite stack each in turn",
    )
    blend_mode: str = Field(
        "over",
        json_schema_extra={"enum": list(BLEND_MODES)},
        description="How an overlay's colours mix with the image's: over (normal), multiply, "
        "screen, overlay, darken, lighten, hard-light, soft-light, difference, add",
    )
    direction: Literal["horizontal", "vertical"] = Field(
        "horizontal", description="merge: side by side or stacked"
    )
    watermark_path: str | None = Field(None, description="watermark: an image to stamp")
    watermark_text: str | None = Field(None, description="watermark: text to stamp")
    font_size: int | None = Field(
        None, gt=0, description="watermark text size in pixels (default: image height / 20)"
    )
    color: str = Field("#ffffff", description="watermark text colour")

    @field_validator("blend_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in BLEND_MODES:
            raise ValueError(
                f"blend mode {value!r} is not supported; the supported are "
                + ", ".join(BLEND_MODES)
            )
        return value

    def missing_inputs(self, connected: frozenset[str]) -> list[tuple[str, str]]:
        """What a run would lack given the ``connected`` input ports (see the io plugin's
        ``IOParams.missing_inputs``): the image, and for the compositions a second one. A
        list into ``input`` is the image and the images over it (the original's ``images``
        port), so with ``input`` connected a second image may come that way: only the run
        can tell (:meth:`lacking`)."""
        into_input = "input" in connected
        return self.lacking(image=into_input, second=into_input or "overlay" in connected)

    def lacking(self, *, image: bool, second: bool) -> list[tuple[str, str]]:
        """What a run lacks, given whether the ports brought an ``image`` and a ``second``
        one: before the run, whether they may (:meth:`missing_inputs`); in it, whether they
        did. (A watermark's second image is 'watermarkPath', not 'overlayPath'.)"""
        missing: list[tuple[str, str]] = []
        if self.input_path is None and not image:
            missing.append(("inputPath", "no image: connect the `input` port or set 'inputPath'"))
        if self.operation in COMPOSITIONS and not second and self.overlay_path is None:
            missing.append(
                (
                    "overlayPath",
                    f"operation {self.operation!r} needs a second image: connect the "
                    "`overlay` port or set 'overlayPath'",
                )
            )
        if (
            self.operation == "watermark"
            and not second
            and self.watermark_path is None
            and self.watermark_text is None
        ):
            missing.append(
                (
                    "watermarkPath",
                    "operation 'watermark' needs a second image: set 'watermarkPath' or "
                    "'watermarkText', or connect the `overlay` port",
                )
            )
        return missing

    @model_validator(mode="after")
    def _operation_needs(self) -> ImageParams:
        op = self.operation
        if op == "resize" and self.width is None and self.height is None and self.scale is None:
            raise ValueError("operation 'resize' needs 'width', 'height' or 'scale'")
        if op == "crop" and (self.width is None or self.height is None):
            raise ValueError("operation 'crop' needs 'width' and 'height'")
        if op == "rotate" and self.angle is None:
            raise ValueError("operation 'rotate' needs 'angle' (degrees clockwise)")
        if self.watermark_path is not None and self.watermark_text is not None:
            raise ValueError("give 'watermarkPath' or 'watermarkText', not both")
        return self


@node(
    "image",
    params=ImageParams,
    outputs={"output": dict, "result": Any, "metadata": dict},
    multiple=("overlay",),
    name="Image",
    category="media",
    icon="image",
    description="Resize, crop, rotate, convert (png / jpeg / webp), blur, sharpen, grayscale, "
    "overlay, blend, merge or watermark images; paths (any fsspec URL) or bytes in and out",
)
def image(
    ctx: NodeContext, params: ImageParams, input: Any = None, overlay: Any = None
) -> dict[str, Any]:
    """Process one image; see the README for each operation."""
    from atomiton_nodes_image.operations import process

    return process(ctx, params, input, overlay)
