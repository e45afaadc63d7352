"""What a node gets instead of the conductor's NodeContext where it runs in another
process: an isolated node's worker process, or a Dask worker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from atomiton_core.files import Location, resolve_path
from atomiton_core.nodes import expressions
from atomiton_core.security import Security

if TYPE_CHECKING:
    from atomiton_core.flow.settings import ExecutionSettings
    from atomiton_core.nodes.context import NodeContext

__all__ = ["PROGRESS_TOPIC", "RemoteContext"]

#: The worker event topic node progress travels on.
PROGRESS_TOPIC = "atomiton-progress"


class RemoteContext:
    """What a node running on a Dask worker gets instead of the full NodeContext."""

    def __init__(
        self,
        *,
        node_id: str,
        node_type: str,
        path: str,
        execution_id: str,
        flow_id: str,
        attempt: int,
        variables: Mapping[str, Any],
        config: Mapping[str, Any],
        security: Security,
        settings: ExecutionSettings,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.path = path
        self.execution_id = execution_id
        self.flow_id = flow_id
        self.attempt = attempt
        self.variables = dict(variables)
        self.config = dict(config)
        self.security = security
        self.settings = settings
        self.cancelled = False
        #: Set by the executor: where ``progress`` reports go (a worker event topic).
        self.progress_token: str | None = None
        #: True in an isolated node's worker process.
        self.isolated = False
        #: ``secrets`` for templates: in an isolated node's worker each is asked of the
        #: conductor (which masks it in what the run shows); on a Dask worker, those the
        #: node's parameters name, sent with it (``GivenSecrets``).
        self.secrets: Any = None
        #: Set in an isolated node's worker process: sends ``progress`` reports home.
        self._reporter: Callable[[float, str | None], None] | None = None

    @classmethod
    def of(cls, ctx: NodeContext) -> RemoteContext:
        return cls(
            node_id=ctx.node_id,
            node_type=ctx.node_type,
            path=ctx.path,
            execution_id=ctx.execution_id,
            flow_id=ctx.flow_id,
            attempt=ctx.attempt,
            variables=ctx.variables,
            config={k: v for k, v in ctx.config.items() if _picklable(v)},
            security=ctx.security,
            settings=ctx.settings,
        )

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(
            logging.getLogger(f"atomiton.nodes.{self.node_type}"),
            {"node_id": self.node_id, "execution_id": self.execution_id},
        )

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Relayed to the conductor's ``node_progress`` signal (through the worker's pipe or
        a Dask worker event)."""
        if self._reporter is not None:
            self._reporter(float(fraction), message)
            return
        if self.progress_token is None:
            return
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):  # not on a worker (e.g. called in a test directly)
            return
        worker.log_event(
            PROGRESS_TOPIC,
            {"token": self.progress_token, "fraction": float(fraction), "message": message},
        )

    def _scope(self, names: Mapping[str, Any]) -> dict[str, Any]:
        return expressions.node_scope(self.variables, self.secrets, names)

    def render(self, value: Any, /, **names: Any) -> Any:
        return expressions.render(value, self._scope(names))

    def evaluate(self, expression: str, /, **names: Any) -> Any:
        return expressions.evaluate(expression, self._scope(names))

    def resolve_path(self, url: str, what: str = "path") -> Location:
        roots = self.security.allowed_roots
        return resolve_path(url, roots=roots, what=what, node_id=self.node_id)


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
