"""One exception tree; each class owns one stable code and the HTTP status that goes with it.

::

    AtomitonError                       ATOMITON_ERROR            500
    ├── FlowLoadError                   FLOW_LOAD_FAILED          422  not a readable flow
    ├── FlowValidationError             VALIDATION_FAILED         422  carries the ValidationReport
    ├── NodeTypeNotFound                NODE_TYPE_NOT_FOUND       422
    ├── NodeDefinitionError             INVALID_NODE_DEFINITION   500  a broken @node declaration
    ├── PluginError                     PLUGIN_ERROR              500  a plugin failed to load
    ├── ExpressionError                 EXPRESSION_ERROR          422  a template or expression
    ├── ConfigurationError              CONFIGURATION_ERROR       400  set up wrongly
    ├── PathNotAllowed                  PATH_NOT_ALLOWED          403  a path outside allowedRoots
    ├── CodeNotAllowed                  CODE_NOT_ALLOWED          403  the code node is disabled
    ├── HostNotAllowed                  HOST_NOT_ALLOWED          403  a host outside allowedHosts
    ├── ValueNotEncodable               VALUE_NOT_ENCODABLE       422  no codec stores this value
    ├── StorageError                    STORAGE_ERROR             500
    │   ├── FlowNotFound                FLOW_NOT_FOUND            404
    │   ├── RunNotFound                 RUN_NOT_FOUND             404
    │   └── InvalidFlowId               INVALID_FLOW_ID           400
    ├── ExecutionError                  EXECUTION_FAILED          409  a node raised; the run failed
    │   ├── NodeTimeout                 TIMEOUT                   409  (retryable)
    │   ├── ExecutionCancelled          CANCELLED                 409
    │   ├── NodeSkipped                 SKIPPED                   409  no input arrived
    │   ├── OutputContractError         INVALID_OUTPUT            409  undeclared outputs
    │   ├── InvalidInput                INVALID_INPUT             409  a value of the wrong type
    │   ├── ResourceLimitExceeded       RESOURCE_LIMIT            409  cpu, memory or processes
    │   ├── WorkerCrashed               WORKER_CRASHED            409  an isolated node's process
    │   └── CircularDependency          CIRCULAR_DEPENDENCY       409  a flow that runs itself
    ├── RequestError                    BAD_REQUEST               400  a bad HTTP request
    │   ├── Unauthorized                UNAUTHORIZED              401
    │   ├── RouteNotFound               ROUTE_NOT_FOUND           404  no such endpoint / method
    │   ├── ExecutionNotFound           EXECUTION_NOT_FOUND       404
    │   ├── NoStorage                   NO_STORAGE                404  the server keeps no flows
    │   ├── ExecutionConflict           EXECUTION_CONFLICT        409  id taken, or already over
    │   ├── FlowIdMismatch              FLOW_ID_MISMATCH          422  body and URL disagree
    │   ├── PayloadTooLarge             BODY_TOO_LARGE            413
    │   └── TooManyExecutions           TOO_MANY_EXECUTIONS       429  (retryable)
    └── RemoteError                     REMOTE_ERROR              502  a server answer with no code

:data:`ERROR_CLASSES` is the one table from code to class (and so to ``http_status``): the
server answers with it and the client raises the same class again. A plugin may define its
own subclass with its own ``code`` (``code = "HTTP_ERROR"``); a code already owned by another
class is refused when the class is defined.

Every error names what and where (file, node id and path, port, parameter) and, when there is
one, a ``hint`` that says how to fix it. The conductor fills in ``node_id`` and ``path`` of an
error raised by a node. ``retryable`` is opt-in: only errors that say so (a timeout, an
exception a node let escape, an error raised with ``retryable=True``) are retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

__all__ = [
    "ERROR_CLASSES",
    "AtomitonError",
    "CircularDependency",
    "CodeNotAllowed",
    "ConfigurationError",
    "ErrorCode",
    "ExecutionCancelled",
    "ExecutionConflict",
    "ExecutionError",
    "ExecutionNotFound",
    "ExpressionError",
    "FlowIdMismatch",
    "FlowLoadError",
    "FlowNotFound",
    "FlowValidationError",
    "HostNotAllowed",
    "InjectedFault",
    "InvalidFlowId",
    "InvalidInput",
    "NoStorage",
    "NodeDefinitionError",
    "NodeSkipped",
    "NodeTimeout",
    "NodeTypeNotFound",
    "OutputContractError",
    "PathNotAllowed",
    "PayloadTooLarge",
    "PluginError",
    "Problem",
    "RemoteError",
    "RequestError",
    "ResourceLimitExceeded",
    "RouteNotFound",
    "RunNotFound",
    "StorageError",
    "TooManyExecutions",
    "Unauthorized",
    "ValidationReport",
    "ValueNotEncodable",
    "VariableError",
    "WorkerCrashed",
    "error_class",
]


class ErrorCode(StrEnum):
    """The core's error codes; each belongs to exactly one class below."""

    ATOMITON_ERROR = "ATOMITON_ERROR"
    FLOW_LOAD_FAILED = "FLOW_LOAD_FAILED"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    NODE_TYPE_NOT_FOUND = "NODE_TYPE_NOT_FOUND"
    INVALID_NODE_DEFINITION = "INVALID_NODE_DEFINITION"
    PLUGIN_ERROR = "PLUGIN_ERROR"
    EXPRESSION_ERROR = "EXPRESSION_ERROR"
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    PATH_NOT_ALLOWED = "PATH_NOT_ALLOWED"
    CODE_NOT_ALLOWED = "CODE_NOT_ALLOWED"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    VALUE_NOT_ENCODABLE = "VALUE_NOT_ENCODABLE"
    STORAGE_ERROR = "STORAGE_ERROR"
    FLOW_NOT_FOUND = "FLOW_NOT_FOUND"
    RUN_NOT_FOUND = "RUN_NOT_FOUND"
    INVALID_FLOW_ID = "INVALID_FLOW_ID"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    INVALID_OUTPUT = "INVALID_OUTPUT"
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_VARIABLE = "INVALID_VARIABLE"
    CIRCULAR_DEPENDENCY = "CIRCULAR_DEPENDENCY"
    RESOURCE_LIMIT = "RESOURCE_LIMIT"
    WORKER_CRASHED = "WORKER_CRASHED"
    INJECTED_FAULT = "INJECTED_FAULT"
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
    EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"
    NO_STORAGE = "NO_STORAGE"
    EXECUTION_CONFLICT = "EXECUTION_CONFLICT"
    FLOW_ID_MISMATCH = "FLOW_ID_MISMATCH"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    TOO_MANY_EXECUTIONS = "TOO_MANY_EXECUTIONS"
    REMOTE_ERROR = "REMOTE_ERROR"


