"""Hook specifications: the plugin author's manual.

A plugin is any module or object with functions marked ``@hookimpl``, registered with a
conductor's plugin manager. Installed packages are found through the entry-point group
``atomiton``::

    [project.entry-points.atomiton]
    acme = "acme_nodes.plugin"

The core's own nodes arrive the same way (entry point ``builtin``). Every hook is called with
keyword arguments only; an implementation may accept any subset of the documented ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from atomiton_core.nodes.definition import NodeType

hookspec = pluggy.HookspecMarker("atomiton")
hookimpl = pluggy.HookimplMarker("atomiton")

__all__ = ["hookimpl", "hookspec"]


@hookspec
def atomiton_node_types() -> Sequence[NodeType]:  # type: ignore[empty-body]
    """Return the node types this plugin contributes.

    Called once, when a conductor builds its catalogue. Return a list of objects made with
    ``@node``. Type ids are global: use a prefix of your own (``acme.scale``) unless you
    publish one of the original's node types. Two plugins returning the same id are reported
    naming both distributions; the one loaded first is kept.
    """


@hookspec
def atomiton_hypothesis_strategies() -> dict[str, Any]:  # type: ignore[empty-body]
    """Return hypothesis strategies for input port types, keyed by type name.

    The testing kit (``atomiton_core.testing.inputs_for``) consults these when a node type
    declares a port of a type it cannot derive values for on its own, e.g. ``{"Image": st...}``.
    Called lazily, only by the testing kit.
    """
