"""One exception tree, each error with a stable ``code``.

::

    AtomitonError                       ATOMITON_ERROR
    ├── FlowLoadError                   FLOW_LOAD_FAILED    a file that is not a readable flow
    ├── FlowValidationError             VALIDATION_FAILED   carries the whole ValidationReport
    ├── NodeTypeNotFound                NODE_TYPE_NOT_FOUND
    ├── NodeDefinitionError             INVALID_NODE_DEFINITION  a broken @node declaration
    ├── PluginError                     PLUGIN_ERROR        a plugin failed to load or conflicts
    ├── ExpressionError                 EXPRESSION_ERROR    a template or expression failed
    ├── StorageError                    STORAGE_ERROR
    │   ├── FlowNotFound                FLOW_NOT_FOUND
    │   └── InvalidFlowId               INVALID_FLOW_ID
    └── ExecutionError                  EXECUTION_FAILED    a node raised; the run failed
        ├── NodeTimeout                 TIMEOUT
        ├── ExecutionCancelled          CANCELLED
        ├── NodeSkipped                 SKIPPED             an upstream failure left no input
        └── OutputContractError         INVALID_OUTPUT      a node returned what it did not declare

Every error names what and where (file, node id, port, parameter) and, when there is one,
a ``hint`` that says how to fix it. ``to_dict()`` is the JSON shape used by the CLI and server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from atomiton_core.flow.validation import ValidationReport

__all__ = [
    "AtomitonError",
    "ExecutionCancelled",
    "ExecutionError",
    "ExpressionError",
    "FlowLoadError",
    "FlowNotFound",
    "FlowValidationError",
    "InvalidFlowId",
    "NodeDefinitionError",
    "NodeSkipped",
    "NodeTimeout",
    "NodeTypeNotFound",
    "OutputContractError",
    "PluginError",
    "StorageError",
]


class AtomitonError(Exception):
    """Root of every error the SDK raises on purpose."""

    code: ClassVar[str] = "ATOMITON_ERROR"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        node_id: str | None = None,
        code: str | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.node_id = node_id
        #: False: retrying cannot help (a 404, a bad argument); the conductor will not retry.
        self.retryable = retryable
        #: Seconds the cause asks to wait before a retry (e.g. HTTP Retry-After).
        self.retry_after = retry_after
        self.context = context
        if code is not None:
            self.code = code  # type: ignore[misc]

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            data["hint"] = self.hint
        if self.node_id:
            data["nodeId"] = self.node_id
        return data


class FlowLoadError(AtomitonError):
    code = "FLOW_LOAD_FAILED"

    @classmethod
    def from_yaml(cls, source: str, exc: Exception) -> FlowLoadError:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        return cls(f"{where}: not valid YAML: {problem}", source=source)


class FlowValidationError(AtomitonError):
    code = "VALIDATION_FAILED"

    def __init__(self, report: ValidationReport, *, source: str | None = None) -> None:
        self.report = report
        where = f"{source}: " if source else ""
        lines = [f"{where}flow {report.flow_id!r} has {len(report.errors)} problem(s):"]
        lines.extend(f"  - {p}" for p in report.errors)
        super().__init__("\n".join(lines), source=source)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["problems"] = [p.to_dict() for p in self.report.problems]
        return data


class NodeTypeNotFound(AtomitonError):
    code = "NODE_TYPE_NOT_FOUND"


class NodeDefinitionError(AtomitonError):
    code = "INVALID_NODE_DEFINITION"


class PluginError(AtomitonError):
    code = "PLUGIN_ERROR"


class ExpressionError(AtomitonError):
    code = "EXPRESSION_ERROR"


class StorageError(AtomitonError):
    code = "STORAGE_ERROR"


class FlowNotFound(StorageError):
    code = "FLOW_NOT_FOUND"


class InvalidFlowId(StorageError):
    code = "INVALID_FLOW_ID"


class ExecutionError(AtomitonError):
    code = "EXECUTION_FAILED"

    @classmethod
    def from_exception(cls, exc: BaseException, *, node_id: str, node_type: str) -> ExecutionError:
        """Wrap an exception a node let escape, keeping it as ``__cause__``."""
        err = cls(
            f"node {node_id!r} ({node_type}) raised {type(exc).__name__}: {exc}",
            node_id=node_id,
            node_type=node_type,
            exception_type=type(exc).__name__,
        )
        err.__cause__ = exc
        return err


class NodeTimeout(ExecutionError):
    code = "TIMEOUT"


class ExecutionCancelled(ExecutionError):
    code = "CANCELLED"


class NodeSkipped(ExecutionError):
    code = "SKIPPED"


class OutputContractError(ExecutionError):
    code = "INVALID_OUTPUT"
