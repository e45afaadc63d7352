"""The testing kit for node authors: run a node, generate its inputs, check its contract.

- :func:`run_node` / :func:`arun_node`: one node through the real conductor;
- :func:`check_node`: the node contract, property-based (:class:`ContractViolation`);
- :class:`NodeContractTests`: the same rules as a test class to inherit in one line;
- :func:`params_for`, :func:`inputs_for`, :func:`flows`: hypothesis strategies;
- :func:`assert_replays`: a recorded run replayed as a regression test (fixture
  ``atomiton_replay``);
- a pytest plugin (fixtures ``atomiton_conductor``, ``atomiton_storage``; marker
  ``atomiton_plugins``), registered through the ``pytest11`` entry point.

Needs the ``testing`` extra: ``pip install atomiton-core[testing]``. The names are imported on
first use, so that pytest loading the plugin module does not import hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atomiton_core.testing.abstract import NodeContractTests
    from atomiton_core.testing.contract import RULES, ContractViolation, check_node
    from atomiton_core.testing.replays import assert_replays
    from atomiton_core.testing.runner import NodeRunner, arun_node, run_node
    from atomiton_core.testing.strategies import (
        StrategyError,
        flows,
        inputs_for,
        json_values,
        params_for,
    )

__all__ = [
    "RULES",
    "ContractViolation",
    "NodeContractTests",
    "NodeRunner",
    "StrategyError",
    "arun_node",
    "assert_replays",
    "check_node",
    "flows",
    "inputs_for",
    "json_values",
    "params_for",
    "run_node",
]

_WHERE = {
    "NodeContractTests": "abstract",
    "RULES": "contract",
    "ContractViolation": "contract",
    "check_node": "contract",
    "NodeRunner": "runner",
    "arun_node": "runner",
    "run_node": "runner",
    "StrategyError": "strategies",
    "flows": "strategies",
    "inputs_for": "strategies",
    "json_values": "strategies",
    "params_for": "strategies",
    "assert_replays": "replays",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
