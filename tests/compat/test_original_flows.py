"""The three example flows the original shipped (tests/fixtures/atomiton-flows/, read at commit
723faa4b) run here: migrated by ``atomiton migrate`` and, with atomiton-lang-js installed, as
written. Each runs on sample data the test makes, in a folder of its own."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from atomiton_core import Conductor, create_conductor, loads_flow
from atomiton_core.flow.migrate import migrate

ORIGINALS = Path(__file__).parents[1] / "fixtures" / "atomiton-flows"
HAS_JS = importlib.util.find_spec("atomiton_lang_js") is not None


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the flow runs in (hello-world writes to a path relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def engine(here: Path) -> Conductor:
    made = create_conductor(here / "store", record_runs=False)
    yield made
    made.close()


def _original(name: str) -> str:
    return (ORIGINALS / f"{name}.flow.yaml").read_text()


def _check_hello(here: Path) -> None:
    """What the flow's description promises: a message, made and formatted, in a file."""
    (text,) = json.loads((here / ".tmp" / "hello-world-output.txt").read_text())
    lines = text.split("\n")
    assert lines[0] == "Hello World from Atomiton!"
    assert "This is a simple example showing how Flow nodes work together." in lines
    stamp = lines[-1].removeprefix("Generated at: ")
    assert len(stamp) == 24 and stamp.endswith("Z") and stamp[19] == "."  # toISOString()


def test_hello_world_migrated_runs_without_javascript(engine: Conductor, here: Path) -> None:
    done = migrate(_original("hello-world"), engine.catalogue)
    assert done.ok, done.report()
    flow = done.flow()
    formatted = flow.nodes[1].parameters
    assert "transformFunction" not in formatted
    assert formatted["expression"].startswith("item.message ~")
    assert engine.validate(flow).problems == []
    result = engine.run(flow)
    assert result.ok, result.error
    _check_hello(here)


@pytest.mark.skipif(not HAS_JS, reason="atomiton-lang-js is not installed")
def test_hello_world_as_written_runs_its_javascript(engine: Conductor, here: Path) -> None:
    flow = loads_flow(_original("hello-world"))
    assert flow.nodes[1].parameters["transformFunction"].lstrip().startswith("item =>")
    result = engine.run(flow)
    assert result.ok, result.error
    _check_hello(here)


def test_image_processor_migrated_resizes_watermarks_and_saves_every_image(
    engine: Conductor, here: Path
) -> None:
    """Its description: batch process images (the folder's jpg, png and gif) in parallel,
    each resized to 800x600 (aspect kept), watermarked bottom-right, saved to the output
    folder."""
    pytest.importorskip("PIL")
    from PIL import Image

    source, assets = here / "in", here / "assets"
    source.mkdir()
    assets.mkdir()
    colours = {"a.jpg": (200, 0, 0), "b.png": (0, 200, 0), "c.gif": (0, 0, 200)}
    for name, colour in colours.items():
        Image.new("RGB", (1600, 1200), colour).save(source / name)
    (source / "notes.txt").write_text("not an image")
    Image.new("RGBA", (400, 200), (255, 255, 255, 255)).save(assets / "watermark.png")
    text = _original("image-processor")
    for old, new in (
        ("/images/input", str(source)),
        ("/assets/watermark.png", str(assets / "watermark.png")),
        ("/images/output", str(here / "out")),
    ):
        text = text.replace(old, new)
    done = migrate(text, engine.catalogue)
    assert done.ok, done.report()
    flow = done.flow()
    assert engine.validate(flow).errors == []
    result = engine.run(flow)
    assert result.ok, result.error
    assert result.outputs["image-loop"]["iterationCount"] == 3
    assert sorted(p.name for p in (here / "out").iterdir()) == sorted(colours)
    for name, colour in colours.items():
        with Image.open(here / "out" / name) as saved:
            assert saved.format == "JPEG" and saved.size == (800, 600)  # format: jpeg
            rgb = saved.convert("RGB")
            far = rgb.getpixel((5, 5))  # the image itself
            assert all(abs(a - b) < 16 for a, b in zip(far, colour, strict=True))
            mark = rgb.getpixel((800 - 30, 600 - 20))  # under the watermark: lighter
            assert sum(mark) > sum(far) + 100, (name, mark, far)
