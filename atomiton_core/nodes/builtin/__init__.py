"""The core's built-in node types, contributed through the entry point ``builtin``."""

from __future__ import annotations

from collections.abc import Sequence

from atomiton_core.hookspecs import hookimpl
from atomiton_core.nodes.builtin.control import flow_ref, if_node, loop, merge, parallel
from atomiton_core.nodes.builtin.data import edit_fields, transform
from atomiton_core.nodes.builtin.group import group
from atomiton_core.nodes.definition import NodeType

__all__ = ["atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> Sequence[NodeType]:
    return [group, edit_fields, transform, loop, parallel, if_node, merge, flow_ref]
