"""The node catalogue, built from a plugin manager; plugins are found through entry points.

There is no registry to edit: a package adds node types by declaring an entry point in the
group ``atomiton`` whose module implements ``atomiton_node_types``. The core's built-in nodes
come through its own entry point (``builtin``), the same path. Environment switches:

- ``ATOMITON_DISABLE_PLUGIN_AUTOLOAD=1``: load no installed plugin except the core's own and
  those named in ``ATOMITON_PLUGINS``;
- ``ATOMITON_PLUGINS=a,b``: an allow-list of entry-point names or distribution names.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from types import MappingProxyType
from typing import Any, cast

import pluggy

from atomiton_core import hookspecs
from atomiton_core.errors import NodeTypeNotFound, PluginError
from atomiton_core.flow.original import ORIGINAL_TYPES
from atomiton_core.nodes.definition import NodeType
from atomiton_core.security import Security

__all__ = ["Catalogue", "PluginProblem", "PluginWarning", "create_plugin_manager"]

ENTRY_POINT_GROUP = "atomiton"
CORE_DISTRIBUTION = "atomiton-core"
CORE_ENTRY_POINT = "builtin"

#: Where the original's node types live now, for "install X" hints.
KNOWN_PROVIDERS: Mapping[str, str] = MappingProxyType(
    {
        "file-system": "atomiton-nodes-io",
        "http-request": "atomiton-nodes-io",
        "spreadsheet": "atomiton-nodes-io",
        "image": "atomiton-nodes-image",
        "shell-command": "atomiton-nodes-shell",
    }
)


class PluginWarning(UserWarning):
    """A plugin failed to load or conflicts with another; the rest keep working."""


@dataclass(frozen=True, slots=True)
class PluginProblem:
    code: str
    message: str
    distribution: str | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _allow_list() -> set[str] | None:
    raw = os.environ.get("ATOMITON_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _dist_name(ep: metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else None


def create_plugin_manager(
    plugins: Iterable[Any] = (),
    *,
    autoload: bool | None = None,
    problems: list[PluginProblem] | None = None,
    distributions: dict[str, str | None] | None = None,
) -> pluggy.PluginManager:
    """A fresh plugin manager: installed plugins (per the environment switches) plus ``plugins``.

    A plugin that fails to import is reported (a :class:`PluginWarning`, and an entry in
    ``problems``) naming its distribution; the others still load. ``distributions`` receives
    plugin name -> distribution name, for the catalogue to say where each node type came from.
    """
    pm = pluggy.PluginManager("atomiton")
    pm.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not _env_flag("ATOMITON_DISABLE_PLUGIN_AUTOLOAD")
    allow = _allow_list()
    sink = problems if problems is not None else []
    dists = distributions if distributions is not None else {}
    seen: set[tuple[str | None, str]] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = _dist_name(ep)
        key = (dist, ep.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        is_core = dist == CORE_DISTRIBUTION and ep.name == CORE_ENTRY_POINT
        named = allow is not None and (ep.name in allow or (dist or "") in allow)
        if not is_core and not named and (not autoload or allow is not None):
            continue
        try:
            module = ep.load()
        except Exception as exc:
            problem = PluginProblem(
                "PLUGIN_LOAD_FAILED",
                f"plugin {ep.name!r} from distribution {dist!r} failed to load "
                f"({ep.value}): {type(exc).__name__}: {exc}",
                dist,
            )
            sink.append(problem)
            warnings.warn(problem.message, PluginWarning, stacklevel=2)
            continue
        name = f"{dist}:{ep.name}" if dist else ep.name
        if pm.is_registered(module) or pm.get_plugin(name) is not None:
            continue
        _register(pm, module, name)
        dists[name] = dist
    for plugin in plugins:
        if pm.is_registered(plugin):
            continue
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__qualname__}@{id(plugin):x}"
        _register(pm, plugin, name)
    return pm


def _precedence(
    pm: pluggy.PluginManager,
    dists: Mapping[str, str | None],
    impls: list[Any],
    impl: Any,
) -> tuple[int, str, str, int]:
    """Where a plugin stands in the conflict order: the core, installed distributions by name,
    then plugin objects in the order they were given."""
    name = pm.get_name(impl.plugin) or ""
    if name == f"{CORE_DISTRIBUTION}:{CORE_ENTRY_POINT}":
        return (0, "", "", 0)
    if name in dists:
        return (1, (dists[name] or "").lower(), name, 0)
    return (2, "", "", impls.index(impl))


def _register(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from exc


class Catalogue(Mapping[str, NodeType]):
    """A read-only view of the node types one plugin manager provides."""

    def __init__(self, types: Mapping[str, NodeType], problems: Iterable[PluginProblem] = ()):
        self._types = dict(types)
        self.problems: tuple[PluginProblem, ...] = tuple(problems)
        self.plugin_manager: pluggy.PluginManager | None = None
        self.disabled: frozenset[str] = frozenset()

    def without(self, type_ids: Iterable[str]) -> Catalogue:
        """A copy lacking ``type_ids``; flows using them fail validation saying so."""
        drop = frozenset(type_ids)
        copy = Catalogue({k: v for k, v in self._types.items() if k not in drop}, self.problems)
        copy.plugin_manager = self.plugin_manager
        copy.disabled = self.disabled | drop
        return copy

    @classmethod
    def load(
        cls,
        plugins: Iterable[Any] = (),
        *,
        autoload: bool | None = None,
        config: Mapping[str, Any] | None = None,
        security: Security | None = None,
    ) -> Catalogue:
        """Build a catalogue from a fresh plugin manager (see :func:`create_plugin_manager`);
        ``config`` and ``security`` are the host's, passed to ``atomiton_node_types``."""
        problems: list[PluginProblem] = []
        dists: dict[str, str | None] = {}
        pm = create_plugin_manager(
            plugins, autoload=autoload, problems=problems, distributions=dists
        )
        catalogue = cls.from_plugin_manager(
            pm, problems, dists, config=config or {}, security=security or Security()
        )
        catalogue.plugin_manager = pm
        return catalogue

    def lifecycle_hooks(self) -> frozenset[str]:
        """The lifecycle hooks some plugin implements (the conductor calls only these)."""
        pm = self.plugin_manager
        if pm is None:
            return frozenset()
        return frozenset(
            name for name in hookspecs.LIFECYCLE_HOOKS if getattr(pm.hook, name).get_hookimpls()
        )

    @classmethod
    def from_plugin_manager(
        cls,
        pm: pluggy.PluginManager,
        problems: Iterable[PluginProblem] = (),
        distributions: Mapping[str, str | None] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        security: Security | None = None,
    ) -> Catalogue:
        """The catalogue of the node types ``pm``'s plugins contribute (their
        ``atomiton_node_types``, called with ``config`` and ``security``), conflicts and
        failures added to ``problems``; ``distributions`` names each plugin's package."""
        found = list(problems)
        already = len(found)
        dists = distributions or {}
        host: dict[str, Any] = {"config": config or {}, "security": security or Security()}
        types: dict[str, NodeType] = {}
        impls = pm.hook.atomiton_node_types.get_hookimpls()
        for impl in sorted(impls, key=partial(_precedence, pm, dists, impls)):
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            dist = dists.get(plugin_name) or plugin_name
            try:
                given = {name: host[name] for name in impl.argnames if name in host}
                contributed = cast("Iterable[Any] | None", impl.function(**given))
            except Exception as exc:
                found.append(
                    PluginProblem(
                        "PLUGIN_HOOK_FAILED",
                        f"plugin {plugin_name!r} ({dist}) raised in atomiton_node_types: "
                        f"{type(exc).__name__}: {exc}",
                        dist,
                    )
                )
                continue
            if contributed is not None and not isinstance(contributed, list | tuple):
                contributed = [contributed]
            for item in contributed or ():
                if not isinstance(item, NodeType):
                    found.append(
                        PluginProblem(
                            "PLUGIN_BAD_RETURN",
                            f"plugin {plugin_name!r} ({dist}) returned {item!r} from "
                            "atomiton_node_types; expected node types made with @node",
                            dist,
                        )
                    )
                    continue
                if item.id in types:
                    first = types[item.id]
                    found.append(
                        PluginProblem(
                            "DUPLICATE_NODE_TYPE",
                            f"node type {item.id!r} is provided by both {first.distribution!r} "
                            f"and {dist!r}; keeping the one from {first.distribution!r}",
                            dist,
                        )
                    )
                    continue
                item.distribution = item.distribution or dist
                types[item.id] = item
        for problem in found[already:]:
            warnings.warn(problem.message, PluginWarning, stacklevel=2)
        return cls(types, found)

    def __getitem__(self, type_id: str) -> NodeType:
        return self._types[type_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def require(self, type_id: str) -> NodeType:
        """The node type, or :class:`NodeTypeNotFound` with a hint on how to get it."""
        found = self._types.get(type_id)
        if found is None:
            raise NodeTypeNotFound(
                f"node type {type_id!r} is not installed", hint=self.missing_hint(type_id)
            )
        return found

    def missing_hint(self, type_id: str) -> str:
        """How to get ``type_id`` when it is not here: disabled, renamed from the original
        (and ``atomiton migrate``), or the package that provides it."""
        if type_id in self.disabled:
            return "this node type is disabled by the conductor's configuration"
        renamed = ORIGINAL_TYPES.get(type_id)
        if renamed is not None:
            return (
                f"the original Atomiton's {type_id!r} is {renamed!r} here: "
                "`atomiton migrate FLOW` rewrites the flow (docs/compatibility.md)"
            )
        provider = KNOWN_PROVIDERS.get(type_id)
        if provider:
            return f"it is provided by the package {provider!r}: pip install {provider}"
        close = difflib.get_close_matches(type_id, list(self._types), n=3)
        if close:
            return "did you mean " + " or ".join(repr(c) for c in close) + "?"
        return "`atomiton nodes` lists the installed node types"
