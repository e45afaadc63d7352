"""Atomiton I/O node types: ``file-system``, ``http-request`` and ``spreadsheet``.

Installed, the package is found through its entry point (group ``atomiton``, name ``io``);
nothing here needs importing by hand.
"""

from __future__ import annotations

from atomiton_nodes_io.file_system import file_system
from atomiton_nodes_io.http_request import http_request
from atomiton_nodes_io.spreadsheet import spreadsheet

__version__ = "0.1.0"

__all__ = ["__version__", "file_system", "http_request", "spreadsheet"]
