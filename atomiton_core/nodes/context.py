"""The context a node function receives as its first argument."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from atomiton_core.nodes import expressions
from atomiton_core.storage.paths import Location, allowed_roots, resolve_path

if TYPE_CHECKING:
    from atomiton_core.conductor.engine import GraphRun, PlannedNode, Run
    from atomiton_core.flow.models import ExecutionSettings
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["NodeContext"]


class NodeContext:
    """Who and where a node is, plus what it may ask of the conductor.

    ``node_id``, ``node_type``, ``path`` (``group-1/child``), ``execution_id``, ``attempt``
    (1 for the first), ``variables`` (the flow's variables after the run's inputs), ``config``
    (the conductor-wide settings), ``logger``, ``progress()``, ``render()``/``evaluate()``
    for sandboxed templates, and ``run_children()`` for container nodes.
    """

    __slots__ = ("_graph", "_logger", "_node", "_run", "attempt", "path")

    def __init__(self, run: Run, graph: GraphRun, node: PlannedNode, path: str) -> None:
        self._run = run
        self._graph = graph
        self._node = node
        self.path = path
        self.attempt = 1
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def node_id(self) -> str:
        return self._node.id

    @property
    def node_type(self) -> str:
        return self._node.node_type.id

    @property
    def execution_id(self) -> str:
        return self._run.execution_id

    @property
    def flow_id(self) -> str:
        return self._run.flow_id

    @property
    def variables(self) -> Mapping[str, Any]:
        return self._graph.variables

    @property
    def config(self) -> Mapping[str, Any]:
        return self._run.conductor.config

    @property
    def storage(self) -> FlowStorage | None:
        return self._run.conductor.storage

    @property
    def cancelled(self) -> bool:
        """True once the execution is cancelled or failing: sync nodes should stop early."""
        return self._run.stop_event.is_set()

    @property
    def stop_event(self) -> threading.Event:
        return self._run.stop_event

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        if self._logger is None:
            base = logging.getLogger(f"atomiton.nodes.{self.node_type}")
            self._logger = logging.LoggerAdapter(
                base, {"node_id": self.node_id, "execution_id": self.execution_id}
            )
        return self._logger

    def resolve_path(self, url: str, what: str = "path") -> Location:
        """Resolve a path / fsspec URL this node will read or write, refusing it when it
        escapes the conductor's ``allowedRoots``. Every node touching files should use it."""
        return resolve_path(url, roots=allowed_roots(self.config), what=what, node_id=self.node_id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far this node is (0..1); safe to call from a worker thread."""
        self._run.node_progress(self, float(fraction), message)

    def render(self, value: Any, /, **names: Any) -> Any:
        """Render a sandboxed Jinja2 template over the variables and ``names``."""
        return expressions.render(value, self._scope(names))

    def evaluate(self, expression: str, /, **names: Any) -> Any:
        """Evaluate a sandboxed Jinja2 expression over the variables and ``names``."""
        return expressions.evaluate(expression, self._scope(names))

    def _scope(self, names: Mapping[str, Any]) -> dict[str, Any]:
        variables = self._graph.variables
        scope = dict(variables)
        scope["vars"] = variables
        scope.update(names)
        return scope

    async def run_children(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        variables: Mapping[str, Any] | None = None,
        concurrency: int | None = None,
        progress: tuple[float, float] | None = (0.0, 1.0),
    ) -> dict[str, Any]:
        """Run this container's child nodes once and return the container's outputs.

        ``inputs`` feed edges whose source is the container's id (by ``sourceHandle``);
        ``label`` names the run in paths (``loop-1/iteration 3/child``); ``variables``
        are added to the children's variables; ``concurrency`` bounds the children;
        ``progress`` is the slice of this node's progress the children's progress fills
        (``None``: this node reports its own progress).
        """
        return await self._run.run_children(
            self, inputs or {}, label, variables, concurrency, progress
        )

    async def run_flow(
        self, flow_id: str, inputs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a flow from the conductor's storage as part of this node; returns its sink
        outputs keyed by node id. ``inputs`` override its variables."""
        return await self._run.run_flow(self, flow_id, inputs or {})

    @property
    def child_outputs(self) -> tuple[str, ...]:
        """For containers: the output names the children define (edges to this node's id)."""
        return self._node.child_outputs

    @property
    def settings(self) -> ExecutionSettings:
        """This node's execution settings: ``timeout`` (ms), ``retries``, ``retry_delay``..."""
        return self._node.settings
