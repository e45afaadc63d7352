"""The docs keep up with the code: every hook, built-in node type and signal is documented."""

from __future__ import annotations

import inspect
from pathlib import Path

from atomiton_core import Catalogue, hookspecs, signals

DOCS = Path(__file__).parents[1] / "docs"


def test_every_hook_is_in_the_node_author_guide() -> None:
    guide = (DOCS / "node-authors.md").read_text()
    hooks = [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("atomiton_")
    ]
    assert hooks
    for name in hooks:
        assert name in guide, f"hook {name} is missing from docs/node-authors.md"


def test_every_builtin_node_type_is_in_the_user_guide() -> None:
    guide = (DOCS / "user-guide.md").read_text()
    builtin = [
        t for t, nt in Catalogue.load(autoload=False).items() if nt.distribution == "atomiton-core"
    ]
    assert len(builtin) >= 8
    for type_id in builtin:
        assert f"| `{type_id}` |" in guide, (
            f"node type {type_id} is missing from docs/user-guide.md"
        )


def test_every_signal_is_in_the_user_guide() -> None:
    guide = (DOCS / "user-guide.md").read_text()
    for name in signals.__all__:
        if isinstance(getattr(signals, name), type(signals.node_started)):
            assert f"`{name}`" in guide, f"signal {name} is missing from docs/user-guide.md"
