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


def test_image_processor_migrated_nests_its_per_item_work_and_validates(
    engine: Conductor,
) -> None:
    done = migrate(_original("image-processor"), engine.catalogue)
    flow = done.flow()
    loop = next(n for n in flow.nodes if n.id == "image-loop")
    assert [n.id for n in loop.nodes or []] == ["parallel-processor"]
    assert engine.validate(flow).errors == []
