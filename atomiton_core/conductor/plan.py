"""Planning: a validated flow compiled once into index-based graphs the engine walks.

Everything that does not change between runs is done here, not per node per run: node types
resolved, parameters validated, execution settings parsed, edges turned into index lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from atomiton_core.errors import AtomitonError, InvalidInput, ValidationReport
from atomiton_core.flow.models import Edge, Flow, NodeSpec
from atomiton_core.flow.settings import ExecutionSettings
from atomiton_core.flow.validation import ResolvedNode, validate
from atomiton_core.nodes.definition import NodeType
from atomiton_core.secrets import secret_fields, secret_parameter_values
from atomiton_core.storage.runs import digest

if TYPE_CHECKING:
    from atomiton_core.catalogue import Catalogue
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["FlowPlan", "GraphPlan", "PlannedNode", "plan_flow"]

#: Source index of an input that comes from the enclosing container.
FROM_CONTAINER = -1


class PlannedNode:
    __slots__ = (
        "child_outputs",
        "children",
        "declared_outputs",
        "direct",
        "fn",
        "id",
        "index",
        "inline",
        "inputs",
        "keep",
        "n_preds",
        "node_type",
        "params",
        "params_digest",
        "pinned",
        "preds",
        "required",
        "runs_children",
        "settings",
        "spec",
        "successors",
        "templated",
        "timeout_s",
        "type_id",
        "typed_inputs",
    )

    def __init__(
        self,
        index: int,
        spec: NodeSpec,
        node_type: NodeType,
        params: BaseModel,
        settings: ExecutionSettings,
    ) -> None:
        self.index = index
        self.id = spec.id
        self.spec = spec
        self.node_type = node_type
        self.type_id = node_type.id
        self.fn: Callable[..., Any] = node_type.fn
        self.params = params
        self.settings = settings
        #: A digest of the node's parameters as the flow gives them (for run-log keys).
        self.params_digest: str | None = None
        #: The outputs the flow pins for this node: it does not run, these flow on.
        self.pinned: dict[str, Any] | None = None
        #: Its parameters hold templates (a cached node's key then covers what they render).
        self.templated = settings.cache and _has_template(spec.parameters)
        #: A container, or a stored flow run as a node: never reused whole on a resume.
        self.runs_children = node_type.container or node_type.id == "flow"
        #: (source index or FROM_CONTAINER, source port, target port, port takes several edges)
        self.inputs: list[tuple[int, str, str, bool]] = []
        self.successors: list[int] = []
        self.n_preds = 0
        #: Distinct predecessor indices (outputs released once all their consumers started).
        self.preds: tuple[int, ...] = ()
        #: Outputs needed after the graph finishes: a sink, or feeding the container's outputs.
        self.keep = False
        self.required = frozenset(node_type.required_inputs)
        #: Input ports of a plain type (int, str, list...): what arrives is checked.
        self.typed_inputs: tuple[tuple[str, tuple[type, ...], bool], ...] = tuple(
            (port.name, kinds, port.multiple)
            for port in node_type.inputs.values()
            # a port taking several edges is annotated as the list it receives
            if not port.multiple and (kinds := _plain_kinds(port.type)) is not None
        )
        self.children: GraphPlan | None = None
        self.child_outputs: tuple[str, ...] = ()
        self.declared_outputs: frozenset[str] | None = (
            None if node_type.dynamic_outputs else frozenset(node_type.outputs)
        )
        self.timeout_s = settings.timeout / 1000 if settings.timeout is not None else None
        #: Cheap sync nodes with no timeout or retries run inline, without a task or thread.
        self.inline = (
            not node_type.is_async
            and not node_type.blocking
            and not node_type.container
            and settings.timeout is None
            and settings.retries == 0
            and not settings.isolated
        )
        #: Async nodes with no timeout or retries are awaited directly in their task.
        self.direct = (
            node_type.is_async
            and settings.timeout is None
            and settings.retries == 0
            and not settings.isolated
        )


_PLAIN = (bool, int, float, str, bytes, list, dict)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


def _plain_kinds(tp: Any) -> tuple[type, ...] | None:
    """The classes a value of a port's type may be, when the type is plain (``int``,
    ``str | None``, ``list[int]``...); None for anything else (Any, models, unions of more)."""
    import types
    import typing

    if tp is Any or tp is None:
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        kinds: list[type] = []
        for arg in typing.get_args(tp):
            part = (type(None),) if arg is type(None) else _plain_kinds(arg)
            if part is None:
                return None
            kinds.extend(part)
        return tuple(kinds)
    base = origin if origin is not None else tp
    if base in _PLAIN:
        return (int, float) if base is float else (base,)
    return None


def wrong_input(pn: PlannedNode, kwargs: dict[str, Any]) -> AtomitonError | None:
    """An error naming the first input port whose value is not of the port's type."""
    for port, kinds, multiple in pn.typed_inputs:
        if port not in kwargs:
            continue
        values = kwargs[port] if multiple else [kwargs[port]]
        for value in values:
            if not isinstance(value, kinds) or (
                isinstance(value, bool) and bool not in kinds and int in kinds
            ):
                names = " | ".join(k.__name__ for k in kinds)
                return InvalidInput(
                    f"input port {port!r} ({names}) received {type(value).__name__} "
                    f"{_short(value)}",
                    node_id=pn.id,
                    hint="check the edge into this port: its source gives another type",
                    port=port,
                )
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(slots=True)
class GraphPlan:
    nodes: list[PlannedNode]
    roots: list[int]
    sinks: list[int]
    #: Edges from a child to the container: (child index, source port, container output name).
    outputs_from: list[tuple[int, str, str]]
    concurrency: int | None
    #: A node here, or among a container's children here, has the setting ``cache``.
    uses_cache: bool = False


