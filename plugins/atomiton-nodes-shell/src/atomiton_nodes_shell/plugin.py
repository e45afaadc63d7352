"""Entry point ``shell`` in the group ``atomiton``: contributes the ``shell-command`` node."""

from __future__ import annotations

from collections.abc import Sequence

from atomiton_core import NodeType, hookimpl

from atomiton_nodes_shell.command import shell_command

__all__ = ["atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> Sequence[NodeType]:
    return [shell_command]
