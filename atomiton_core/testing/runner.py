"""Run one node through the real conductor: parameters validated, timeouts and retries enforced.

A one-node flow is built in memory. Each input value arrives over an edge from a *feed* node
(a node type private to the runner that hands the values over by reference, so the node
receives the very objects given), and a container node gets a pass-through child unless
``children`` are given.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from atomiton_core.catalogue import Catalogue
from atomiton_core.conductor.conductor import Conductor, Execution
from atomiton_core.errors import AtomitonError, ExecutionError, NodeSkipped
from atomiton_core.flow.models import Edge, Flow, NodeSpec
from atomiton_core.nodes.context import NodeContext
from atomiton_core.nodes.definition import NodeType, node
from atomiton_core.results import ExecutionResult, ExecutionStatus, NodeStatus
from atomiton_core.storage.flows import FlowStorage, create_storage

__all__ = ["NodeRunner", "arun_node", "run_node"]

FEED_TYPE = "atomiton.testing.feed"
ECHO_TYPE = "atomiton.testing.echo"
FEED_ID = "feed"
NODE_ID = "node"
ECHO_ID = "echo"

Children = tuple[Sequence[NodeSpec | Mapping[str, Any]], Sequence[Edge | Mapping[str, Any]]]


class _FeedParams(BaseModel):
    key: str


@node(
    ECHO_TYPE,
    name="Echo (testing kit)",
    blocking=False,
    dynamic_outputs=True,
    description="Returns its inputs as its outputs; the default child of a container under test",
)
def _echo(ctx: NodeContext, params: BaseModel, **inputs: Any) -> dict[str, Any]:
    return dict(inputs)


class NodeRunner:
    """A conductor set up to run single nodes; reuse one to run many (``check_node`` does).

    ``node_types`` are added to the catalogue (replacing installed ones of the same id);
    ``plugins`` and ``autoload`` are as for ``create_conductor``; ``catalogue`` replaces the
    loaded one altogether. ``storage`` (e.g. holding the flows a ``flow`` node runs) defaults to
    a fresh ``memory://`` folder, removed by ``close()``.
    """

    def __init__(
        self,
        node_types: Iterable[NodeType] = (),
        *,
        plugins: Iterable[Any] = (),
        autoload: bool | None = False,
        catalogue: Mapping[str, NodeType] | None = None,
        config: Mapping[str, Any] | None = None,
        storage: FlowStorage | None = None,
    ) -> None:
        self._pending: dict[str, dict[str, Any]] = {}
        pending = self._pending

        @node(FEED_TYPE, params=_FeedParams, blocking=False, dynamic_outputs=True)
        def feed(ctx: NodeContext, params: _FeedParams) -> dict[str, Any]:
            return pending[params.key]

        base = catalogue if catalogue is not None else Catalogue.load(plugins, autoload=autoload)
        types = dict(base)
        for nt in node_types:
            types[nt.id] = nt
        types[FEED_TYPE] = feed
        types[ECHO_TYPE] = _echo
        self.catalogue = Catalogue(types, getattr(base, "problems", ()))
        self.catalogue.plugin_manager = getattr(base, "plugin_manager", None)
        self._own_storage = storage is None
        self.storage: FlowStorage = (
            storage
            if storage is not None
            else create_storage(f"memory://atomiton-testing-{uuid.uuid4().hex}")
        )
        self.conductor = Conductor(self.catalogue, self.storage, config=config, record_runs=False)

    def close(self) -> None:
        """Close its conductor and remove the storage it made for itself."""
        self.conductor.close()
        fs, root = self.storage.fs, self.storage.root
        if self._own_storage and fs.exists(root):
            fs.rm(root, recursive=True)

    def __enter__(self) -> NodeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve(self, node_type: NodeType | str) -> NodeType:
        """The node type, looked up by id in this runner's catalogue when given a string."""
        if isinstance(node_type, NodeType):
            known = self.catalogue.get(node_type.id)
            if known is not node_type:
                raise ValueError(
                    f"node type {node_type.id!r} is not the one in this runner's catalogue; "
                    "pass it in NodeRunner(node_types=[...])"
                )
            return node_type
        return self.catalogue.require(node_type)

    # -- building the flow ---------------------------------------------------------------
    def flow_for(
        self,
        node_type: NodeType | str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        children: Children | None = None,
        key: str = "",
    ) -> Flow:
        """The one-node flow that runs ``node_type``; its feed reads ``inputs`` under ``key``."""
        nt = self.resolve(node_type)
        values: dict[str, Any] = {}
        edges: list[Edge] = []
        for port, value in (inputs or {}).items():
            declared = nt.inputs.get(port)
            if declared is not None and declared.multiple:
                if not isinstance(value, list | tuple):
                    raise TypeError(
                        f"input port {port!r} of {nt.id!r} takes several edges: pass a list "
                        f"of the values they bring, got {type(value).__name__}"
                    )
                for k, item in enumerate(value):
                    values[f"{port}#{k}"] = item
                    edges.append(_edge(FEED_ID, f"{port}#{k}", NODE_ID, port))
            else:
                values[port] = value
                edges.append(_edge(FEED_ID, port, NODE_ID, port))
        nodes: list[NodeSpec] = []
        if values:
            if key:
                self._pending[key] = values
            nodes.append(NodeSpec(id=FEED_ID, type=FEED_TYPE, parameters={"key": key}))
        spec = NodeSpec(id=NODE_ID, type=nt.id, parameters=dict(params or {}))
        if children is not None:
            child_nodes, child_edges = children
            spec.nodes = [NodeSpec.model_validate(n) for n in child_nodes]
            spec.edges = [Edge.model_validate(e) for e in child_edges]
        elif nt.container:
            offered = (
                set(nt.child_sources)
                if nt.child_sources is not None
                else set(nt.inputs) | (set(inputs or {}) if nt.dynamic_inputs else set())
            )
            spec.nodes = [NodeSpec(id=ECHO_ID, type=ECHO_TYPE)]
            spec.edges = [_edge(NODE_ID, port, ECHO_ID, port) for port in sorted(offered)]
        nodes.append(spec)
        return Flow(id="atomiton-testing-node", name=f"run {nt.id}", nodes=nodes, edges=edges)

    # -- running -------------------------------------------------------------------------
    def start(
        self,
        node_type: NodeType | str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        children: Children | None = None,
    ) -> Execution:
        """Start the node on the running loop; see :meth:`outputs` for reading the result."""
        key = uuid.uuid4().hex
        flow = self.flow_for(node_type, params, inputs, children=children, key=key)
        try:
            execution = self.conductor.start(flow)
        except BaseException:
            self._pending.pop(key, None)
            raise
        execution._task.add_done_callback(lambda _: self._pending.pop(key, None))
        return execution

    async def arun(
        self,
        node_type: NodeType | str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        children: Children | None = None,
    ) -> dict[str, Any]:
        """Run the node once and return its outputs, or raise the error it ended with."""
        execution = self.start(node_type, params, inputs, children=children)
        return self.outputs(await execution.result())

    def run(
        self,
        node_type: NodeType | str,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        children: Children | None = None,
    ) -> dict[str, Any]:
        """Synchronous :meth:`arun`; not for use inside a running event loop."""
        _no_running_loop("NodeRunner.run()", "await runner.arun(...)")
        return asyncio.run(self.arun(node_type, params, inputs, children=children))

    @staticmethod
    def outputs(result: ExecutionResult) -> dict[str, Any]:
        """The node's outputs from a result, or raise the error the run ended with."""
        if result.status is not ExecutionStatus.COMPLETED:
            error = result.error or ExecutionError(f"the run ended {result.status}")
            raise error
        res = result.nodes.get(NODE_ID)
        if res is None or res.status is not NodeStatus.COMPLETED:
            reason = res.reason if res is not None else "not run"
            raise NodeSkipped(f"did not run: {reason}", node_id=NODE_ID)
        return res.outputs if res.outputs is not None else {}


