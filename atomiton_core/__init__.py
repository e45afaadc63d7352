"""Atomiton: a node-based automation engine. Store, validate and execute flows of nodes.

The public API is what ``__all__`` lists; everything else is implementation.
"""

from __future__ import annotations

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