_REGISTRY: dict[str, type[AtomitonError]] = {}
#: Code -> the class that owns it (core classes, and plugin subclasses once imported).
ERROR_CLASSES: Mapping[str, type[AtomitonError]]


class AtomitonError(Exception):
    """Root of every error the SDK raises on purpose."""

    code: ClassVar[str] = ErrorCode.ATOMITON_ERROR
    #: The status the server answers with when a request ends in this error.
    http_status: ClassVar[int] = 500
    #: Whether retrying can help, unless the instance says otherwise.
    retryable_default: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # shares its parent's code (e.g. a subclass for one call site)
        owner = _REGISTRY.get(cls.code)
        if owner is not None and owner.__qualname__ != cls.__qualname__:
            raise TypeError(
                f"error code {cls.code!r} of {cls.__module__}.{cls.__qualname__} is already "
                f"owned by {owner.__module__}.{owner.__qualname__}; choose a code of your own"
            )
        _REGISTRY[str(cls.code)] = cls

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        node_id: str | None = None,
        path: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        **context: Any,
    ) -> None:
        if "code" in context:
            raise TypeError(
                "an error's code belongs to its class: raise a subclass with `code = ...` "
                f"instead of passing code={context['code']!r}"
            )
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: The node the error happened in, and where it sits (``loop-1/iteration 3/resize``).
        self.node_id = node_id
        self.path = path
        #: False: retrying cannot help (a 404, a bad argument); the conductor will not retry.
        self.retryable = self.retryable_default if retryable is None else retryable
        #: Seconds the cause asks to wait before a retry (e.g. HTTP Retry-After).
        self.retry_after = retry_after
        self.context = context

    def __str__(self) -> str:
        """The message with where it happened (``node 'loop-1/iteration 3/resize': ...``)
        and the hint; the message itself never repeats the node, the error knows it."""
        text = self.message
        if self.node_id is not None:
            text = f"node {self.path or self.node_id!r}: {text}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AtomitonError):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.message == other.message
            and self.hint == other.hint
            and self.node_id == other.node_id
            and self.path == other.path
        )

    def __hash__(self) -> int:  # equal errors hash alike; node and path may be filled in later
        return hash((type(self), self.message))

    def at(self, node_id: str, path: str | None) -> AtomitonError:
        """Fill in the node (and its path) this error happened in, unless already known."""
        if self.node_id is None:
            self.node_id = node_id
        if self.path is None and self.node_id == node_id:
            self.path = path
        return self


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Problem(_Wire):
    """One thing wrong with a flow: a stable code, where (key path into the file, node or edge
    id), what, and how to fix it."""

    code: str
    message: str
    location: str = ""
    node_id: str | None = None
    edge_id: str | None = None
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"
    #: The line of the flow's file the location is at (1-based), when it came from a file.
    line: int | None = None

    def __str__(self) -> str:
        where = self.location
        about = []
        if self.line is not None:
            about.append(f"line {self.line}")
        if self.node_id:
            about.append(f"node {self.node_id!r}")
        elif self.edge_id:
            about.append(f"edge {self.edge_id!r}")
        if about:
            where += f" ({', '.join(about)})"
        text = f"[{self.code}] {where}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


