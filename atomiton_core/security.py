"""What nodes may reach: the conductor's security settings, typed.

``create_conductor(security=Security(allowed_roots=["./data"]))`` (or the same keys, camelCase,
in ``config``: ``{"allowedRoots": [...], "allowedPrograms": [...], "allowCode": False}``).
A misspelt key is an error, not a setting silently ignored: ``allowedRoot`` would otherwise
leave every path open.
Nodes read the settings as ``ctx.security``; paths are confined by ``ctx.resolve_path``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from atomiton_core.errors import ConfigurationError, HostNotAllowed

__all__ = ["Security"]


class Security(BaseModel):
    """Limits on what a conductor's nodes may touch (``None``: no limit)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    #: Paths / fsspec URLs nodes may read and write under (``ctx.resolve_path`` checks).
    allowed_roots: tuple[str, ...] | None = Field(None)
    #: Programs (names or absolute paths) the shell-command node may run.
    allowed_programs: tuple[str, ...] | None = Field(None)
    #: Whether the ``code`` node may run user code (off in the server's ``--safe`` mode).
    allow_code: bool = True
    #: Hosts network nodes may reach: names (``api.example.com``, ``*.example.com``), IP
    #: addresses or networks (``10.1.0.0/16``). ``None``: any host.
    allowed_hosts: tuple[str, ...] | None = Field(None)
    #: Refuse loopback, private, link-local and reserved addresses (what a name resolves to
    #: included), unless ``allowed_hosts`` names them: no SSRF into the host's own network.
    block_private_networks: bool = False

    async def check_url(self, url: str, *, node_id: str | None = None) -> None:
        """Refuse (``HOST_NOT_ALLOWED``) a URL whose host this policy does not let nodes
        reach; the host's name is resolved to check the addresses it stands for."""
        import ipaddress
        from urllib.parse import urlsplit

        if self.allowed_hosts is None and not self.block_private_networks:
            return
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
        if not host:
            raise HostNotAllowed(f"the URL {url!r} names no host", node_id=node_id)
        if self.allowed_hosts is not None and _host_listed(host, self.allowed_hosts):
            return
        if self.allowed_hosts is not None and not self.block_private_networks:
            raise self._refused(url, host, node_id)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            import asyncio
            import socket

            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            except socket.gaierror:
                return  # the request will fail to connect, and say so
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        for address in addresses:
            if self.allowed_hosts is not None and _host_listed(str(address), self.allowed_hosts):
                continue
            if not address.is_global or address.is_multicast:
                raise HostNotAllowed(
                    f"{url!r} reaches {address}, a loopback, private or reserved address, "
                    "which this conductor does not let nodes reach",
                    node_id=node_id,
                    hint="add the host to allowedHosts (serve --allow-host) if it is meant to "
                    "be reached",
                    retryable=False,
                )
        if self.allowed_hosts is not None:
            raise self._refused(url, host, node_id)

    def _refused(self, url: str, host: str, node_id: str | None) -> HostNotAllowed:
        return HostNotAllowed(
            f"host {host!r} of {url!r} is not in the conductor's allowedHosts "
            f"{list(self.allowed_hosts or ())}",
            node_id=node_id,
            hint="add it to allowedHosts (serve --allow-host HOST)",
            retryable=False,
        )

    @field_validator("allowed_roots", "allowed_programs", "allowed_hosts", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, str | os.PathLike):
            return (os.fspath(value),)
        if isinstance(value, list | tuple | set | frozenset):
            return tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
        return value

    @classmethod
    def split(
        cls, config: Mapping[str, Any], security: Security | Mapping[str, Any] | None = None
    ) -> tuple[Security, dict[str, Any]]:
        """Take the security keys out of a free ``config`` mapping; the rest is returned.

        A key that is not a security setting but reads like one (``allowedRoot``,
        ``allowed_root``) is refused with the name it was probably meant to be.
        """
        names = {f.alias or n: n for n, f in cls.model_fields.items()}
        known = {*names, *names.values()}
        picked: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for key, value in config.items():
            if key in known:
                picked[key] = value
                continue
            # 0.9: one letter off or snake_case, never another plugin's own key
            # (``allowedHosts`` is 0.83 from ``allowedRoots``)
            squashed = key.replace("_", "").lower()
            close = difflib.get_close_matches(squashed, [k.lower() for k in names], cutoff=0.9)
            if close:
                meant = next(k for k in names if k.lower() == close[0])
                raise ConfigurationError(
                    f"conductor config key {key!r} is not a setting",
                    hint=f"did you mean {meant!r}? (a misspelt security key confines nothing)",
                )
            rest[key] = value
        if isinstance(security, Security):
            base = security.model_dump(exclude_unset=True)
        else:
            base = dict(security or {})
        try:
            return cls.model_validate({**base, **picked}), rest
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigurationError(
                f"invalid security settings: {problems}",
                hint="allowedRoots and allowedPrograms take a list of strings",
            ) from None


def _host_listed(host: str, listed: tuple[str, ...]) -> bool:
    import fnmatch
    import ipaddress

    for entry in listed:
        entry = entry.lower().rstrip(".")
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif fnmatch.fnmatchcase(host, entry):
            return True
    return False
