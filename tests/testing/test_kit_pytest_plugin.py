"""The pytest plugin: marker, fixtures, and no cost for projects that do not use it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from atomiton_core import Conductor, ExecutionStatus, Flow, FlowStorage, NodeContext, hookimpl, node


@node("plug.hello", outputs={"greeting": str}, blocking=False)
def hello(ctx: NodeContext, params: BaseModel) -> dict[str, Any]:
    return {"greeting": "hello"}


class HelloPlugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [hello]


@pytest.mark.atomiton_plugins(HelloPlugin())
def test_marker_limits_the_plugins(atomiton_conductor: Conductor) -> None:
    assert "plug.hello" in atomiton_conductor.catalogue
    assert "transform" in atomiton_conductor.catalogue  # the core's own always load
    assert atomiton_conductor.storage is not None
    assert atomiton_conductor.storage.url.startswith("memory://atomiton-pytest-")
    flow = Flow.from_data({"id": "hi", "name": "hi", "nodes": [{"id": "h", "type": "plug.hello"}]})
    result = atomiton_conductor.run(flow)
    assert result.status is ExecutionStatus.COMPLETED
    assert result.outputs == {"h": {"greeting": "hello"}}


def test_storage_is_fresh_per_test(atomiton_storage: FlowStorage) -> None:
    assert atomiton_storage.url.startswith("memory://atomiton-pytest-")
    assert list(atomiton_storage.list()) == []
    atomiton_storage.save(Flow(id="kept", name="kept"))
    assert [f.id for f in atomiton_storage.list()] == ["kept"]


def test_plugin_module_is_light_and_registers_the_marker() -> None:
    code = (
        "import sys, atomiton_core.testing.pytest_plugin as p; "
        "print('hypothesis' in sys.modules, hasattr(p, 'atomiton_conductor'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_marker_is_registered(pytestconfig: pytest.Config) -> None:
    markers = pytestconfig.getini("markers")
    assert any(str(m).startswith("atomiton_plugins(") for m in markers)
