"""The pluggy plugin the ``atomiton`` entry point names."""

from __future__ import annotations

from atomiton_core import NodeType, hookimpl

from atomiton_nodes_io.file_system import file_system
from atomiton_nodes_io.http_request import http_request
from atomiton_nodes_io.spreadsheet import spreadsheet

__all__ = ["atomiton_node_types"]


@hookimpl
def atomiton_node_types() -> list[NodeType]:
    return [file_system, http_request, spreadsheet]