@dataclass(slots=True)
class FlowPlan:
    flow: Flow
    report: ValidationReport
    root: GraphPlan
    variables: dict[str, Any]
    timeout_s: float | None
    #: Values of parameters their node types mark secret, masked in what runs show.
    secret_values: tuple[str, ...] = ()
    _content_hash: str | None = None

    @property
    def content_hash(self) -> str:
        """A digest of the flow's content (what a run record names the flow's state by)."""
        if self._content_hash is None:
            text = self.flow.model_dump_json(by_alias=True, exclude_unset=True)
            self._content_hash = digest(text)
        return self._content_hash


def _plan_graph(
    nodes: list[NodeSpec],
    edges: list[Edge],
    report: ValidationReport,
    container_id: str | None,
    concurrency: int | None,
) -> GraphPlan:
    planned: list[PlannedNode] = []
    index: dict[str, int] = {}
    for spec in nodes:
        resolved: ResolvedNode = report.resolved[id(spec)]
        node_type = cast(NodeType, resolved.node_type)
        pn = PlannedNode(len(planned), spec, node_type, resolved.params, resolved.settings)
        if spec.is_container:
            pn.child_outputs = resolved.child_outputs
            child_concurrency = getattr(resolved.params, "concurrency", None)
            if getattr(resolved.params, "parallel", True) is False:
                child_concurrency = 1
            pn.children = _plan_graph(
                spec.nodes or [],
                spec.edges or [],
                report,
                spec.id,
                child_concurrency if isinstance(child_concurrency, int) else None,
            )
        index[spec.id] = pn.index
        planned.append(pn)
    outputs_from: list[tuple[int, str, str]] = []
    preds: list[set[int]] = [set() for _ in planned]
    for edge in edges:
        src = FROM_CONTAINER if edge.source == container_id else index[edge.source]
        if edge.target == container_id:
            if src != FROM_CONTAINER:
                outputs_from.append((src, edge.source_handle, edge.target_handle))
            continue
        tgt = planned[index[edge.target]]
        port = tgt.node_type.inputs.get(edge.target_handle)
        tgt.inputs.append(
            (src, edge.source_handle, edge.target_handle, port is not None and port.multiple)
        )
        if src != FROM_CONTAINER and src not in preds[tgt.index]:
            preds[tgt.index].add(src)
            planned[src].successors.append(tgt.index)
    for pn in planned:
        pn.n_preds = len(preds[pn.index])
        pn.preds = tuple(preds[pn.index])
        pn.keep = not pn.successors
    for src, _, _ in outputs_from:
        planned[src].keep = True
    roots = [pn.index for pn in planned if pn.n_preds == 0]
    sinks = [pn.index for pn in planned if not pn.successors]
    uses_cache = any(
        pn.settings.cache or (pn.children is not None and pn.children.uses_cache) for pn in planned
    )
    return GraphPlan(planned, roots, sinks, outputs_from, concurrency, uses_cache)


def plan_flow(flow: Flow, catalogue: Catalogue, storage: FlowStorage | None = None) -> FlowPlan:
    """Validate and compile a flow; raises FlowValidationError listing every problem."""
    report = validate(flow, catalogue, storage=storage)
    report.raise_for_problems(flow.source)
    runtime = flow.settings.runtime
    concurrency = runtime.concurrency if runtime.parallel else 1
    root = _plan_graph(flow.nodes, flow.edges, report, None, concurrency)
    if flow.pins:
        for pn in root.nodes:
            if pn.id in flow.pins:
                pn.pinned = dict(flow.pins[pn.id])
    timeout_s = runtime.timeout / 1000 if runtime.timeout is not None else None
    secret = tuple(_secret_values(root))
    return FlowPlan(flow, report, root, flow.variable_defaults(), timeout_s, secret)


def _secret_values(graph: GraphPlan) -> list[str]:
    found: list[str] = []
    stack = [graph]
    while stack:
        for pn in stack.pop().nodes:
            if secret_fields(type(pn.params)):
                found += secret_parameter_values(pn.params)
            if pn.children is not None:
                stack.append(pn.children)
    return found
