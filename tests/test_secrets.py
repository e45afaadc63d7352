"""Secrets: looked up by the conductor's providers, handed to the node that asks, and masked
everywhere a run shows what it did (results, errors, run records, events, logs, progress)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from atomiton_core import (
    NodeContext,
    Parameters,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
    signals,
    wire,
)
from atomiton_core.errors import ConfigurationError
from atomiton_core.secrets import FileSecrets, KeyringSecrets

SECRET = "s3cr3t-7d41a9"


class Leaky(Parameters):
    api_key: str = Field(json_schema_extra={"secret": True, "format": "password"})


@node("sec.leaky", params=Leaky, outputs={"output": Any}, blocking=False)
def leaky(ctx: NodeContext, params: Leaky, input: Any = None) -> dict[str, Any]:
    """Does everything a careless node could with the secrets it got."""
    key = ctx.render(params.api_key)
    ctx.logger.warning("calling with key %s and input %s", key, input)
    ctx.progress(0.5, f"key {key}")
    return {"output": {"key": key, "got": input, "same": key == SECRET}}


@node("sec.fail", outputs={"output": Any}, blocking=False)
def fail(ctx: NodeContext, params: Any, input: Any = None) -> dict[str, Any]:
    raise ValueError(f"the server refused {input}")


class Plugin:
    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [leaky, fail]


def flow(*nodes: dict[str, Any], edges: list[dict[str, Any]] | None = None) -> Any:
    return loads_flow(
        json.dumps({"id": "sec", "name": "sec", "nodes": list(nodes), "edges": edges or []})
    )


@pytest.fixture
def env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOMITON_SECRET_API", SECRET)
    monkeypatch.setenv("HOST_ONLY", "not-a-secret-of-flows")


def test_a_secret_reaches_the_node_and_nothing_shows_it(
    env_secret: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conductor = create_conductor(tmp_path, plugins=[Plugin()])
    events: list[Any] = []

    def seen(sender: Any, event: Any) -> None:
        events.append(wire.dump(event))

    for sig in signals.NODE_SIGNALS:
        sig.connect(seen, sender=conductor)
    try:
        with caplog.at_level(logging.WARNING, logger="atomiton"):
            result = conductor.run(
                flow(
                    {
                        "id": "src",
                        "type": "edit-fields",
                        "parameters": {"values": {"k": "{{ secrets.API }}"}, "keepOnlySet": True},
                    },
                    {
                        "id": "pick",
                        "type": "transform",
                        "parameters": {"operation": "map", "expression": "item.k"},
                    },
                    {
                        "id": "use",
                        "type": "sec.leaky",
                        "parameters": {"apiKey": "{{ secrets.API }}"},
                    },
                    {"id": "boom", "type": "sec.fail", "parameters": {"continueOnFail": True}},
                    edges=[
                        {"id": "e1", "source": "src", "target": "pick"},
                        {"id": "e2", "source": "pick", "target": "boom"},
                    ],
                )
            )
    finally:
        for sig in signals.NODE_SIGNALS:
            sig.disconnect(seen)
    assert result.ok, result.error
    # the node worked with the real value ...
    assert result.nodes["use"].outputs == {"output": {"key": "***", "got": None, "same": True}}
    assert any(e.get("message") == "key ***" for e in events), "progress masked"
    # ... and nothing the run shows holds it
    shown = {
        "result": wire.dumps(result),
        "events": json.dumps(events),
        "logs": caplog.text,
        "record": "".join(p.read_text() for p in (tmp_path / "runs").glob("*/run.json")),
        "log": "".join(p.read_text() for p in (tmp_path / "runs").glob("*/events.jsonl")),
    }
    for where, text in shown.items():
        assert SECRET not in text, where
        assert "***" in text, where
    assert result.nodes["src"].outputs == {"output": {"k": "***"}}
    assert "the server refused ['***']" in str(result.nodes["boom"].error)


def test_a_literal_value_of_a_secret_parameter_is_masked_too(tmp_path: Path) -> None:
    conductor = create_conductor(tmp_path, plugins=[Plugin()], record_runs=False)
    result = conductor.run(
        flow({"id": "use", "type": "sec.leaky", "parameters": {"apiKey": SECRET}})
    )
    assert result.ok
    assert result.nodes["use"].outputs == {"output": {"key": "***", "got": None, "same": True}}
    schema = conductor.catalogue["sec.leaky"].params_schema()
    assert schema["properties"]["apiKey"]["format"] == "password"


def test_only_the_secrets_prefix_is_reachable(env_secret: None, tmp_path: Path) -> None:
    conductor = create_conductor(tmp_path, record_runs=False)
    for name in ("HOST_ONLY", "PATH", "HOME"):
        result = conductor.run(
            flow(
                {
                    "id": "a",
                    "type": "edit-fields",
                    "parameters": {"values": {"x": "{{ secrets." + name + " }}"}},
                }
            )
        )
        err = result.nodes["a"].error
        assert err is not None and f"secret {name!r} is not set" in err.message
        assert "ATOMITON_SECRET_*" in (err.hint or "")


def test_file_providers(tmp_path: Path) -> None:
    folder = tmp_path / "run-secrets"
    folder.mkdir()
    (folder / "API").write_text(SECRET + "\n")
    mapping = tmp_path / "secrets.json"
    mapping.write_text(json.dumps({"OTHER": "from-json-file"}))
    conductor = create_conductor(
        tmp_path / "s", record_runs=False, secrets=[f"file:{folder}", FileSecrets(mapping)]
    )
    result = conductor.run(
        flow(
            {
                "id": "a",
                "type": "edit-fields",
                "parameters": {
                    "values": {
                        "ok": "{{ secrets.API == 's3cr3t-7d41a9' and secrets['OTHER'] == 'from-json-file' }}"
                    }
                },
            }
        )
    )
    assert result.ok, result.error
    assert result.nodes["a"].outputs == {"output": {"ok": True}}
    assert FileSecrets(folder).get("../etc/passwd") is None


def test_unknown_provider_and_missing_keyring_are_clear() -> None:
    with pytest.raises(ConfigurationError, match="unknown secrets provider 'vault'"):
        create_conductor("memory://x", secrets=["vault"])
    try:
        import keyring  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match="keyring"):
            KeyringSecrets()


@node(
    "sec.isolated",
    params=Leaky,
    outputs={"output": Any},
    settings={"isolation": "process"},
)
def isolated_leaky(ctx: Any, params: Leaky) -> dict[str, Any]:
    key = ctx.render(params.api_key)
    return {"output": {"key": key, "same": key == "s3cr3t-7d41a9"}}


def test_secrets_looked_up_in_a_worker_are_masked_by_the_run(
    env_secret: None, tmp_path: Path
) -> None:
    class P:
        @hookimpl
        def atomiton_node_types(self) -> list[Any]:
            return [isolated_leaky]

    conductor = create_conductor(tmp_path, plugins=[P()], record_runs=False, process_workers=1)
    try:
        result = conductor.run(
            flow({"id": "w", "type": "sec.isolated", "parameters": {"apiKey": "{{ secrets.API }}"}})
        )
    finally:
        conductor.close()
    assert result.ok, result.error
    assert result.nodes["w"].outputs == {"output": {"key": "***", "same": True}}
    assert SECRET not in wire.dumps(result)


def test_the_secrets_a_nodes_parameters_name_are_found_in_every_spelling() -> None:
    from pydantic import BaseModel

    from atomiton_core.secrets import referenced_secrets

    class Inner(BaseModel):
        header: str = "{{secrets [ 'B_2' ]}}"

    class Params(BaseModel):
        url: str = 'https://x/{{ secrets.A }}?k={{ secrets["C-3"] }}'
        args: list[str] = ["{{ secrets . D }}", "plain", "secrets"]
        inner: Inner = Inner()
        mapping: dict[str, str] = {"k": "{{ secrets.E | upper }}"}
        dynamic: str = "{{ secrets[name] }}"  # not knowable before it runs

    assert referenced_secrets(Params()) == {"A", "B_2", "C-3", "D", "E"}
    assert referenced_secrets({"raw": ["{{ secrets.F }}"]}) == {"F"}
