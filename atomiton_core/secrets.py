"""Secrets: values a flow names (``{{ secrets.API_TOKEN }}``) but never holds, and never shows.

A conductor looks secrets up through its providers, in order (``create_conductor(secrets=...)``):

- ``"env"`` (the default): the environment variable ``ATOMITON_SECRET_<NAME>``; only those,
  so a flow cannot read any other variable of the host (``"env:PREFIX_"`` for another prefix);
- ``"file:<path>"``: a folder with one file per secret (as Docker and Kubernetes mount them),
  or a JSON file mapping names to values;
- ``"keyring"`` / ``"keyring:<service>"``: the system keyring (``pip install keyring``).

Every value a run looks up is *redacted* wherever the run shows what it did: node outputs and
errors in the result and the run record, signal payloads (so the server's events and the
page), and the node's log lines — replaced by ``***``. The value itself reaches the node that
asked for it. Parameters a node type marks secret (``Field(json_schema_extra={"secret":
True})``: editors show them as passwords) are redacted the same way.

Redaction replaces the secret's text wherever it appears; a secret shorter than
:data:`MIN_REDACTED` characters is not redacted (it would blank out ordinary words), and a
value transformed by the flow (encoded, split) is no longer recognised.

A node in an isolated worker process asks the conductor for each secret as it renders it. A
node on a Dask worker cannot: it is sent the values of the secrets its parameters name
(looked up by the conductor, so the run masks them, and carried by the cluster's own
connections); any other name is refused there with a clear error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from atomiton_core.errors import ConfigurationError, ExpressionError

__all__ = [
    "MIN_REDACTED",
    "EnvironmentSecrets",
    "FileSecrets",
    "GivenSecrets",
    "KeyringSecrets",
    "Redactor",
    "SecretProvider",
    "Secrets",
    "create_providers",
    "referenced_secrets",
]

#: Secrets shorter than this are not redacted.
MIN_REDACTED = 4
MASK = "***"


class SecretProvider(Protocol):
    """Where secrets come from: ``get`` returns the value, or None when it has none."""

    def get(self, name: str) -> str | None: ...

    def describe(self) -> str: ...


class EnvironmentSecrets:
    def __init__(self, prefix: str = "ATOMITON_SECRET_") -> None:
        self.prefix = prefix

    def get(self, name: str) -> str | None:
        return os.environ.get(self.prefix + name)

    def describe(self) -> str:
        return f"environment variables {self.prefix}*"


class FileSecrets:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def get(self, name: str) -> str | None:
        if self.path.is_dir():
            if "/" in name or "\\" in name or name.startswith("."):
                return None
            file = self.path / name
            return file.read_text().rstrip("\n") if file.is_file() else None
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"secrets file {self.path}: {exc}") from None
            value = data.get(name) if isinstance(data, dict) else None
            return None if value is None else str(value)
        return None

    def describe(self) -> str:
        return f"the secrets file or folder {self.path}"


class KeyringSecrets:
    def __init__(self, service: str = "atomiton") -> None:
        try:
            import keyring
        except ImportError as exc:
            raise ConfigurationError(
                "the keyring secrets provider needs the keyring package",
                hint='pip install "atomiton-core[keyring]"',
            ) from exc
        self._keyring = keyring
        self.service = service

    def get(self, name: str) -> str | None:
        value = self._keyring.get_password(self.service, name)
        return None if value is None else str(value)

    def describe(self) -> str:
        return f"the system keyring (service {self.service!r})"


def create_providers(specs: Iterable[str | SecretProvider] | None) -> list[SecretProvider]:
    """Providers from specs (``"env"``, ``"env:PREFIX_"``, ``"file:<path>"``, ``"keyring"``,
    ``"keyring:<service>"``) or provider objects; None: the environment with its prefix."""
    if specs is None:
        return [EnvironmentSecrets()]
    providers: list[SecretProvider] = []
    for spec in specs:
        if not isinstance(spec, str):
            providers.append(spec)
            continue
        kind, _, arg = spec.partition(":")
        if kind == "env":
            providers.append(EnvironmentSecrets(arg or "ATOMITON_SECRET_"))
        elif kind == "file" and arg:
            providers.append(FileSecrets(arg))
        elif kind == "keyring":
            providers.append(KeyringSecrets(arg or "atomiton"))
        else:
            raise ConfigurationError(
                f"unknown secrets provider {spec!r}",
                hint="use env, env:PREFIX_, file:<path> or keyring[:<service>]",
            )
    return providers


class Redactor:
    """The secret values one run has handed out, and their removal from what it shows."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, value: str) -> None:
        if len(value) >= MIN_REDACTED:
            self.values.add(value)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A copy of ``value`` with every secret in its strings (and keys) masked."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self.value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, bytes):
            for secret in self.values:
                value = value.replace(secret.encode(), MASK.encode())
            return value
        return value

    def error(self, err: Any) -> Any:
        """An error with secrets masked in its message and hint (the same object)."""
        if err is not None and self.values:
            err.message = self.text(err.message)
            if err.args:
                err.args = (err.message, *err.args[1:])
            if err.hint:
                err.hint = self.text(err.hint)
        return err


