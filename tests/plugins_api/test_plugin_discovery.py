"""Node types arrive through entry points: a package made here, in tmp_path, adds one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atomiton_core import Catalogue, PluginWarning, create_conductor, loads_flow, wire
from atomiton_core.errors import NodeDefinitionError

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]

PLUGIN_SOURCE = """
from pydantic import BaseModel, Field
from atomiton_core import hookimpl, node


class ScaleParams(BaseModel):
    factor: float = Field(2, description="Multiplier")


@node("acme.scale", params=ScaleParams, outputs={"value": float},
      name="Scale", category="data", description="Multiply a number")
async def scale(ctx, params: ScaleParams, value: float) -> dict:
    return {"value": value * params.factor}


@node("acme.source", outputs={"value": float}, blocking=False)
def source(ctx, params) -> dict:
    return {"value": float(ctx.variables.get("start", 1))}


@hookimpl
def atomiton_node_types():
    return [scale, source]
"""

FLOW = """
id: acme-flow
name: Acme flow
variables:
  start: {type: number, defaultValue: 3}
nodes:
  - {id: src, type: acme.source}
  - {id: double, type: acme.scale, parameters: {factor: 2}}
  - {id: triple, type: acme.scale, parameters: {factor: 3}}
edges:
  - {source: src, sourceHandle: value, target: double, targetHandle: value}
  - {source: double, sourceHandle: value, target: triple, targetHandle: value}
