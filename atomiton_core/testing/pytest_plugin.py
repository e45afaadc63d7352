"""The testing kit's pytest plugin (entry point ``pytest11: atomiton``).

Fixtures, all opt-in (nothing runs unless a test asks for it):

- ``atomiton_storage``: a :class:`~atomiton_core.FlowStorage` on a fresh ``memory://`` root,
  removed after the test;
- ``atomiton_conductor``: a conductor on that storage with the plugins named by
  ``@pytest.mark.atomiton_plugins(module, ...)`` (installed plugins are then not loaded), or
  all installed plugins when the test has no such marker.

Importing this module imports nothing from atomiton_core; the fixtures do, when used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from atomiton_core.conductor.conductor import Conductor
    from atomiton_core.storage.flows import FlowStorage

MARKER = "atomiton_plugins"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*plugins): the atomiton_conductor fixture loads only these plugin modules or "
        "objects (and the core's own nodes) instead of every installed plugin",
    )


@pytest.fixture
def atomiton_storage() -> Iterator[FlowStorage]:
    """Flow storage on a fresh ``memory://`` root, removed after the test."""
    from atomiton_core.storage.flows import create_storage

    storage = create_storage(f"memory://atomiton-pytest-{uuid.uuid4().hex}")
    yield storage
    if storage.fs.exists(storage.root):
        storage.fs.rm(storage.root, recursive=True)


@pytest.fixture
def atomiton_conductor(
    request: pytest.FixtureRequest, atomiton_storage: FlowStorage
) -> Iterator[Conductor]:
    """A conductor on ``atomiton_storage``; see the ``atomiton_plugins`` marker."""
    from atomiton_core.conductor.conductor import create_conductor

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        conductor = create_conductor(atomiton_storage)
    else:
        conductor = create_conductor(atomiton_storage, plugins=marker.args, autoload=False)
    yield conductor
    conductor.close()


@pytest.fixture
def atomiton_replay() -> Any:
    """``atomiton_replay(storage, run_id, flow=None, plugins=())``: replay a recorded run and
    fail naming each node whose outputs differ (see ``atomiton_core.testing.assert_replays``)."""
    from atomiton_core.testing.replays import assert_replays

    return assert_replays
