"""Entry point ``javascript`` in the group ``atomiton``: contributes the ``javascript`` node.

Importing this module loads neither mini-racer nor V8: they start in the sandbox's own
process when a node runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from atomiton_core import NodeType, hookimpl

from atomiton_lang_js.node import javascript

__all__ = ["atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> Sequence[NodeType]:
    return [javascript]