class ValidationReport(BaseModel):
    """Every problem of one flow; travels inside :class:`FlowValidationError`."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, arbitrary_types_allowed=True
    )

    flow_id: str
    problems: list[Problem] = Field(default_factory=list)
    #: id(NodeSpec) -> what the planner needs (flow.validation.ResolvedNode); not on the wire.
    resolved: dict[int, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        if not self.problems:
            return f"flow {self.flow_id!r} is valid"
        head = (
            f"flow {self.flow_id!r}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        )
        lines = [f"  - {p.severity}: {p}" for p in self.problems]
        return "\n".join([head, *lines])

    def raise_for_problems(self, source: str | None = None) -> None:
        """Raise :class:`FlowValidationError` if the report holds an error (``source``: the
        file it is about); warnings alone do not raise."""
        if not self.ok:
            raise FlowValidationError(self, source=source)


class FlowLoadError(AtomitonError):
    """Not a readable flow: bad YAML or JSON, a missing key, a value of the wrong type;
    the message names the file, the key path and, when known, the line."""

    code = ErrorCode.FLOW_LOAD_FAILED
    http_status = 422

    def located(self, where: str, source: str | None) -> FlowLoadError:
        """This error, its message prefixed with the file it is about."""
        err = type(self)(f"{where}: {self.message}", hint=self.hint, source=source)
        return err

    @classmethod
    def from_yaml(cls, source: str, exc: Exception) -> FlowLoadError:
        """The error for text that is not valid YAML, at the line and column the parser
        stopped (``exc``: the parser's error)."""
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        return cls(f"{where}: not valid YAML: {problem}", source=source)


class FlowValidationError(AtomitonError):
    """A flow that does not validate, raised before any of its nodes runs; ``report``
    holds every problem (:class:`ValidationReport`)."""

    code = ErrorCode.VALIDATION_FAILED
    http_status = 422

    def __init__(self, report: ValidationReport, *, source: str | None = None) -> None:
        self.report = report
        where = f"{source}: " if source else ""
        lines = [f"{where}flow {report.flow_id!r} has {len(report.errors)} problem(s):"]
        lines.extend(f"  - {p}" for p in report.errors)
        super().__init__("\n".join(lines), source=source)


class NodeTypeNotFound(AtomitonError):
    """A node type id no installed plugin provides (or one the conductor disables); the
    hint names the package that provides it, when known."""

    code = ErrorCode.NODE_TYPE_NOT_FOUND
    http_status = 422


class NodeDefinitionError(AtomitonError):
    """A broken ``@node`` declaration (a bad id, port or signature), raised when the
    decorator runs, not when the node first does."""

    code = ErrorCode.INVALID_NODE_DEFINITION


class PluginError(AtomitonError):
    """A plugin failed: it could not be imported, a hook raised or returned what its
    spec does not allow, or a lifecycle hook failed the run; it names the plugin."""

    code = ErrorCode.PLUGIN_ERROR


class ExpressionError(AtomitonError):
    """A template or expression that cannot be evaluated: bad syntax, an undefined
    name, a value it cannot work on, or a budget it went over."""

    code = ErrorCode.EXPRESSION_ERROR
    http_status = 422


class ConfigurationError(AtomitonError):
    """A conductor, executor or node asked for something that cannot be set up."""

    code = ErrorCode.CONFIGURATION_ERROR
    http_status = 400


class PathNotAllowed(AtomitonError):
    """A node's path lies outside the conductor's ``allowed_roots``."""

    code = ErrorCode.PATH_NOT_ALLOWED
    http_status = 403


class CodeNotAllowed(AtomitonError):
    """User code (the ``code`` node) is disabled on this conductor (``allowCode: false``, or
    the server's ``--safe`` mode)."""

    code = ErrorCode.CODE_NOT_ALLOWED
    http_status = 403


class HostNotAllowed(AtomitonError):
    """A network node's URL reaches a host the conductor's security does not allow
    (``allowedHosts``, ``blockPrivateNetworks``)."""

    code = ErrorCode.HOST_NOT_ALLOWED
    http_status = 403


class ValueNotEncodable(AtomitonError):
    """A value no codec can store or send to a worker process (it names the node and port)."""

    code = ErrorCode.VALUE_NOT_ENCODABLE
    http_status = 422


class StorageError(AtomitonError):
    """Storage could not read or write what was asked."""

    code = ErrorCode.STORAGE_ERROR


class FlowNotFound(StorageError):
    """No stored flow has this id."""

    code = ErrorCode.FLOW_NOT_FOUND
    http_status = 404


class RunNotFound(StorageError):
    """No stored run has this id."""

    code = ErrorCode.RUN_NOT_FOUND
    http_status = 404


class InvalidFlowId(StorageError):
    """An id that cannot name a stored flow (``../x``, a path separator, an empty id)."""

    code = ErrorCode.INVALID_FLOW_ID
    http_status = 400


class ExecutionError(AtomitonError):
    """A node failed, and with it the run (unless ``continueOnFail``); the base of the
    errors a run ends with."""

    code = ErrorCode.EXECUTION_FAILED
    http_status = 409

    @classmethod
    def from_exception(cls, exc: BaseException, *, node_id: str, node_type: str) -> ExecutionError:
        """Wrap an exception a node let escape, keeping it as ``__cause__``; retryable, since
        nothing says retrying cannot help (a dropped connection, a busy file)."""
        err = cls(
            f"{node_type} raised {type(exc).__name__}: {_text_of(exc)}",
            node_id=node_id,
            retryable=True,
            node_type=node_type,
            exception_type=type(exc).__name__,
        )
        err.__cause__ = exc
        return err


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception cannot say what it is."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message cannot be shown>"


class NodeTimeout(ExecutionError):
    """An attempt of a node ran past its ``timeout``; retried when the node has retries
    left."""

    code = ErrorCode.TIMEOUT
    retryable_default = True


class ExecutionCancelled(ExecutionError):
    """The run was cancelled (``cancel()``, Ctrl-C, or a sibling's failure) while this
    node ran."""

    code = ErrorCode.CANCELLED


class NodeSkipped(ExecutionError):
    """A node did not run: it is disabled, or none of the inputs it needs arrived."""

    code = ErrorCode.SKIPPED


class OutputContractError(ExecutionError):
    """A node returned outputs it does not declare, or a value not of its port's type."""

    code = ErrorCode.INVALID_OUTPUT


class InvalidInput(ExecutionError):
    """A value arrived at an input port of a plain type (``int``, ``str``...) that is not of
    that type; ``context["port"]`` names the port."""

    code = ErrorCode.INVALID_INPUT


class VariableError(AtomitonError):
    """A run's input the flow does not declare, or whose value its variable's type cannot
    take; ``context["variable"]`` names it."""

    code = ErrorCode.INVALID_VARIABLE
    http_status = 422


class ResourceLimitExceeded(ExecutionError):
    """An isolated node went over ``cpuLimit``, ``memoryLimit`` or ``processLimit``, or a run
    over the conductor's memory ceiling; ``context["limit"]`` names which."""

    code = ErrorCode.RESOURCE_LIMIT


class WorkerCrashed(ExecutionError):
    """An isolated node's worker process died (a segfault, ``os._exit``, the OOM killer);
    only that node fails, the pool replaces the worker."""

    code = ErrorCode.WORKER_CRASHED


class InjectedFault(ExecutionError):
    """The failure a run's ``inject`` option put in place of a node's work (retried as a
    node's own failure would be)."""

    code = ErrorCode.INJECTED_FAULT
    retryable_default = True


class CircularDependency(ExecutionError):
    """A flow that runs itself, directly or through ``flow`` nodes, found as it runs."""

    code = ErrorCode.CIRCULAR_DEPENDENCY


class RequestError(AtomitonError):
    """What an HTTP request to the server got wrong (the body, the token, a limit)."""

    code = ErrorCode.BAD_REQUEST
    http_status = 400


class Unauthorized(RequestError):
    """A request to the server without the right bearer token."""

    code = ErrorCode.UNAUTHORIZED
    http_status = 401


class RouteNotFound(RequestError):
    """A request for a path or method the server does not serve."""

    code = ErrorCode.ROUTE_NOT_FOUND
    http_status = 404


class ExecutionNotFound(RequestError):
    """No execution with this id on the server (nor in its storage)."""

    code = ErrorCode.EXECUTION_NOT_FOUND
    http_status = 404


class NoStorage(RequestError):
    """The server keeps no flows: it was started without storage."""

    code = ErrorCode.NO_STORAGE
    http_status = 404


class ExecutionConflict(RequestError):
    """An execution id already taken, or an action on an execution that already ended."""

    code = ErrorCode.EXECUTION_CONFLICT
    http_status = 409


class FlowIdMismatch(RequestError):
    """The id in a request's flow is not the id in its URL."""

    code = ErrorCode.FLOW_ID_MISMATCH
    http_status = 422


class PayloadTooLarge(RequestError):
    """A request body larger than the server accepts (``--max-body-bytes``)."""

    code = ErrorCode.BODY_TOO_LARGE
    http_status = 413


class TooManyExecutions(RequestError):
    """More executions running than the server allows; try again when some finish."""

    code = ErrorCode.TOO_MANY_EXECUTIONS
    http_status = 429
    retryable_default = True


class RemoteError(AtomitonError):
    """The server answered with an error that carries no code of ours (a proxy's 502...)."""

    code = ErrorCode.REMOTE_ERROR
    http_status = 502

    def __init__(self, message: str, *, status_code: int = 502, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status_code = status_code


ERROR_CLASSES = _REGISTRY


def error_class(code: str) -> type[AtomitonError] | None:
    """The class that owns ``code``, or None for a code no imported class owns."""
    return _REGISTRY.get(code)
