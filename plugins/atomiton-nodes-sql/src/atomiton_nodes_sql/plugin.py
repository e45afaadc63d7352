"""The pluggy plugin the ``atomiton`` entry point names: the ``sql`` node type, and the
release of a conductor's connection pools when it closes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atomiton_core import NodeType, hookimpl

from atomiton_nodes_sql.connections import POOLS
from atomiton_nodes_sql.node import sql

__all__ = ["atomiton_conductor_closed", "atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> list[NodeType]:
    return [sql]


@hookimpl
def atomiton_conductor_closed(config: Mapping[str, Any]) -> None:
    POOLS.close(config)
