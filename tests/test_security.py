"""Security settings are typed: what confines nodes cannot be disabled by a typo."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomiton_core import (
    ConfigurationError,
    NodeContext,
    PathNotAllowed,
    Security,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
)


@pytest.mark.parametrize("typo", ["allowedRoot", "allowed_root", "alowedRoots", "allowedProgram"])
def test_a_misspelt_security_key_is_refused_with_the_right_name(typo: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="did you mean") as info:
        create_conductor(tmp_path, config={typo: [str(tmp_path)]})
    assert typo in info.value.message
    assert info.value.hint is not None and (
        "allowedRoots" in info.value.hint or "allowedPrograms" in info.value.hint
    )


def test_security_keys_in_config_and_the_typed_object_agree(tmp_path: Path) -> None:
    from_config = create_conductor(tmp_path, config={"allowedRoots": str(tmp_path), "base": 1})
    typed = create_conductor(tmp_path, security=Security(allowed_roots=[tmp_path]))
    assert from_config.security == typed.security == Security(allowed_roots=(str(tmp_path),))
    assert from_config.config == {"base": 1}  # plugins' own keys pass through
    other = create_conductor(tmp_path, config={"allowedOrigins": ["example.org"]})
    assert other.config == {"allowedOrigins": ["example.org"]} and other.security == Security()
    hosts = create_conductor(tmp_path, config={"allowedHosts": ["example.org"]})
    assert hosts.security.allowed_hosts == ("example.org",) and hosts.config == {}


def test_wrong_types_and_unknown_fields_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"allowed_roots|allowedRoots"):
        create_conductor(tmp_path, config={"allowedRoots": 5})
    with pytest.raises(ValueError, match="extra"):
        Security(allowed_root=["/tmp"])  # type: ignore[call-arg]


def test_nodes_are_confined_to_the_allowed_roots(tmp_path: Path) -> None:
    inside = tmp_path / "data"
    inside.mkdir()
    seen: list[object] = []

    @node("probe.path", outputs={"path": str}, blocking=False)
    def probe(ctx: NodeContext, params: object) -> dict[str, object]:
        seen.append(ctx.security.allowed_roots)
        return {"path": ctx.resolve_path(str(ctx.variables["where"])).path}

    class Plugin:
        @hookimpl
        def atomiton_node_types(self) -> list[object]:
            return [probe]

    conductor = create_conductor(
        tmp_path / "store", plugins=[Plugin()], security=Security(allowed_roots=[inside])
    )
    flow = loads_flow(
        "id: p\nname: P\nvariables: {where: {defaultValue: /etc/passwd}}\n"
        "nodes:\n  - {id: n, type: probe.path}\n"
    )
    fine = conductor.run(flow, {"where": str(inside / "f.txt")})
    assert fine.ok and fine.outputs["n"]["path"].endswith("/data/f.txt")
    result = conductor.run(flow)
    err = result.nodes["n"].error
    assert isinstance(err, PathNotAllowed) and err.http_status == 403
    assert err.node_id == "n" and "outside the allowed roots" in err.message
    assert seen == [(str(inside),), (str(inside),)]


def _check(security: Security, url: str) -> str | None:
    import asyncio

    from atomiton_core.errors import HostNotAllowed

    try:
        asyncio.run(security.check_url(url))
    except HostNotAllowed as exc:
        return exc.message
    return None


def test_the_host_policy() -> None:
    open_ = Security()
    assert _check(open_, "http://127.0.0.1/") is None
    private = Security(block_private_networks=True)
    for url in (
        "http://127.0.0.1:8000/",
        "http://localhost/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
    ):
        assert _check(private, url) is not None, url
    assert _check(private, "http://8.8.8.8/") is None
    listed = Security(allowed_hosts=["*.example.org", "10.1.0.0/16", "localhost"])
    assert _check(listed, "https://api.example.org/x") is None
    assert _check(listed, "http://10.1.2.3/") is None
    assert _check(listed, "http://localhost:9/") is None
    assert "not in the conductor's allowedHosts" in (_check(listed, "https://evil.org/") or "")
    both = Security(allowed_hosts=["localhost"], block_private_networks=True)
    assert _check(both, "http://localhost/") is None, "a listed host is allowed though private"
