"""Atomiton node type ``sql``: query, execute, insert and script on SQLAlchemy 2 Core.

Installed, the package is found through its entry point (group ``atomiton``, name ``sql``);
nothing here needs importing by hand.
"""

from __future__ import annotations

from atomiton_nodes_sql.errors import SqlConfigError, SqlError
from atomiton_nodes_sql.node import SqlParams, sql

__version__ = "0.1.0"

__all__ = ["SqlConfigError", "SqlError", "SqlParams", "__version__", "sql"]
