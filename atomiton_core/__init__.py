"""Atomiton: a node-based automation engine. Store, validate and execute flows of nodes.

The public API is what ``__all__`` lists; everything else is implementation.
"""

from __future__ import annotations

from atomiton_core import signals
from atomiton_core.catalogue import Catalogue, PluginWarning
from atomiton_core.conductor.conductor import Conductor, Execution, create_conductor
from atomiton_core.conductor.plan import FlowPlan
from atomiton_core.conductor.results import (
    ExecutionResult,
    ExecutionStatus,
    NodeResult,
    NodeStatus,
)
from atomiton_core.errors import (
    AtomitonError,
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
    PluginError,
    StorageError,
)
from atomiton_core.flow.models import Edge, ExecutionSettings, Flow, NodeSpec, Settings, Variable
from atomiton_core.flow.validation import Problem, ValidationReport, validate
from atomiton_core.flow.yaml_io import dumps_flow, load_flow, loads_flow, save_flow
from atomiton_core.hookspecs import hookimpl, hookspec
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import NodeType, Port, node
from atomiton_core.storage.flows import FlowStorage, create_storage

__version__ = "0.1.0"

__all__ = [
    "AtomitonError",
    "Catalogue",
    "Conductor",
    "Edge",
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
    "PluginError",
    "PluginWarning",
    "Port",
    "Problem",
    "Settings",
    "StorageError",
    "ValidationReport",
    "Variable",
    "__version__",
    "create_conductor",
    "create_storage",
    "dumps_flow",
    "hookimpl",
    "hookspec",
    "load_flow",
    "loads_flow",
    "node",
    "save_flow",
    "signals",
    "validate",
]