class Secrets:
    """What a template sees as ``secrets``: ``secrets.NAME`` or ``secrets["NAME"]`` looks the
    name up in the providers and records the value with the run's redactor."""

    __slots__ = ("_providers", "_redactor")

    def __init__(self, providers: Sequence[SecretProvider], redactor: Redactor) -> None:
        self._providers = providers
        self._redactor = redactor

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> str:
        for provider in self._providers:
            value = provider.get(name)
            if value is not None:
                self._redactor.add(value)
                return value
        where = "; ".join(p.describe() for p in self._providers) or "no provider"
        raise ExpressionError(
            f"secret {name!r} is not set",
            hint=f"the conductor looks secrets up in: {where}",
        )

    def __repr__(self) -> str:
        return "<secrets>"


#: ``secrets.NAME``, ``secrets["NAME"]`` or ``secrets['NAME']`` in a template.
_REFERENCE = re.compile(r"""secrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*(?:"([^"]+)"|'([^']+)')\s*\])""")


def referenced_secrets(params: Any) -> set[str]:
    """The names of the secrets a node's parameters refer to in their templates."""
    found: set[str] = set()
    dump = getattr(params, "model_dump", None)
    stack: list[Any] = [dump() if dump is not None else params]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "secrets" in value:
                for match in _REFERENCE.finditer(value):
                    found.add(next(g for g in match.groups() if g))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return found


class GivenSecrets:
    """``secrets`` on a machine that cannot ask the conductor (a Dask worker): the values of
    the secrets the node's parameters name, looked up by the conductor before the node was
    sent (so the run masks them); any other name is refused, saying why."""

    __slots__ = ("_missing", "_values")

    def __init__(self, values: Mapping[str, str], missing: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._missing = dict(missing)

    @classmethod
    def resolve(cls, lookup: Callable[[str], str], names: Iterable[str]) -> GivenSecrets:
        """Look each name up now (``lookup``: the conductor's, which records the value)."""
        values: dict[str, str] = {}
        missing: dict[str, str] = {}
        for name in names:
            try:
                values[name] = lookup(name)
            except ExpressionError as exc:  # said when (if) the node renders it
                missing[name] = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        return cls(values, missing)

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        if name in self._missing:
            raise ExpressionError(self._missing[name])
        raise ExpressionError(
            f"secret {name!r} is not available on this worker: a node on a cluster gets only "
            "the secrets its parameters name",
            hint=f"name it in one of the node's parameters, e.g. {{{{ secrets.{name} }}}}",
        )

    def __repr__(self) -> str:
        return "<secrets>"


_SECRET_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}


def secret_fields(model: type) -> tuple[tuple[str, bool], ...]:
    """(field, is it secret itself) for the fields of a parameter model marked
    ``json_schema_extra={"secret": True}``, and those that hold a model that may have some."""
    known = _SECRET_FIELDS.get(model)
    if known is None:
        import typing

        from pydantic import BaseModel

        def holds_model(annotation: Any) -> bool:
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                return True
            return any(holds_model(a) for a in typing.get_args(annotation))

        fields: Mapping[str, Any] = getattr(model, "model_fields", {})
        found: list[tuple[str, bool]] = []
        for name, info in fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("secret"):
                found.append((name, True))
            elif holds_model(info.annotation):
                found.append((name, False))
        known = _SECRET_FIELDS[model] = tuple(found)
    return known


def secret_parameter_values(params: Any) -> list[str]:
    """The values of a node's parameters its type marks secret (strings, not templates),
    nested parameter models included."""
    found: list[str] = []
    for name, secret in secret_fields(type(params)):
        value = getattr(params, name, None)
        if secret and isinstance(value, str) and "{{" not in value:
            found.append(value)
        elif not secret and value is not None and hasattr(type(value), "model_fields"):
            found += secret_parameter_values(value)
    return found
