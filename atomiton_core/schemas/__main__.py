"""``python -m atomiton_core.schemas [--check]``: write the shipped schemas from the models
again (or, with ``--check``, exit 1 if the shipped ones differ)."""

from __future__ import annotations

import sys
from pathlib import Path

from atomiton_core.schemas import FLOW_SCHEMA_FILE, flow_schema_text


def main(argv: list[str]) -> int:
    """Write (or check) ``flow.schema.json`` next to this module."""
    target = Path(__file__).with_name(FLOW_SCHEMA_FILE)
    text = flow_schema_text()
    if "--check" in argv:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is out of date: run python -m atomiton_core.schemas", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
