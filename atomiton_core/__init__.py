"""Atomiton: a node-based automation engine. Store, validate and execute flows of nodes.

The public API is what ``__all__`` lists; everything else is implementation.

The names load on first use (PEP 562: the module's ``__getattr__``), so ``import atomiton_core``
costs next to nothing and a program that needs only the flow models, or the command line's
``--help``, does not load the engine, its storage and its plugins. Type checkers read the
imports under ``TYPE_CHECKING``, which name the same objects.
"""

from __future__ import annotations

import logging as _logging
from importlib import import_module as _import_module

#: The library's records go nowhere until the program that embeds it configures logging
#: (without a handler, Python's last resort would print its warnings on stderr).
_logging.getLogger("atomiton").addHandler(_logging.NullHandler())

#: ``typing.TYPE_CHECKING`` without importing typing (7 ms): type checkers take any name
#: ``TYPE_CHECKING`` to be true, so they read the imports below and not ``__getattr__``.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from atomiton_core import codec, signals, wire
    from atomiton_core.catalogue import Catalogue, PluginWarning
    from atomiton_core.conductor.conductor import Conductor, Execution, create_conductor
    from atomiton_core.conductor.plan import FlowPlan
    from atomiton_core.errors import (
        AtomitonError,
        CircularDependency,
        ConfigurationError,
        ErrorCode,
        ExecutionCancelled,
        ExecutionError,
        ExpressionError,
        FlowLoadError,
        FlowNotFound,
        FlowValidationError,
        InvalidFlowId,
        NodeDefinitionError,
        NodeSkipped,
        NodeTimeout,
        NodeTypeNotFound,
        OutputContractError,
        PathNotAllowed,
        PluginError,
        Problem,
        RemoteError,
        RequestError,
        RunNotFound,
        StorageError,
        ValidationReport,
    )
    from atomiton_core.files import Location, atomic_write_bytes, atomic_write_text, resolve_path
    from atomiton_core.flow.models import Edge, Flow, NodeSpec, Settings, Variable
    from atomiton_core.flow.settings import ExecutionSettings
    from atomiton_core.flow.validation import validate
    from atomiton_core.flow.yaml_io import dumps_flow, load_flow, loads_flow, save_flow
    from atomiton_core.hookspecs import hookimpl, hookspec
    from atomiton_core.nodes.context import NodeContext
    from atomiton_core.nodes.definition import NodeType, Parameters, Port, node
    from atomiton_core.results import ExecutionResult, ExecutionStatus, NodeResult, NodeStatus
    from atomiton_core.security import Security
    from atomiton_core.storage.flows import FlowStorage, create_storage
    from atomiton_core.version import __version__

__all__ = [
    "AtomitonError",
    "Catalogue",
    "CircularDependency",
    "Conductor",
    "ConfigurationError",
    "Edge",
    "ErrorCode",
    "Execution",
    "ExecutionCancelled",
    "ExecutionError",
    "ExecutionResult",
    "ExecutionSettings",
    "ExecutionStatus",
    "ExpressionError",
    "Flow",
    "FlowLoadError",
    "FlowNotFound",
    "FlowPlan",
    "FlowStorage",
    "FlowValidationError",
    "InvalidFlowId",
    "Location",
    "NodeContext",
    "NodeDefinitionError",
    "NodeResult",
    "NodeSkipped",
    "NodeSpec",
    "NodeStatus",
    "NodeTimeout",
    "NodeType",
    "NodeTypeNotFound",
    "OutputContractError",
    "Parameters",
    "PathNotAllowed",
    "PluginError",
    "PluginWarning",
    "Port",
    "Problem",
    "RemoteError",
    "RequestError",
    "RunNotFound",
    "Security",
    "Settings",
    "StorageError",
    "ValidationReport",
    "Variable",
    "__version__",
    "atomic_write_bytes",
    "atomic_write_text",
    "codec",
    "create_conductor",
    "create_storage",
    "dumps_flow",
    "hookimpl",
    "hookspec",
    "load_flow",
    "loads_flow",
    "node",
    "resolve_path",
    "save_flow",
    "signals",
    "validate",
    "wire",
]

#: Where each public name is defined: the module it is read from on first use. A module of
#: this package given as its own value (``codec``) is the name of that module itself.
_ORIGIN: dict[str, str] = {
    "codec": "atomiton_core.codec",
    "signals": "atomiton_core.signals",
    "wire": "atomiton_core.wire",
    **dict.fromkeys(("Catalogue", "PluginWarning"), "atomiton_core.catalogue"),
    **dict.fromkeys(
        ("Conductor", "Execution", "create_conductor"), "atomiton_core.conductor.conductor"
    ),
    "FlowPlan": "atomiton_core.conductor.plan",
    **dict.fromkeys(
        (
            "AtomitonError",
            "CircularDependency",
            "ConfigurationError",
            "ErrorCode",
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
            "PathNotAllowed",
            "PluginError",
            "Problem",
            "RemoteError",
            "RequestError",
            "RunNotFound",
            "StorageError",
            "ValidationReport",
        ),
        "atomiton_core.errors",
    ),
    **dict.fromkeys(
        ("Location", "atomic_write_bytes", "atomic_write_text", "resolve_path"),
        "atomiton_core.files",
    ),
    **dict.fromkeys(
        ("Edge", "Flow", "NodeSpec", "Settings", "Variable"), "atomiton_core.flow.models"
    ),
    "ExecutionSettings": "atomiton_core.flow.settings",
    "validate": "atomiton_core.flow.validation",
    **dict.fromkeys(
        ("dumps_flow", "load_flow", "loads_flow", "save_flow"), "atomiton_core.flow.yaml_io"
    ),
    **dict.fromkeys(("hookimpl", "hookspec"), "atomiton_core.hookspecs"),
    "NodeContext": "atomiton_core.nodes.context",
    **dict.fromkeys(("NodeType", "Parameters", "Port", "node"), "atomiton_core.nodes.definition"),
    **dict.fromkeys(
        ("ExecutionResult", "ExecutionStatus", "NodeResult", "NodeStatus"),
        "atomiton_core.results",
    ),
    "Security": "atomiton_core.security",
    **dict.fromkeys(("FlowStorage", "create_storage"), "atomiton_core.storage.flows"),
    "__version__": "atomiton_core.version",
}

#: The package's own modules, reachable as attributes (``atomiton_core.errors``) as when the
#: package imported them all at once.
_SUBMODULES = frozenset(
    {
        "catalogue",
        "cli",
        "codec",
        "conductor",
        "errors",
        "files",
        "flow",
        "hookspecs",
        "nodes",
        "results",
        "secrets",
        "security",
        "server",
        "signals",
        "storage",
        "testing",
        "version",
        "wire",
    }
)


if not TYPE_CHECKING:  # a type checker knows every name from the imports above

    def __getattr__(name: str) -> object:
        """Load a public name (or one of the package's modules) the first time it is read."""
        origin = _ORIGIN.get(name)
        if origin is None:
            if name not in _SUBMODULES:
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
            origin = f"{__name__}.{name}"
        module = _import_module(origin)
        value = module if origin == f"{__name__}.{name}" else getattr(module, name)
        globals()[name] = value  # later reads find it without this function
        return value


def __dir__() -> list[str]:
    """The public names, loaded or not, the package's modules loaded so far, private names."""
    here = (n for n in globals() if n.startswith("_") or n in _SUBMODULES)
    return sorted({*here, *__all__})
