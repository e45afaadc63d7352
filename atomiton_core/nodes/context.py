"""The context a node function receives as its first argument, and the host it talks to.

A context knows its node (id, type, path, settings) and asks everything else of its
:class:`NodeHost`: the conductor's scheduler implements that small protocol, and a test or
another engine can too. The node layer imports nothing of the conductor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from atomiton_core.files import Location, resolve_path
from atomiton_core.nodes import expressions

if TYPE_CHECKING:
    from atomiton_core.flow.protocols import FlowSource
    from atomiton_core.flow.settings import ExecutionSettings
    from atomiton_core.secrets import Secrets
    from atomiton_core.security import Security

__all__ = ["NodeContext", "NodeHost", "NodeSlot"]


class NodeSlot(Protocol):
    """What a context knows of its node (the conductor's planned node)."""

    @property
    def id(self) -> str: ...

    @property
    def index(self) -> int: ...

    @property
    def type_id(self) -> str: ...

    @property
    def settings(self) -> ExecutionSettings: ...

    @property
    def child_outputs(self) -> tuple[str, ...]: ...


class NodeHost(Protocol):
    """What a node's context asks of the engine running it (one graph level of a run)."""

    @property
    def execution_id(self) -> str: ...

    @property
    def flow_id(self) -> str: ...

    @property
    def variables(self) -> Mapping[str, Any]: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def security(self) -> Security: ...

    @property
    def storage(self) -> FlowSource | None: ...

    @property
    def stop_event(self) -> threading.Event: ...

    @property
    def secrets(self) -> Secrets: ...

    def node_progress(self, index: int, fraction: float, message: str | None) -> None: ...

    async def run_children(
        self,
        index: int,
        path: str,
        inputs: Mapping[str, Any],
        label: str | None,
        variables: Mapping[str, Any] | None,
        concurrency: int | None,
        span: tuple[float, float] | None,
    ) -> dict[str, Any]: ...

    async def run_flow(
        self, index: int, path: str, flow_id: str, inputs: Mapping[str, Any]
    ) -> dict[str, Any]: ...


class _RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A node's logger: the run's secrets are masked in what it writes."""

    def __init__(self, logger: logging.Logger, extra: Mapping[str, Any], host: NodeHost) -> None:
        super().__init__(logger, extra)
        self._host = host

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        redactor = getattr(self._host.secrets, "_redactor", None)
        if redactor and self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            super().log(level, "%s", redactor.text(text), **kwargs)
            return
        super().log(level, msg, *args, **kwargs)


class NodeContext:
    """Who and where a node is, plus what it may ask of the conductor.

    ``node_id``, ``node_type``, ``path`` (``group-1/child``), ``execution_id``, ``attempt``
    (1 for the first), ``variables`` (the flow's variables after the run's inputs), ``config``
    (the conductor-wide settings), ``security`` (what nodes may reach), ``logger``,
    ``progress()``, ``render()``/``evaluate()`` for sandboxed templates, ``resolve_path()``
    for confined paths, and ``run_children()`` / ``run_flow()`` for container nodes.
    """

    __slots__ = ("_host", "_logger", "_node", "_token", "attempt", "cpu_ms", "path", "peak_memory")

    def __init__(self, host: NodeHost, node: NodeSlot, path: str) -> None:
        self._host = host
        self._node = node
        self.path = path
        self.attempt = 1
        #: This attempt's cancellation token (set by the conductor on its timeout, on cancel
        #: and on fail-fast); None: the run's own stop event stands for it.
        self._token: threading.Event | None = None
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None
        #: CPU milliseconds of the node's attempts, for nodes that run in a thread or a
        #: worker process (set by the conductor); peak resident bytes of an isolated node.
        self.cpu_ms: float | None = None
        self.peak_memory: int | None = None

    @property
    def node_id(self) -> str:
        return self._node.id

    @property
    def node_type(self) -> str:
        return self._node.type_id

    @property
    def execution_id(self) -> str:
        return self._host.execution_id

    @property
    def flow_id(self) -> str:
        return self._host.flow_id

    @property
    def variables(self) -> Mapping[str, Any]:
        return self._host.variables

    @property
    def config(self) -> Mapping[str, Any]:
        return self._host.config

    @property
    def security(self) -> Security:
        return self._host.security

    @property
    def storage(self) -> FlowSource | None:
        return self._host.storage

    def _secret(self, name: str) -> str:
        """A secret looked up for this node's worker (recorded, so the run masks it)."""
        return self._host.secrets[name]

    @property
    def isolated(self) -> bool:
        """True when the node runs in a worker process (``isolation: process``); a node
        running here, in the conductor's process, is not isolated."""
        return False

    @property
    def cancelled(self) -> bool:
        """True once this attempt should stop: it timed out, or the execution is cancelled or
        failing. Sync nodes should check it in their loops and return early."""
        return (self._token or self._host.stop_event).is_set()

    @property
    def stop_event(self) -> threading.Event:
        """The event behind ``cancelled``, to ``wait()`` on instead of sleeping."""
        return self._token or self._host.stop_event

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        if self._logger is None:
            base = logging.getLogger(f"atomiton.nodes.{self.node_type}")
            self._logger = _RedactingLogger(
                base, {"node_id": self.node_id, "execution_id": self.execution_id}, self._host
            )
        return self._logger

    def resolve_path(self, url: str, what: str = "path") -> Location:
        """Resolve a path / fsspec URL this node will read or write, refusing it
        (:class:`~atomiton_core.errors.PathNotAllowed`) outside the conductor's
        ``allowed_roots``. Every node touching files should use it."""
        roots = self._host.security.allowed_roots
        return resolve_path(url, roots=roots, what=what, node_id=self.node_id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far this node is (0..1); safe to call from a worker thread."""
        self._host.node_progress(self._node.index, float(fraction), message)

    def render(self, value: Any, /, **names: Any) -> Any:
        """Render a sandboxed Jinja2 template over the variables and ``names``; the fields of
        a mapping given as ``input`` are names too (see
        :func:`~atomiton_core.nodes.expressions.node_scope`)."""
        return expressions.render(value, self._scope(names))

    def evaluate(self, expression: str, /, **names: Any) -> Any:
        """Evaluate a sandboxed Jinja2 expression over the same names as :meth:`render`."""
        return expressions.evaluate(expression, self._scope(names))

    def _scope(self, names: Mapping[str, Any]) -> dict[str, Any]:
        return expressions.node_scope(self._host.variables, self._host.secrets, names)

    def run_children(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        variables: Mapping[str, Any] | None = None,
        concurrency: int | None = None,
        progress: tuple[float, float] | None = (0.0, 1.0),
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        """Run this container's child nodes once and return the container's outputs.

        ``inputs`` feed edges whose source is the container's id (by ``sourceHandle``);
        ``label`` names the run in paths (``loop-1/iteration 3/child``); ``variables``
        are added to the children's variables; ``concurrency`` bounds the children;
        ``progress`` is the slice of this node's progress the children's progress fills
        (``None``: this node reports its own progress).
        """
        # the host's coroutine itself, to be awaited: no coroutine of its own per child run
        return self._host.run_children(
            self._node.index, self.path, inputs or {}, label, variables, concurrency, progress
        )

    async def run_flow(
        self, flow_id: str, inputs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a flow from the conductor's storage as part of this node; returns its sink
        outputs keyed by node id. ``inputs`` override its variables."""
        return await self._host.run_flow(self._node.index, self.path, flow_id, inputs or {})

    @property
    def child_outputs(self) -> tuple[str, ...]:
        """For containers: the output names the children define (edges to this node's id)."""
        return self._node.child_outputs

    @property
    def settings(self) -> ExecutionSettings:
        """This node's execution settings: ``timeout`` (ms), ``retries``, ``retry_delay``..."""
        return self._node.settings
