"""Hook specifications: the plugin author's manual.

A plugin is any module or object with functions marked ``@hookimpl``, registered with a
conductor's plugin manager. Installed packages are found through the entry-point group
``atomiton``::

    [project.entry-points.atomiton]
    acme = "acme_nodes.plugin"

The core's own nodes arrive the same way (entry point ``builtin``). Every hook is called with
keyword arguments only; an implementation may accept any subset of the documented ones (pluggy
passes only the names it asks for).

**Order and conflicts.** Plugins are consulted in one fixed order: the core's own, then the
installed distributions sorted by distribution name (and entry-point name), then plugin
objects passed to ``create_conductor(plugins=...)`` in the order given. When two plugins
contribute the same node type id, the first in that order keeps it and the conflict is
reported (a ``PluginWarning`` and an entry in ``catalogue.problems`` naming both).

**Failures.** A hook that raises, or returns something that is not what its spec says, is
reported the same way (``PLUGIN_HOOK_FAILED`` / ``PLUGIN_BAD_RETURN``, naming the plugin and
its distribution) and skipped; the other plugins keep working. A lifecycle hook that raises
fails the run it was called for, with a ``PluginError`` naming the plugin.

**Lifecycle hooks** are only called when some plugin implements them: a conductor with none
pays nothing for their existence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from atomiton_core.errors import AtomitonError
    from atomiton_core.nodes.definition import NodeType
    from atomiton_core.security import Security

#: Marks the hook specifications below (the core's own use).
hookspec = pluggy.HookspecMarker("atomiton")
#: Marks a plugin's implementation of a hook: ``@hookimpl def atomiton_node_types(self): ...``.
hookimpl = pluggy.HookimplMarker("atomiton")

__all__ = ["LIFECYCLE_HOOKS", "hookimpl", "hookspec"]

#: The hooks called during runs (the rest are called when a catalogue is built, as a
#: conductor closes, or lazily).
LIFECYCLE_HOOKS = (
    "atomiton_before_run",
    "atomiton_after_run",
    "atomiton_before_node",
    "atomiton_after_node",
    "atomiton_on_node_error",
)


@hookspec
def atomiton_node_types(  # type: ignore[empty-body]
    config: Mapping[str, Any], security: Security
) -> Sequence[NodeType]:
    """Return the node types this plugin contributes.

    Called once, when a conductor builds its catalogue, with that conductor's ``config`` (its
    free settings, as nodes see them in ``ctx.config``) and ``security`` (a
    :class:`~atomiton_core.Security`). Return a list of objects made with ``@node``. Type ids
    are global: use a prefix of your own (``acme.scale``) unless you publish one of the
    original's node types. On a clash the first plugin in the order above keeps the id.
    """


@hookspec
def atomiton_hypothesis_strategies() -> dict[str, Any]:  # type: ignore[empty-body]
    """Return hypothesis strategies for input port types, keyed by type name.

    The testing kit (``atomiton_core.testing.inputs_for``) consults these when a node type
    declares a port of a type it cannot derive values for on its own, e.g. ``{"Image": st...}``.
    Called lazily, only by the testing kit.
    """


@hookspec
def atomiton_before_run(
    execution_id: str, flow_id: str, inputs: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    """Called when an execution starts, before its first node, in the event loop's thread.

    ``inputs`` are the run's variables (the flow's defaults, overridden by what the run was
    given). Raising fails the run before any node
    ran (its result carries a ``PluginError`` naming the plugin).
    """


@hookspec
def atomiton_after_run(result: Any) -> None:
    """Called once an execution has finished, with its
    :class:`~atomiton_core.ExecutionResult` (completed, failed or cancelled), before the
    result is recorded and handed back. A raising implementation is reported and logged; the
    result stands."""


@hookspec
def atomiton_before_node(
    execution_id: str, node_id: str, path: str, node_type: str, attempt: int
) -> None:
    """Called as each attempt of a node starts (``attempt`` 1 for the first), in the event
    loop's thread. Raising fails the run with a ``PluginError`` naming the plugin. Node hooks
    ride on the ``node_started`` / ``node_completed`` / ``node_failed`` signals, so a
    conductor whose plugins implement none pays nothing for them."""


@hookspec
def atomiton_after_node(
    execution_id: str,
    node_id: str,
    path: str,
    node_type: str,
    status: str,
    duration_ms: float | None,
    outputs: Any,
) -> None:
    """Called when a node has completed (``outputs``: what it returned) or failed after its
    last attempt (``outputs`` None); a raising implementation is logged."""


@hookspec
def atomiton_on_node_error(
    execution_id: str, node_id: str, path: str, error: AtomitonError
) -> None:
    """Called when a node fails after its last attempt (``continueOnFail`` or not), with the
    error the run records for it. Observing only: the run goes on as the node's settings say."""


@hookspec
def atomiton_conductor_closed(config: Mapping[str, Any]) -> None:
    """Called when a conductor is closed (``close()``, or the end of its ``with`` block), after
    its workers are released, with its ``config``: the very mapping its nodes see as
    ``ctx.config``. A plugin that keeps something per conductor for its nodes (a connection
    pool, a client) keyed by that object releases it here. Called at each ``close()``, so
    make it idempotent; a raising implementation is logged and the others still run."""
