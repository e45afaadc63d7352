"""The Pillow side of the ``image`` node: read, process, encode, write.

Imported only when an image node runs, so building a catalogue never imports Pillow.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

from atomiton_core import ExecutionError, NodeContext, atomic_write_bytes
from PIL import (
    Image,
    ImageChops,
    ImageColor,
    ImageDraw,
    ImageFilter,
    ImageFont,
    ImageOps,
    UnidentifiedImageError,
)

from atomiton_nodes_image.node import COMPOSITIONS, ImageParams, Point

__all__ = ["process"]

_FORMATS = {
    "png": "PNG",
    "jpeg": "JPEG",
    "jpg": "JPEG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}
_NO_ALPHA = {"JPEG", "BMP"}
_SOURCE_KEYS = ("result", "path", "content", "data", "buffer", "image")
_LANCZOS = Image.Resampling.LANCZOS
#: How an overlay's RGB mixes with the image's, by the original's (sharp's) blend mode names.
_BLENDS: dict[str, Callable[[Image.Image, Image.Image], Image.Image]] = {
    "multiply": ImageChops.multiply,
    "screen": ImageChops.screen,
    "overlay": ImageChops.overlay,
    "darken": ImageChops.darker,
    "lighten": ImageChops.lighter,
    "hard-light": ImageChops.hard_light,
    "soft-light": ImageChops.soft_light,
    "difference": ImageChops.difference,
    "add": ImageChops.add,
}


class _Fail:
    """Builds errors that name the node."""

    def __init__(self, ctx: NodeContext) -> None:
        self.node_id = ctx.node_id
        self.ctx = ctx

    def __call__(self, message: str, hint: str | None = None) -> ExecutionError:
        return ExecutionError(message, node_id=self.node_id, hint=hint)


# -- reading and writing -------------------------------------------------------------------
def _describe(source: Any) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return f"input bytes ({len(source)} bytes)"
    return repr(source)


def _load(source: Any, what: str, fail: _Fail) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.copy()
    if isinstance(source, dict):
        for key in _SOURCE_KEYS:
            if source.get(key) is not None:
                return _load(source[key], what, fail)
        raise fail(
            f"{what}: a dict without any of the keys {list(_SOURCE_KEYS)}",
            hint="connect an image node's `output`, or a path / URL / bytes",
        )
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        loc = fail.ctx.resolve_path(source, what)  # refused outside allowedRoots
        try:
            with loc.fs.open(loc.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise fail(f"cannot read {what} {source!r}: no such file") from None
        except (OSError, ValueError, ImportError) as exc:
            raise fail(f"cannot read {what} {source!r}: {type(exc).__name__}: {exc}") from exc
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        raise fail(
            f"{what}: expected a path / URL, bytes or an image node's output, "
            f"got {type(source).__name__}"
        )
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise fail(
            f"cannot read {what} {_describe(source)}: not an image Pillow can read "
            f"({len(data)} bytes)",
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise fail(f"cannot read {what} {_describe(source)}: {exc}") from exc
    return img


def _render(ctx: NodeContext, value: str | None, input: Any) -> str | None:
    if value is None or "{{" not in value:
        return value
    return str(ctx.render(value, input=input))


def _output_format(params: ImageParams, output_path: str | None, source: Image.Image) -> str:
    if params.format is not None:
        return _FORMATS[params.format]
    if output_path is not None:
        ext = os.path.splitext(output_path.split("?", 1)[0])[1].lower()
        by_ext = Image.registered_extensions().get(ext)
        if by_ext is not None:
            return by_ext
    return source.format or "PNG"


def _colour(value: str | None, fail: _Fail, default: str) -> tuple[int, ...]:
    try:
        return tuple(ImageColor.getrgb(value or default))
    except ValueError:
        raise fail(f"colour {value!r} is not valid", hint="e.g. '#ff000080', 'white'") from None


def _flatten(img: Image.Image, background: tuple[int, ...]) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background[:3], 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("L" if img.mode == "LA" else "RGB")
    if img.mode not in ("RGB", "L", "CMYK"):
        return img.convert("RGB")
    return img


def _encode(img: Image.Image, fmt: str, params: ImageParams, fail: _Fail) -> bytes:
    options: dict[str, Any] = {}
    if fmt in _NO_ALPHA:
        img = _flatten(img, _colour(params.background, fail, "white"))
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = params.quality
    buffer = io.BytesIO()
    try:
        img.save(buffer, format=fmt, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot encode the result as {fmt}: {exc}") from exc
    return buffer.getvalue()


def _write(path: str, data: bytes, fail: _Fail) -> None:
    loc = fail.ctx.resolve_path(path, "outputPath")  # refused outside allowedRoots
    try:
        atomic_write_bytes(loc.path, data, fs=loc.fs)
    except (OSError, ValueError, ImportError) as exc:
        raise fail(f"cannot write outputPath {path!r}: {type(exc).__name__}: {exc}") from exc


# -- geometry ------------------------------------------------------------------------------
def _place(
    outer: tuple[int, int], inner: tuple[int, int], position: Any, margin: int
) -> tuple[int, int]:
    if isinstance(position, Point):
        return position.x, position.y
    name = str(position)
    horizontal = "left" if "left" in name else "right" if "right" in name else "center"
    vertical = "top" if "top" in name else "bottom" if "bottom" in name else "center"
    free_x, free_y = outer[0] - inner[0], outer[1] - inner[1]
    x = {"left": margin, "center": free_x // 2, "right": free_x - margin}[horizontal]
    y = {"top": margin, "center": free_y // 2, "bottom": free_y - margin}[vertical]
    return x, y


def _centering(position: Any) -> tuple[float, float]:
    if isinstance(position, Point) or position is None:
        return 0.5, 0.5
    x, y = _place((2, 2), (0, 0), position, 0)
    return x / 2, y / 2


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def _restore_mode(result: Image.Image, original: Image.Image) -> Image.Image:
    """After compositing in RGBA: back to an alpha-less mode if the base had no alpha."""
    if _has_alpha(original) or result.mode != "RGBA":
        return result
    if result.getchannel("A").getextrema() != (255, 255):
        return result
    return result.convert("L" if original.mode == "L" else "RGB")


def _scaled(overlay: Image.Image, base: Image.Image, scale: float | None) -> Image.Image:
    if scale is None:
        return overlay
    width = max(1, round(base.width * scale))
    height = max(1, round(overlay.height * width / overlay.width))
    return overlay.resize((width, height), _LANCZOS)


def _with_opacity(img: Image.Image, opacity: float) -> Image.Image:
    img = img.convert("RGBA")
    if opacity < 1:
        alpha = img.getchannel("A").point(lambda a: round(a * opacity))
        img.putalpha(alpha)
    return img


# -- operations ----------------------------------------------------------------------------
class _Job:
    def __init__(
        self, ctx: NodeContext, params: ImageParams, input: Any, overlays: list[Any]
    ) -> None:
        self.ctx = ctx
        self.params = params
        self.input = input
        self.overlays = overlays
        self.fail = _Fail(ctx)

    def position(self, default: str = "center") -> Any:
        return self.params.position if self.params.position is not None else default

    def opacity(self, default: float = 1.0) -> float:
        return self.params.opacity if self.params.opacity is not None else default

    def second_images(self, op: str, path: str | list[str] | None) -> list[Image.Image]:
        sources = list(self.overlays)
        for one in [path] if isinstance(path, str) or path is None else path:
            rendered = _render(self.ctx, one, self.input)
            if rendered is not None:
                sources.append(rendered)
        if not sources:
            raise self.fail(
                f"operation {op!r} needs a second image",
                hint="connect the `overlay` port or set 'overlayPath'"
                if op != "watermark"
                else "set 'watermarkPath' or 'watermarkText', or connect the `overlay` port",
            )
        return [_load(s, f"{op} image", self.fail) for s in sources]

    def resize(self, img: Image.Image, default_fit: str | None = None) -> Image.Image:
        p = self.params
        w0, h0 = img.size
        if p.width is None and p.height is None:
            assert p.scale is not None
            size = (max(1, round(w0 * p.scale)), max(1, round(h0 * p.scale)))
            return img.resize(size, _LANCZOS)
        fit = p.fit or default_fit or ("inside" if p.maintain_aspect_ratio else "fill")
        if p.width is None or p.height is None:
            keep = fit != "fill"
            if p.width is not None:
                size = (p.width, max(1, round(h0 * p.width / w0)) if keep else h0)
            else:
                assert p.height is not None
                size = (max(1, round(w0 * p.height / h0)) if keep else w0, p.height)
            return img.resize(size, _LANCZOS)
        target = (p.width, p.height)
        if fit == "fill":
            return img.resize(target, _LANCZOS)
        if fit == "cover":
            return ImageOps.fit(img, target, _LANCZOS, centering=_centering(p.position))
        ratio = (min if fit in ("inside", "contain") else max)(p.width / w0, p.height / h0)
        scaled = img.resize((max(1, round(w0 * ratio)), max(1, round(h0 * ratio))), _LANCZOS)
        if fit != "contain":
            return scaled
        background = _colour(p.background, self.fail, "#00000000")
        mode = "RGBA" if _has_alpha(img) or len(background) == 4 else "RGB"
        canvas = Image.new(mode, target, background if mode == "RGBA" else background[:3])
        canvas.paste(scaled.convert(mode), _place(target, scaled.size, self.position(), 0))
        return canvas

    def crop(self, img: Image.Image) -> Image.Image:
        p = self.params
        assert p.width is not None and p.height is not None
        x, y = _place(img.size, (p.width, p.height), self.position(), p.margin)
        left = p.left if p.left is not None else x
        top = p.top if p.top is not None else y
        box = (left, top, left + p.width, top + p.height)
        if left < 0 or top < 0 or box[2] > img.width or box[3] > img.height:
            raise self.fail(
                f"crop box {box} (left, top, right, bottom) does not fit the "
                f"{img.width}x{img.height} image",
                hint="make width/height smaller or move left/top",
            )
        return img.crop(box)

    def rotate(self, img: Image.Image) -> Image.Image:
        p = self.params
        assert p.angle is not None
        turns = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180}
        turns[270] = Image.Transpose.ROTATE_90
        angle = p.angle % 360
        if angle == 0:
            return img
        if angle in turns:
            return img.transpose(turns[int(angle)])
        if p.background is None and not _has_alpha(img):
            img = img.convert("RGBA")
        fill = _colour(p.background, self.fail, "#00000000")
        if img.mode not in ("RGBA", "RGB"):
            img = img.convert("RGBA")
        fill = fill if img.mode == "RGBA" else fill[:3]
        return img.rotate(-angle, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)

    def overlay(self, img: Image.Image, op: str = "overlay") -> Image.Image:
        for second in self.second_images(op, self.params.overlay_path):
            img = self.stamp(img, second, self.position(), self.opacity())
        return img

    def stamp(
        self, img: Image.Image, second: Image.Image, position: Any, opacity: float
    ) -> Image.Image:
        layer_src = _with_opacity(_scaled(second, img, self.params.scale), opacity)
        base = img.convert("RGBA")
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        layer.paste(layer_src, _place(base.size, layer_src.size, position, self.params.margin))
        mix = _BLENDS.get(self.params.blend_mode)
        if mix is not None:  # the mixed colours, where the layer covers the image
            rgb = mix(base.convert("RGB"), layer.convert("RGB"))
            layer = Image.merge("RGBA", (*rgb.split(), layer.getchannel("A")))
        return _restore_mode(Image.alpha_composite(base, layer), img)

    def blend(self, img: Image.Image) -> Image.Image:
        second = self.second_images("blend", self.params.overlay_path)[0]
        base = img.convert("RGBA")
        other = second.convert("RGBA").resize(base.size, _LANCZOS)
        return _restore_mode(Image.blend(base, other, self.opacity(0.5)), img)

    def merge(self, img: Image.Image) -> Image.Image:
        p = self.params
        images = [img, *self.second_images("merge", p.overlay_path)]
        horizontal = p.direction == "horizontal"
        gap = p.margin * (len(images) - 1)
        if horizontal:
            size = (sum(i.width for i in images) + gap, max(i.height for i in images))
        else:
            size = (max(i.width for i in images), sum(i.height for i in images) + gap)
        background = _colour(p.background, self.fail, "#00000000")
        canvas = Image.new("RGBA", size, background if len(background) == 4 else (*background, 255))
        offset = 0
        for part in images:
            rgba = part.convert("RGBA")
            if horizontal:
                x, y = offset, _place(size, part.size, self.position(), 0)[1]
                offset += part.width + p.margin
            else:
                x, y = _place(size, part.size, self.position(), 0)[0], offset
                offset += part.height + p.margin
            canvas.alpha_composite(rgba, (x, y))
        return canvas

    def watermark(self, img: Image.Image) -> Image.Image:
        p = self.params
        position = self.position("bottom-right")
        opacity = self.opacity(0.5)
        text = _render(self.ctx, p.watermark_text, self.input)
        if text is None:
            second = self.second_images("watermark", p.watermark_path)[0]
            return self.stamp(img, second, position, opacity)
        size = p.font_size or max(10, img.height // 20)
        font = ImageFont.load_default(size=size)
        base = img.convert("RGBA")
        layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        left, top, right, bottom = (round(v) for v in draw.textbbox((0, 0), text, font=font))
        x, y = _place(base.size, (right - left, bottom - top), position, p.margin)
        colour = _colour(p.color, self.fail, "white")
        alpha = colour[3] if len(colour) == 4 else 255
        draw.text((x - left, y - top), text, font=font, fill=(*colour[:3], round(alpha * opacity)))
        return _restore_mode(Image.alpha_composite(base, layer), img)

    def run(self, img: Image.Image) -> Image.Image:
        p = self.params
        op = p.operation
        steps: dict[str, Callable[[Image.Image], Image.Image]] = {
            "resize": self.resize,
            "crop": self.crop,
            "rotate": self.rotate,
            "convert": lambda i: i,
            "blur": lambda i: _filter(i, ImageFilter.GaussianBlur(2 if p.blur is None else p.blur)),
            "sharpen": lambda i: _filter(i, ImageFilter.SHARPEN),
            "grayscale": _grayscale,
            "overlay": self.overlay,
            "composite": lambda i: self.overlay(i, "composite"),
            "blend": self.blend,
            "merge": self.merge,
            "watermark": self.watermark,
        }
        if op in COMPOSITIONS and (p.width is not None or p.height is not None):
            img = self.resize(img, "cover")  # as the original: the base first, cover by default
        out = steps[op](img)
        if p.grayscale and op != "grayscale":
            out = _grayscale(out)
        if p.blur and op != "blur":
            out = _filter(out, ImageFilter.GaussianBlur(p.blur))
        if p.sharpen and op != "sharpen":
            out = _filter(out, ImageFilter.SHARPEN)
        return out


def _grayscale(img: Image.Image) -> Image.Image:
    return img.convert("LA" if _has_alpha(img) else "L")


def _filter(img: Image.Image, kernel: Any) -> Image.Image:
    if img.mode in ("P", "1", "I;16"):
        img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    return img.filter(kernel)


def process(ctx: NodeContext, params: ImageParams, input: Any, overlay: Any) -> dict[str, Any]:
    fail = _Fail(ctx)
    if overlay is None:
        overlays: list[Any] = []
    elif isinstance(overlay, list):
        overlays = [o for o in overlay if o is not None]
    else:
        overlays = [overlay]
    if isinstance(input, list | tuple):  # the original's `images`: the base, then the others
        images = [i for i in input if i is not None]
        input = images[0] if images else None
        overlays = images[1:] + overlays
    missing = params.lacking(image=bool(input), second=bool(overlays))
    if missing:
        raise ExecutionError(missing[0][1], node_id=ctx.node_id, parameter=missing[0][0])
    source: Any = input if input is not None else _render(ctx, params.input_path, input)
    if source is None:
        raise fail("no image: 'inputPath' rendered nothing")
    img = _load(source, "image", fail)
    ctx.progress(0.3, "decoded")
    try:
        result_img = _Job(ctx, params, input, overlays).run(img)
    except (ValueError, OSError) as exc:
        raise fail(
            f"operation {params.operation!r} failed on the {img.width}x{img.height} {img.mode} "
            f"image: {type(exc).__name__}: {exc}"
        ) from exc
    output_path = _render(ctx, params.output_path, input)
    fmt = _output_format(params, output_path, img)
    data = _encode(result_img, fmt, params, fail)
    if ctx.cancelled:
        raise fail("cancelled before writing the result")
    result: Any = data
    if output_path is not None:
        _write(output_path, data, fail)
        result = output_path
    metadata = {
        "width": result_img.width,
        "height": result_img.height,
        "format": fmt.lower(),
        "size": len(data),
    }
    return {"output": {"result": result, **metadata}, "result": result, "metadata": metadata}