def _edge(source: str, source_handle: str, target: str, target_handle: str) -> Edge:
    return Edge(
        source=source, source_handle=source_handle, target=target, target_handle=target_handle
    )


def _no_running_loop(what: str, instead: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ExecutionError(f"{what} was called inside a running event loop", hint=f"use {instead}")


def _runner_for(
    node_type: NodeType | str,
    plugins: Iterable[Any],
    autoload: bool | None,
    catalogue: Mapping[str, NodeType] | None,
    config: Mapping[str, Any] | None,
    storage: FlowStorage | None,
) -> NodeRunner:
    extra = [node_type] if isinstance(node_type, NodeType) else []
    if autoload is None and isinstance(node_type, NodeType) and not plugins:
        autoload = False
    return NodeRunner(
        extra,
        plugins=plugins,
        autoload=autoload,
        catalogue=catalogue,
        config=config,
        storage=storage,
    )


async def arun_node(
    node_type: NodeType | str,
    params: Mapping[str, Any] | None = None,
    *,
    inputs: Mapping[str, Any] | None = None,
    children: Children | None = None,
    plugins: Iterable[Any] = (),
    autoload: bool | None = None,
    catalogue: Mapping[str, NodeType] | None = None,
    config: Mapping[str, Any] | None = None,
    storage: FlowStorage | None = None,
    **input_values: Any,
) -> dict[str, Any]:
    """Async :func:`run_node`."""
    runner = _runner_for(node_type, plugins, autoload, catalogue, config, storage)
    try:
        return await runner.arun(
            node_type, params, {**(inputs or {}), **input_values}, children=children
        )
    finally:
        runner.close()


def run_node(
    node_type: NodeType | str,
    params: Mapping[str, Any] | None = None,
    *,
    inputs: Mapping[str, Any] | None = None,
    children: Children | None = None,
    plugins: Iterable[Any] = (),
    autoload: bool | None = None,
    catalogue: Mapping[str, NodeType] | None = None,
    config: Mapping[str, Any] | None = None,
    storage: FlowStorage | None = None,
    **input_values: Any,
) -> dict[str, Any]:
    """Run one node through the real conductor; return its outputs or raise its error.

    ``params`` are the node's parameters as in a flow file (camelCase aliases work), reserved
    execution settings included (``{"timeout": 100, "retries": 2}``); invalid ones raise
    :class:`~atomiton_core.FlowValidationError`. Input values are keyword arguments named by
    port (or ``inputs={...}`` for ports named like this function's own options); a port that
    takes several edges gets a list. The error is the one the run ended with: the node's own
    :class:`~atomiton_core.AtomitonError`, ``NodeTimeout``, ``OutputContractError``, or an
    ``ExecutionError`` wrapping a bare exception (kept as ``__cause__`` and named by
    ``context["exception_type"]``).

    ``node_type`` is a :class:`~atomiton_core.NodeType` (run as given: only the core's nodes
    are loaded besides it, unless ``plugins``/``autoload`` say otherwise) or a type id looked
    up among the installed plugins. ``children=(nodes, edges)`` gives a container its body;
    by default a container gets one child that echoes the ports the container offers.
    ``config`` is the conductor's (``ctx.config``); ``storage`` its flow storage (default: a
    fresh ``memory://`` folder).
    """
    _no_running_loop("run_node()", "`await arun_node(...)`")
    return asyncio.run(
        arun_node(
            node_type,
            params,
            inputs=inputs,
            children=children,
            plugins=plugins,
            autoload=autoload,
            catalogue=catalogue,
            config=config,
            storage=storage,
            **input_values,
        )
    )


def is_wrapped_exception(error: AtomitonError) -> bool:
    """True if the conductor made ``error`` from an exception that was no AtomitonError."""
    # ExecutionError.from_exception marks what it wraps; a node's own ExecutionError raised
    # `from` a caught exception is not a wrapped one
    return type(error) is ExecutionError and "exception_type" in error.context
