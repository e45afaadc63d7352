"""The documentation site: it builds with ``mkdocs build --strict``, and what it must show is
there.

The site is built once per session into a temporary folder, from the repository's
``mkdocs.yml`` (the generated reference comes from ``docs/_gen/hooks.py``, run by that build).
Every public name, node type, hook, signal, CLI command and HTTP route must appear in it, and
every public name must have a docstring, read as the site reads it (griffe, with the
``#:`` comments of attributes). The flow JSON Schema the package ships is checked against the
models it comes from and against real flow files.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
_spec = importlib.util.spec_from_file_location("atomiton_docs_hooks", ROOT / "docs/_gen/hooks.py")
assert _spec is not None and _spec.loader is not None
#: The site's generator (needs the docs extra: pip install -e '.[docs]').
docs_hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_hooks)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built with ``mkdocs build --strict`` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def page(site: Path, path: str) -> str:
    found = site / path / "index.html"
    assert found.is_file(), f"no page {path} in the built site"
    return html.unescape(found.read_text())


def ids(text: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', text))


def text_of(markup: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", markup).split())


# -- the build --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_strict_with_every_part(built_site: Path) -> None:
    for path in [
        "getting-started",
        "concepts",
        "user-guide",
        "embedding",
        "node-authors",
        "testing-nodes",
        "cluster",
        "server",
        "editor",
        "compatibility",
        "reference/api",
        "reference/nodes",
        "reference/flow-format",
        "reference/cli",
        "reference/http-api",
        "reference/hooks",
        "reference/signals",
        "reference/errors",
    ]:
        page(built_site, path)
    assert (built_site / "index.html").is_file()
    assert json.loads((built_site / "reference" / "openapi.json").read_text())["paths"]
    assert json.loads((built_site / "reference" / "flow.schema.json").read_text())["properties"]


@pytest.mark.slow
def test_the_site_needs_nothing_from_the_network(built_site: Path) -> None:
    """No web fonts, scripts or styles from elsewhere: the built_site reads the same offline."""
    for path in built_site.rglob("*.html"):
        for ref in re.findall(
            r'<(?:script|link)\b[^>]*\b(?:src|href)="(https?:[^"]+)"', path.read_text()
        ):
            pytest.fail(f"{path.relative_to(built_site)} loads {ref}")


# -- what the built_site shows ----------------------------------------------------------------------


def _api_ids(site: Path) -> set[str]:
    found: set[str] = set()
    for path in (site / "reference").rglob("*.html"):
        found |= ids(path.read_text())
    return found


@pytest.mark.slow
def test_every_public_name_is_in_the_api_reference(built_site: Path) -> None:
    import atomiton_core

    anchors = _api_ids(built_site)
    missing = []
    for module_name in docs_hooks.DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if _is_signal(value):
                continue  # on the signals page, by their doc=: see the test below
            if isinstance(value, type(atomiton_core)):  # a module: a page of its own
                page_name = docs_hooks.API_MODULES.get(value.__name__, (name, ""))[0]
                if name != "signals" and not (built_site / f"reference/api/{page_name}").is_dir():
                    missing.append(f"{module_name}.{name}")
                continue
            wanted = {f"{module_name}.{name}"}
            if module is atomiton_core:  # or under the module it comes from (errors)
                wanted.add(f"{atomiton_core._ORIGIN[name]}.{name}")
            if not wanted & anchors:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names with no entry in the API reference: {missing}"


def _is_signal(value: Any) -> bool:
    from blinker import NamedSignal

    return isinstance(value, NamedSignal)


@pytest.mark.slow
def test_every_node_type_is_in_the_catalogue_page(built_site: Path) -> None:
    from atomiton_core import Catalogue

    text = page(built_site, "reference/nodes")
    anchors = ids(text)
    catalogue = Catalogue.load()
    assert len(catalogue) >= 10
    for type_id, node_type in catalogue.items():
        assert docs_hooks.slug(f"node-{type_id}") in anchors, f"node type {type_id} has no section"
        for port in [*node_type.inputs, *node_type.outputs]:
            assert f"<code>{port}</code>" in text, f"{type_id}: port {port} is not shown"
        for prop in node_type.params_schema().get("properties", {}):
            assert f"<code>{prop}</code>" in text, f"{type_id}: parameter {prop} is not shown"
    assert "execution-settings" in anchors
    for setting in ("continueOnFail", "retryDelay", "memoryLimit", "cacheTtl"):
        assert f"<code>{setting}</code>" in text


@pytest.mark.slow
def test_parameters_show_their_types_defaults_and_bounds(built_site: Path) -> None:
    text = text_of(page(built_site, "reference/nodes"))
    # transform's depth: an integer, 1 by default, from 1 to 10
    assert re.search(r"depth integer 1 ≥ 1; ≤ 10 flatten: how many levels", text), text[:2000]
    assert "one of map , filter , reduce" in text


@pytest.mark.slow
def test_every_hook_is_on_the_hooks_page(built_site: Path) -> None:
    from atomiton_core import hookspecs

    anchors = ids(page(built_site, "reference/hooks"))
    hooks = [
        n
        for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "atomiton_spec")
    ]
    assert len(hooks) >= 7
    for name in hooks:
        assert f"atomiton_core.hookspecs.{name}" in anchors, f"hook {name} is not documented"


@pytest.mark.slow
def test_every_signal_is_on_the_signals_page_with_its_doc(built_site: Path) -> None:
    from atomiton_core import signals

    text = page(built_site, "reference/signals")
    plain = text_of(text)
    found = [n for n in signals.__all__ if _is_signal(getattr(signals, n))]
    assert len(found) >= 14
    for name in found:
        signal = getattr(signals, name)
        assert f'id="signal-{name}"' in text, f"signal {name} is not on the signals page"
        assert " ".join(text_of(signal.__doc__).split()) in plain, (
            f"the doc= of {name} is not shown"
        )


def _commands(group: Any, prefix: str) -> Iterator[str]:
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        yield f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


@pytest.mark.slow
def test_every_cli_command_is_on_the_cli_page(built_site: Path) -> None:
    from atomiton_core.cli import main

    text = text_of(page(built_site, "reference/cli"))
    commands = list(_commands(main, "atomiton"))
    assert len(commands) >= 20
    for command in commands:
        assert command in text, f"{command!r} is not on the CLI page"


@pytest.mark.slow
def test_every_http_route_is_on_the_http_page(built_site: Path) -> None:
    from starlette.routing import Mount

    from atomiton_core import create_conductor
    from atomiton_core.server.app import create_app

    text = page(built_site, "reference/http-api")
    served = json.loads((built_site / "reference" / "openapi.json").read_text())
    conductor = create_conductor("memory://docs-site-routes")
    try:
        app = create_app(conductor, token="t", triggers=False)
    finally:
        conductor.close()
    assert len(app.routes) >= 20
    for route in app.routes:
        path = re.sub(r"{(\w+)(?::\w+)?}", r"{\1}", route.path)
        if isinstance(route, Mount):
            path = path.rstrip("/") + "/{path}"
        assert path in served["paths"], f"route {path} is not in openapi.json"
        methods = sorted(m for m in (getattr(route, "methods", None) or {"GET"}) if m != "HEAD")
        for method in methods:
            assert f"{method} {path}</code>" in text, f"{method} {path} is not on the HTTP page"
    assert "swagger-ui" in text or "iframe" in text


# -- docstrings -------------------------------------------------------------------------------


def undocumented() -> list[str]:
    """Public names of the documented modules, and the public methods of their classes,
    without a docstring as the site reads them (a signal's ``doc=`` counts as one)."""
    import griffe

    loader = griffe.GriffeLoader(
        search_paths=[str(ROOT)], extensions=griffe.load_extensions("griffe_sphinx")
    )
    package = loader.load("atomiton_core")
    loader.resolve_aliases(external=False, implicit=False)
    found: set[str] = set()
    for module_name in docs_hooks.DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        node = (
            package
            if module_name == "atomiton_core"
            else package[module_name.removeprefix("atomiton_core.")]
        )
        for name in module.__all__:
            if _is_signal(getattr(module, name)):
                if not (getattr(module, name).__doc__ or "").strip():
                    found.add(f"{module_name}.{name} (doc=)")
                continue
            member = node[name]
            target = member.final_target if member.is_alias else member
            where = target.relative_filepath
            if not target.docstring:
                found.add(f"{target.path} ({where})")
            if target.is_class:
                for sub_name, sub in target.members.items():
                    sub = sub.final_target if sub.is_alias else sub
                    if sub_name.startswith("_") or sub.is_attribute or sub.is_alias:
                        continue
                    if not sub.docstring:
                        found.add(f"{target.path}.{sub_name} ({sub.relative_filepath})")
    return sorted(found)


_MISSING = undocumented()


def test_every_public_name_has_a_docstring() -> None:
    assert not _MISSING, "public names without a docstring:\n  " + "\n  ".join(_MISSING)


# -- the flow JSON Schema ---------------------------------------------------------------------

FLOW_FILES = sorted(
    [
        *ROOT.glob("examples/*.flow.yaml"),
        *ROOT.glob("tests/fixtures/atomiton-flows/*.flow.yaml"),
        *ROOT.glob("plugins/*/examples/*.flow.yaml"),
    ]
)


def _validator() -> Any:
    import jsonschema

    from atomiton_core.schemas import load_flow_schema

    schema = load_flow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _data(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def test_the_shipped_flow_schema_is_the_models_schema() -> None:
    from atomiton_core.schemas import FLOW_SCHEMA_FILE, flow_schema_text

    shipped = (ROOT / "atomiton_core" / "schemas" / FLOW_SCHEMA_FILE).read_text()
    assert shipped == flow_schema_text(), (
        "atomiton_core/schemas/flow.schema.json is out of date with the flow models: "
        "run `python -m atomiton_core.schemas` and commit the file"
    )


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_flow_schema_accepts_the_example_and_original_flows(path: Path) -> None:
    errors = [e.message for e in _validator().iter_errors(_data(path.read_text()))]
    assert not errors, f"{path.name}: {errors}"


def test_the_flow_files_checked_include_the_original_ones() -> None:
    names = {p.name for p in FLOW_FILES}
    assert {
        "hello-world.flow.yaml",
        "data-transform.flow.yaml",
        "image-processor.flow.yaml",
    } <= names
    assert "order-report.flow.yaml" in names


BROKEN = {
    "no name": "id: f\nnodes: []\n",
    "nodes not a list": "id: f\nname: F\nnodes: {a: 1}\n",
    "a node without a type": "id: f\nname: F\nnodes:\n  - {id: a}\n",
    "an edge without a target": "id: f\nname: F\nnodes: []\nedges:\n  - {source: a}\n",
    "concurrency 0": "id: f\nname: F\nsettings: {runtime: {concurrency: 0}}\n",
    "a trigger of no known type": "id: f\nname: F\ntriggers:\n  - {type: hourly}\n",
    "children not a list": "id: f\nname: F\nnodes:\n  - {id: g, type: group, nodes: 3}\n",
}


@pytest.mark.parametrize("name", BROKEN)
def test_the_flow_schema_rejects_a_broken_flow_as_the_models_do(name: str) -> None:
    from atomiton_core import FlowLoadError, loads_flow

    data = _data(BROKEN[name])
    assert list(_validator().iter_errors(data)), f"the schema accepts a flow with {name}"
    with pytest.raises(FlowLoadError):
        loads_flow(BROKEN[name])


def test_the_flow_schema_accepts_what_the_models_accept() -> None:
    """Numbers where text goes (``version: 1.0``) and keys the models keep as they are."""
    from atomiton_core import loads_flow

    text = (
        "id: f\nname: F\nversion: 1.0\nnodes:\n  - {id: a, type: const, position: {x: 1}, "
        "parameters: {value: 1}}\nedges:\n  - {source: a, target: a, style: dashed}\n"
    )
    loads_flow(text)
    assert not list(_validator().iter_errors(_data(text)))


# -- the OpenAPI document ---------------------------------------------------------------------


def _served_app() -> Any:
    from atomiton_core import create_conductor
    from atomiton_core.server.app import create_app

    conductor = create_conductor("memory://docs-site-openapi")
    try:
        return create_app(conductor, token="t0ken", triggers=False)
    finally:
        conductor.close()


def test_the_openapi_document_describes_every_route_from_the_app() -> None:
    from starlette.routing import Route, WebSocketRoute

    from atomiton_core.server.openapi import OPENAPI_VERSION, openapi_document

    app = _served_app()
    document = openapi_document(app)
    assert document["openapi"] == OPENAPI_VERSION
    assert document["security"] == [{"bearer": []}]
    ops = [op for item in document["paths"].values() for op in item.values()]
    ids_ = [op["operationId"] for op in ops]
    assert len(ids_) == len(set(ids_)), "operationIds must be unique"
    assert all(op["summary"] for op in ops)
    paths = document["paths"]
    assert paths["/api/health"]["get"]["security"] == []  # the token gate lets it through
    assert "security" not in paths["/api/flows"]["get"]
    assert [p["name"] for p in paths["/api/flows/{flow_id}"]["put"]["parameters"]] == ["flow_id"]
    assert {p["name"] for p in paths["/api/runs"]["get"]["parameters"]} >= {"flowId", "status"}
    assert paths["/api/events"]["get"]["x-websocket"] is True
    for route in app.routes:
        if isinstance(route, Route | WebSocketRoute):
            assert re.sub(r"{(\w+)(?::\w+)?}", r"{\1}", route.path) in paths, route.path


def test_an_endpoint_added_to_the_app_is_in_its_document_with_its_docstring() -> None:
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Route

    from atomiton_core.server.openapi import openapi_json

    async def shout(request: Any) -> Any:
        """Shout a flow's name (``?times=N``).

        More about it."""

    app = _served_app()
    served = Starlette(
        routes=[
            *app.routes,
            Route("/api/flows/{flow_id}/shout", shout, methods=["POST"]),
            Route("/api/openapi.json", openapi_json),
        ],
        middleware=app.user_middleware,
    )

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            refused = await client.get("/api/openapi.json")  # behind the token gate
            return refused, await client.get(
                "/api/openapi.json", headers={"Authorization": "Bearer t0ken"}
            )

    refused, answer = asyncio.run(ask())
    assert refused.status_code == 401
    assert answer.status_code == 200
    op = answer.json()["paths"]["/api/flows/{flow_id}/shout"]["post"]
    assert op["summary"] == "Shout a flow's name"
    assert "More about it." in op["description"]
    assert [p["name"] for p in op["parameters"]] == ["flow_id", "times"]
    assert "/api/openapi.json" in answer.json()["paths"]
