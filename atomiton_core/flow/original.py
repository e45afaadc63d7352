"""What the original Atomiton called by other names, for ``atomiton migrate`` and for the hint
a flow that still uses them gets."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ORIGINAL_TYPES"]

#: The original's node types that were replaced there by another (its own registry, which
#: dropped them) -> the type that does their work here.
ORIGINAL_TYPES: Mapping[str, str] = {
    "csv-reader": "spreadsheet",
    "image-composite": "image",
    "composite": "group",
}
