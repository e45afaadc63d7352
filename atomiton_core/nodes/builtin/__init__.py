"""The core's built-in node types, contributed through the entry point ``builtin``."""

from __future__ import annotations

from collections.abc import Sequence

from atomiton_core.hookspecs import hookimpl
from atomiton_core.nodes.builtin.branching import if_node, merge
from atomiton_core.nodes.builtin.code import code
from atomiton_core.nodes.builtin.data import const, edit_fields, transform
from atomiton_core.nodes.builtin.group import group
from atomiton_core.nodes.builtin.loop import loop
from atomiton_core.nodes.builtin.parallel import parallel
from atomiton_core.nodes.builtin.subflow import flow_ref
from atomiton_core.nodes.definition import NodeType

__all__ = ["atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> Sequence[NodeType]:
    return [group, const, edit_fields, transform, loop, parallel, if_node, merge, flow_ref, code]
