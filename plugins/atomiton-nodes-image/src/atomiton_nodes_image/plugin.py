"""Entry point ``image`` in the group ``atomiton``: contributes the ``image`` node."""

from __future__ import annotations

from collections.abc import Sequence

from atomiton_core import NodeType, hookimpl

from atomiton_nodes_image.node import image

__all__ = ["atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> Sequence[NodeType]:
    return [image]
