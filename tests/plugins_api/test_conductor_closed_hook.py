"""``atomiton_conductor_closed``: a plugin learns that a conductor closed, with the very
``config`` its nodes saw, so what it keeps per conductor (a connection pool) can go with it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from atomiton_core import NodeContext, create_conductor, hookimpl, loads_flow, node

FLOW = loads_flow("id: c\nname: C\nnodes:\n  - {id: keep, type: test.keep}\n")


class Keeper:
    """Keeps one thing per conductor, keyed by the config object its nodes see."""

    def __init__(self) -> None:
        self.kept: dict[int, Mapping[str, Any]] = {}
        self.closed: list[Mapping[str, Any]] = []

        @node("test.keep", outputs={"output": int})
        def keep(ctx: NodeContext, params: Any) -> dict[str, Any]:
            self.kept[id(ctx.config)] = ctx.config
            return {"output": len(self.kept)}

        self.node = keep

    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [self.node]

    @hookimpl
    def atomiton_conductor_closed(self, config: Mapping[str, Any]) -> None:
        self.closed.append(config)
        self.kept.pop(id(config), None)


def test_closing_a_conductor_hands_plugins_the_config_its_nodes_saw() -> None:
    keeper = Keeper()
    first = create_conductor("memory://closed-1", plugins=[keeper], config={"region": "eu"})
    second = create_conductor("memory://closed-2", plugins=[keeper], config={"region": "eu"})
    assert first.run(FLOW).ok and second.run(FLOW).ok
    assert len(keeper.kept) == 2  # equal configs, two conductors: two entries
    first.close()
    assert keeper.closed == [{"region": "eu"}] and keeper.closed[0] is first.config
    assert list(keeper.kept.values()) == [second.config]
    with second:
        pass
    assert keeper.kept == {} and keeper.closed[1] is second.config


def test_a_raising_close_hook_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    keeper = Keeper()

    class Broken:
        @hookimpl
        def atomiton_conductor_closed(self) -> None:
            raise RuntimeError("cannot let go")

    conductor = create_conductor("memory://closed-3", plugins=[Broken(), keeper])
    with caplog.at_level(logging.ERROR, logger="atomiton.plugins"):
        conductor.close()
    assert keeper.closed == [conductor.config]
    assert "cannot let go" in caplog.text and "atomiton_conductor_closed" in caplog.text


def test_a_conductor_without_plugins_closes_as_before() -> None:
    conductor = create_conductor("memory://closed-4", autoload=False)
    assert "atomiton_conductor_closed" not in conductor.hooks  # not a hook of runs
    conductor.close()
    conductor.close()