"""


def make_distribution(root: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    """A package plus its .dist-info, exactly what pip leaves in site-packages."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[atomiton]\n{ep_name} = {module}\n")
    (info / "RECORD").write_text("")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh directory on sys.path, as a third-party site-packages would be."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("ATOMITON_PLUGINS", raising=False)
    monkeypatch.delenv("ATOMITON_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield root
    for name in list(sys.modules):
        if name.startswith("acme_") or name.startswith("broken_") or name.startswith("rival_"):
            del sys.modules[name]


def test_installed_package_contributes_node_types(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "acme-nodes", "acme_nodes_plugin", PLUGIN_SOURCE, "acme")
    conductor = create_conductor(f"memory://p-{uuid.uuid4().hex}", record_runs=False)
    assert conductor.catalogue["acme.scale"].distribution == "acme-nodes"
    assert conductor.catalogue["transform"].distribution == "atomiton-core"
    result = conductor.run(loads_flow(FLOW))
    assert result.ok, result.error
    assert result.outputs == {"triple": {"value": 18.0}}
    schema = conductor.catalogue["acme.scale"].params_schema()
    assert schema["properties"]["factor"]["description"] == "Multiplier"
    ports = wire.dump(conductor.catalogue["acme.scale"])
    assert ports["inputs"] == [
        {
            "name": "value",
            "type": "number",
            "required": True,
            "default": None,
            "multiple": False,
            "description": "",
        }
    ]

    # the CLI sees it too, in a fresh process
    listing = subprocess.run(
        [*ATOMITON, "nodes", "--json"], capture_output=True, text=True, check=True
    )
    types = {t["id"]: t for t in json.loads(listing.stdout)["nodeTypes"]}
    assert types["acme.scale"]["distribution"] == "acme-nodes"
    flow_file = tmp_path / "acme.flow.yaml"
    flow_file.write_text(FLOW)
    ran = subprocess.run(
        [
            *ATOMITON,
            "run",
            str(flow_file),
            "--json",
            "--input",
            "start=5",
            "--storage",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outputs"] == {"triple": {"value": 30.0}}


def test_allow_list_and_autoload_switches(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_distribution(site, "acme-nodes", "acme_nodes_plugin", PLUGIN_SOURCE, "acme")
    assert "acme.scale" in Catalogue.load()
    monkeypatch.setenv("ATOMITON_DISABLE_PLUGIN_AUTOLOAD", "1")
    off = Catalogue.load()
    assert "acme.scale" not in off and "transform" in off  # the core's own still load
    monkeypatch.setenv("ATOMITON_PLUGINS", "acme-nodes")
    assert "acme.scale" in Catalogue.load()
    monkeypatch.delenv("ATOMITON_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("ATOMITON_PLUGINS", "someone-else")
    assert "acme.scale" not in Catalogue.load()
    assert "acme.scale" not in Catalogue.load(autoload=False)


def test_broken_plugin_is_reported_naming_its_distribution(site: Path) -> None:
    make_distribution(
        site, "broken-nodes", "broken_nodes_plugin", "raise ImportError('needs libfoo')\n", "broken"
    )
    make_distribution(site, "acme-nodes", "acme_nodes_plugin", PLUGIN_SOURCE, "acme")
    with pytest.warns(PluginWarning, match="broken-nodes.*needs libfoo"):
        catalogue = Catalogue.load()
    assert "acme.scale" in catalogue  # the others still load
    assert [p.code for p in catalogue.problems] == ["PLUGIN_LOAD_FAILED"]
    assert catalogue.problems[0].distribution == "broken-nodes"


def test_two_plugins_claiming_one_type_are_named(site: Path) -> None:
    make_distribution(site, "acme-nodes", "acme_nodes_plugin", PLUGIN_SOURCE, "acme")
    make_distribution(site, "rival-nodes", "rival_nodes_plugin", PLUGIN_SOURCE, "rival")
    with pytest.warns(PluginWarning) as caught:
        catalogue = Catalogue.load()
    message = str(caught[0].message)
    assert "acme.scale" in message and "acme-nodes" in message and "rival-nodes" in message
    assert any(p.code == "DUPLICATE_NODE_TYPE" for p in catalogue.problems)


def test_each_conductor_owns_its_plugins() -> None:
    from atomiton_core import hookimpl, node

    @node("local.only", outputs={"x": int}, blocking=False)
    def local_only(ctx, params):  # type: ignore[no-untyped-def]
        return {"x": 1}

    class Plugin:
        @hookimpl
        def atomiton_node_types(self):  # type: ignore[no-untyped-def]
            return [local_only]

    a = create_conductor("memory://own-a", plugins=[Plugin()], record_runs=False)
    b = create_conductor("memory://own-b", record_runs=False)
    assert "local.only" in a.catalogue
    assert "local.only" not in b.catalogue


def test_bad_node_declarations_fail_at_definition_time() -> None:
    from pydantic import BaseModel

    from atomiton_core import node

    with pytest.raises(NodeDefinitionError, match="not valid"):
        node("bad id!")
    with pytest.raises(NodeDefinitionError, match=r"\(ctx, params"):
        node("ok.type")(lambda: None)

    class Reserved(BaseModel):
        timeout: int = 1

    with pytest.raises(NodeDefinitionError, match="reserved"):
        node("ok.type", params=Reserved)
    with pytest.raises(NodeDefinitionError, match="must be a pydantic"):
        node("ok.type", params=dict)  # type: ignore[arg-type]


def test_plugin_returning_garbage_is_named() -> None:
    from atomiton_core import PluginWarning, hookimpl

    class Garbage:
        @hookimpl
        def atomiton_node_types(self):  # type: ignore[no-untyped-def]
            return ["not a node"]

    with pytest.warns(PluginWarning, match="expected node types made with @node") as caught:
        catalogue = Catalogue.load([Garbage()], autoload=False)
    assert "Garbage" in str(caught[0].message)  # the plugin is named
    assert [p.code for p in catalogue.problems] == ["PLUGIN_BAD_RETURN"]
    assert "edit-fields" in catalogue  # the others keep working


def test_hookimpl_with_wrong_signature_is_refused_at_register() -> None:
    from atomiton_core import PluginError, hookimpl

    class Wrong:
        @hookimpl
        def atomiton_node_types(self, unexpected):  # type: ignore[no-untyped-def]
            return []

    with pytest.raises(PluginError, match="unexpected"):
        Catalogue.load([Wrong()], autoload=False)
