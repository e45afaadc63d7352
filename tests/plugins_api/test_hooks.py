"""Hooks as hookspecs.py documents them: the host's settings, a fixed conflict order tested
with two real installed distributions, failures reported, lifecycle hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from atomiton_core import (
    NodeContext,
    Parameters,
    PluginError,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
)


def _distribution(root: Path, dist: str, module: str, label: str) -> None:
    """A real installed distribution: a module plus its .dist-info with an entry point."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from atomiton_core import hookimpl, node

            @node("shared.echo", outputs={{"output": str}}, blocking=False)
            def echo(ctx, params):
                return {{"output": {label!r}}}

            @hookimpl
            def atomiton_node_types():
                return [echo]
            """
        )
    )
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[atomiton]\n{module} = {module}\n")


PROBE = """
import json, warnings
from atomiton_core import create_conductor, loads_flow
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    conductor = create_conductor("memory://hooks-probe")
flow = loads_flow("id: f\\nname: F\\nnodes:\\n  - {id: e, type: shared.echo}\\n")
result = conductor.run(flow)
print(json.dumps({
    "winner": conductor.catalogue["shared.echo"].distribution,
    "output": result.outputs["e"]["output"],
    "warnings": [str(w.message) for w in caught],
}))
"""


@pytest.mark.parametrize("order", ["alpha first on sys.path", "zeta first on sys.path"])
def test_a_clash_between_two_distributions_is_decided_by_name(tmp_path: Path, order: str) -> None:
    alpha, zeta = tmp_path / "a", tmp_path / "z"
    _distribution(alpha, "alpha-nodes", "alpha_nodes", "from alpha")
    _distribution(zeta, "zeta-nodes", "zeta_nodes", "from zeta")
    paths = [alpha, zeta] if order.startswith("alpha") else [zeta, alpha]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    env.pop("ATOMITON_PLUGINS", None)
    env.pop("ATOMITON_DISABLE_PLUGIN_AUTOLOAD", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["winner"] == "alpha-nodes" and seen["output"] == "from alpha"
    clash = [w for w in seen["warnings"] if "shared.echo" in w]
    assert clash and "alpha-nodes" in clash[0] and "zeta-nodes" in clash[0]


class _Scale(Parameters):
    factor: float = 1.0


def test_node_types_hook_sees_the_conductors_settings(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    class Plugin:
        @hookimpl
        def atomiton_node_types(self, config: Any, security: Any) -> list[Any]:
            seen["config"], seen["roots"] = dict(config), security.allowed_roots

            @node("acme.scaled", params=_Scale, outputs={"output": float}, blocking=False)
            def scaled(ctx: NodeContext, params: _Scale) -> dict[str, Any]:
                return {"output": params.factor * config["base"]}

            return [scaled]

    conductor = create_conductor(
        tmp_path,
        plugins=[Plugin()],
        config={"base": 2.0, "allowedRoots": [str(tmp_path)]},
    )
    assert seen == {"config": {"base": 2.0}, "roots": (str(tmp_path),)}
    flow = loads_flow(
        "id: s\nname: S\nnodes:\n  - {id: n, type: acme.scaled, parameters: {factor: 3}}\n"
    )
    assert conductor.run(flow).outputs == {"n": {"output": 6.0}}


def test_a_bad_return_is_reported_not_fatal(tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return ["not a node type"]

    with pytest.warns(UserWarning, match="expected node types made with @node"):
        conductor = create_conductor(tmp_path, plugins=[Broken()])
    assert "edit-fields" in conductor.catalogue
    assert [p.code for p in conductor.catalogue.problems] == ["PLUGIN_BAD_RETURN"]


def test_lifecycle_hooks_are_called_around_a_run(tmp_path: Path) -> None:
    calls: list[tuple[str, Any]] = []

    class Observer:
        @hookimpl
        def atomiton_before_run(self, flow_id: str, inputs: Any) -> None:
            calls.append(("before", (flow_id, dict(inputs))))

        @hookimpl
        def atomiton_on_node_error(self, node_id: str, path: str, error: Any) -> None:
            calls.append(("error", (node_id, path, error.code)))

        @hookimpl
        def atomiton_after_run(self, result: Any) -> None:
            calls.append(("after", str(result.status)))

    conductor = create_conductor(tmp_path, plugins=[Observer()])
    assert conductor.hooks == {
        "atomiton_before_run",
        "atomiton_on_node_error",
        "atomiton_after_run",
    }
    flow = loads_flow(
        "id: h\nname: H\nvariables: {x: {defaultValue: 1}}\nnodes:\n"
        "  - {id: g, type: group, nodes: [{id: bad, type: edit-fields,"
        " parameters: {values: {y: '{{ input.nowhere }}'}}}]}\n"
    )
    result = conductor.run(flow, {"x": 2})
    assert not result.ok
    assert calls[0] == ("before", ("h", {"x": 2}))
    assert ("error", ("bad", "g/bad", "EXPRESSION_ERROR")) in calls
    assert calls[-1] == ("after", "failed")
    assert create_conductor(tmp_path).hooks == frozenset()  # none implemented: none called


def test_a_raising_before_run_hook_fails_the_run_naming_the_plugin(tmp_path: Path) -> None:
    class Gate:
        @hookimpl
        def atomiton_before_run(self) -> None:
            raise RuntimeError("not today")

    conductor = create_conductor(tmp_path, plugins=[Gate()])
    result = conductor.run(loads_flow("id: g\nname: G\nnodes:\n  - {id: a, type: merge}\n"))
    assert not result.ok and isinstance(result.error, PluginError)
    assert "not today" in result.error.message and "atomiton_before_run" in result.error.message
    assert result.nodes["a"].status == "pending"  # it never ran


def test_node_hooks_follow_every_node_and_a_raising_one_fails_the_run(tmp_path: Path) -> None:
    seen: list[tuple[str, str, Any]] = []

    class Nodes:
        @hookimpl
        def atomiton_before_node(self, path: str, node_type: str, attempt: int) -> None:
            seen.append(("before", path, (node_type, attempt)))

        @hookimpl
        def atomiton_after_node(self, path: str, status: str, outputs: Any) -> None:
            seen.append(("after", path, (status, outputs)))

    flow = loads_flow(
        "id: n\nname: N\nnodes:\n"
        "  - {id: g, type: group, nodes: [{id: a, type: edit-fields,"
        " parameters: {values: {v: 1}, keepOnlySet: true}}]}\n"
    )
    conductor = create_conductor(tmp_path, plugins=[Nodes()])
    assert conductor.run(flow).ok
    assert ("before", "g", ("group", 1)) in seen and ("before", "g/a", ("edit-fields", 1)) in seen
    assert ("after", "g/a", ("completed", {"output": {"v": 1}})) in seen
    assert [s for s in seen if s[1] == "g"][-1][0] == "after"
    assert create_conductor(tmp_path).run(flow).ok  # another conductor: hooks not called
    assert len([s for s in seen if s[0] == "before"]) == 2

    class Veto:
        @hookimpl
        def atomiton_before_node(self, node_id: str) -> None:
            if node_id == "a":
                raise RuntimeError("no a")

    result = create_conductor(tmp_path, plugins=[Veto()]).run(flow)
    assert not result.ok and isinstance(result.error, PluginError)
    assert "no a" in result.error.message and "atomiton_before_node" in result.error.message
