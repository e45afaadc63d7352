"""Planning: a validated flow compiled once into index-based graphs the engine walks.

Everything that does not change between runs is done here, not per node per run: node types
resolved, parameters validated, execution settings parsed, edges turned into index lists.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from atomiton_core.conductor.cluster import ClusterValue
from atomiton_core.errors import AtomitonError, InvalidInput, ValidationReport
from atomiton_core.flow.models import Edge, Flow, NodeSpec
from atomiton_core.flow.settings import ExecutionSettings
from atomiton_core.flow.validation import FLOW_REFERENCE_TYPE, ResolvedNode, validate
from atomiton_core.nodes import expressions
from atomiton_core.nodes.definition import NodeType, plain_kinds
from atomiton_core.secrets import secret_fields, secret_parameter_values
from atomiton_core.storage.runs import digest

if TYPE_CHECKING:
    from atomiton_core.catalogue import Catalogue
    from atomiton_core.storage.flows import FlowStorage

__all__ = ["FlowPlan", "GraphPlan", "PlanCache", "PlannedNode", "flow_digest", "plan_flow"]

#: Source index of an input that comes from the enclosing container.
FROM_CONTAINER = -1


class PlannedNode:
    __slots__ = (
        "child_outputs",
        "children",
        "declared_outputs",
        "deferred",
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
        "ports",
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
        facts: _TypeFacts | None = None,
    ) -> None:
        if facts is None:
            facts = _TypeFacts(node_type)
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
        #: Parameters that are not text, given as templates: rendered as each run starts
        #: (see ``GraphRun``), by the key the flow gives them under.
        self.deferred: dict[str, str] | None = None
        #: Its parameters hold templates (a cached node's key then covers what they render).
        self.templated = settings.cache and _has_template(spec.parameters)
        #: A container, or a stored flow run as a node: never reused whole on a resume.
        self.runs_children = facts.runs_children
        #: (source index or FROM_CONTAINER, source port, target port, port takes several
        #: edges); a list while the graph is planned, then a tuple.
        self.inputs: Sequence[tuple[int, str, str, bool]] = []
        self.successors: Sequence[int] = []
        self.n_preds = 0
        #: Distinct predecessor indices (outputs released once all their consumers started).
        self.preds: tuple[int, ...] = ()
        #: Outputs needed after the graph finishes: a sink, or feeding the container's outputs.
        self.keep = False
        self.required = facts.required
        #: The input ports it takes (None: any, ``**inputs``); a child with no edge into it
        #: is given those of its container's inputs (see ``GraphRun``).
        self.ports = facts.ports
        #: Input ports of a plain type (int, str, list...): what arrives is checked.
        self.typed_inputs = facts.typed_inputs
        self.children: GraphPlan | None = None
        self.child_outputs: tuple[str, ...] = ()
        self.declared_outputs = facts.declared_outputs
        self.timeout_s = settings.timeout / 1000 if settings.timeout is not None else None
        #: Cheap sync nodes with no timeout or retries run inline, without a task or thread.
        self.inline = (
            facts.may_inline
            and settings.timeout is None
            and settings.retries == 0
            and not settings.isolated
            and settings.executor != "dask"
        )
        #: Async nodes with no timeout or retries are awaited directly in their task.
        self.direct = (
            node_type.is_async
            and settings.timeout is None
            and settings.retries == 0
            and not settings.isolated
            and settings.executor != "dask"
        )


class _TypeFacts:
    """What planning derives from a node type alone: worked out once per type and plan,
    and shared by its nodes (a frozenset per node would be two objects more per node for
    the garbage collector to walk)."""

    __slots__ = (
        "declared_outputs",
        "may_inline",
        "multiple",
        "ports",
        "required",
        "runs_children",
        "typed_inputs",
    )

    def __init__(self, node_type: NodeType) -> None:
        self.required = frozenset(node_type.required_inputs)
        self.typed_inputs: tuple[tuple[str, tuple[type, ...], bool], ...] = tuple(
            (port.name, kinds, port.multiple)
            for port in node_type.inputs.values()
            # a port taking several edges is annotated as the list it receives
            if not port.multiple and (kinds := plain_kinds(port.type)) is not None
        )
        self.declared_outputs: frozenset[str] | None = (
            None if node_type.dynamic_outputs else frozenset(node_type.outputs)
        )
        self.runs_children = node_type.container or node_type.id == "flow"
        self.may_inline = (
            not node_type.is_async and not node_type.blocking and not node_type.container
        )
        self.multiple = frozenset(p.name for p in node_type.inputs.values() if p.multiple)
        self.ports: frozenset[str] | None = (
            None if node_type.dynamic_inputs else frozenset(node_type.inputs)
        )


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


def wrong_input(pn: PlannedNode, kwargs: dict[str, Any]) -> AtomitonError | None:
    """An error naming the first input port whose value is not of the port's type."""
    for port, kinds, multiple in pn.typed_inputs:
        if port not in kwargs:
            continue
        values = kwargs[port] if multiple else [kwargs[port]]
        for value in values:
            if type(value) is ClusterValue:  # checked by what it is, where it is held
                if value.kind is None or issubclass(value.kind, kinds):
                    continue
                names = " | ".join(k.__name__ for k in kinds)
                return InvalidInput(
                    f"input port {port!r} ({names}) received {value!r}",
                    node_id=pn.id,
                    hint="check the edge into this port: its source gives another type",
                    port=port,
                )
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
    #: The nodes here with parameters rendered as each run starts (``PlannedNode.deferred``).
    deferred: tuple[int, ...] = ()
    #: A chain (one root, at most one successor a node): never two nodes ready at once.
    one_at_a_time: bool = False
    #: The container gives its inputs to the children no edge feeds (a group; not a loop or
    #: a parallel, whose children take ``item``, ``index``... by name or by edge).
    feeds_children: bool = False


@dataclass(slots=True)
class FlowPlan:
    """A validated flow, planned for running: what ``conductor.prepare(flow)`` gives and
    ``start`` / ``execute`` / ``run`` accept in place of the flow, so that a flow run many
    times is validated and planned once."""

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
        """A digest of the flow's content (what a run record names the flow's state by, and
        the conductor's plan cache keys plans by)."""
        if self._content_hash is None:
            try:
                self._content_hash = flow_digest(self.flow)
            except PydanticSerializationError:  # a value only Python holds (a flow built in code)
                self._content_hash = digest(self.flow.model_dump_json(by_alias=True, fallback=repr))
        return self._content_hash


def flow_digest(flow: Flow) -> str:
    """A digest of everything a flow holds (every field, set or not: a default list changed
    in place counts), about 1.5 µs a node."""
    return digest(flow.model_dump_json(by_alias=True))


def _count_nodes(graph: GraphPlan) -> int:
    n, stack = 0, [graph]
    while stack:
        nodes = stack.pop().nodes
        n += len(nodes)
        stack.extend(pn.children for pn in nodes if pn.children is not None)
    return n


def _runs_stored_flows(graph: GraphPlan) -> bool:
    stack = [graph]
    while stack:
        for pn in stack.pop().nodes:
            if pn.type_id == FLOW_REFERENCE_TYPE:
                return True
            if pn.children is not None:
                stack.append(pn.children)
    return False


class PlanCache:
    """Plans of the flows a conductor ran lately, by their content's digest, so that running
    an unchanged flow again (``execute(flow)`` with the same or an equal Flow) does not plan
    it again. At most :attr:`MAX_PLANS` plans and :attr:`MAX_NODES` nodes in all are kept,
    the least recently used dropped first. Flows with ``flow`` nodes are not kept: whether
    they are valid depends on the flows in storage, which may change between runs."""

    MAX_PLANS = 16
    MAX_NODES = 250_000

    def __init__(self) -> None:
        self._plans: OrderedDict[str, tuple[FlowPlan, int]] = OrderedDict()
        self._nodes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._plans)

    def get(self, flow: Flow) -> tuple[str | None, FlowPlan | None]:
        """The flow's digest, and its plan when one is kept; no digest for a flow holding a
        value JSON cannot show (such a flow is planned every time: two different values
        could not be told apart)."""
        try:
            key = flow_digest(flow)
        except PydanticSerializationError:
            return None, None
        with self._lock:
            entry = self._plans.get(key)
            if entry is None:
                return key, None
            self._plans.move_to_end(key)
        plan = entry[0]
        if plan.flow is not flow and flow_digest(plan.flow) != key:
            # the flow planned then has been changed in place since: its nodes are the plan's
            self._drop(key)
            return key, None
        return key, plan

    def put(self, key: str, plan: FlowPlan) -> None:
        if _runs_stored_flows(plan.root):
            return
        size = _count_nodes(plan.root)
        if size > self.MAX_NODES:
            return
        with self._lock:
            if key in self._plans:
                return
            self._plans[key] = (plan, size)
            self._nodes += size
            while len(self._plans) > self.MAX_PLANS or self._nodes > self.MAX_NODES:
                _, (_, dropped) = self._plans.popitem(last=False)
                self._nodes -= dropped

    def _drop(self, key: str) -> None:
        with self._lock:
            entry = self._plans.pop(key, None)
            if entry is not None:
                self._nodes -= entry[1]

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._nodes = 0


def _plan_graph(
    nodes: list[NodeSpec],
    edges: list[Edge],
    report: ValidationReport,
    container_id: str | None,
    concurrency: int | None,
    facts: dict[int, _TypeFacts],
) -> GraphPlan:
    planned: list[PlannedNode] = []
    kinds: list[_TypeFacts] = []
    index: dict[str, int] = {}
    resolved_of = report.resolved
    for spec in nodes:
        resolved: ResolvedNode = resolved_of[id(spec)]
        node_type = cast(NodeType, resolved.node_type)
        known = facts.get(id(node_type))
        if known is None:
            known = facts[id(node_type)] = _TypeFacts(node_type)
        pn = PlannedNode(len(planned), spec, node_type, resolved.params, resolved.settings, known)
        pn.deferred = resolved.deferred
        if spec.nodes is not None or spec.edges is not None:
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
                facts,
            )
            pn.children.feeds_children = node_type.child_sources is None
        index[spec.id] = pn.index
        planned.append(pn)
        kinds.append(known)
    outputs_from: list[tuple[int, str, str]] = []
    inputs: list[list[tuple[int, str, str, bool]]] = [[] for _ in planned]
    successors: list[list[int]] = [[] for _ in planned]
    preds: list[list[int]] = [[] for _ in planned]
    many: dict[int, set[int]] = {}  # the distinct predecessors of nodes with many
    for edge in edges:
        source, target = edge.source, edge.target
        src = FROM_CONTAINER if source == container_id else index[source]
        if target == container_id:
            if src != FROM_CONTAINER:
                outputs_from.append((src, edge.source_handle, edge.target_handle))
            continue
        t = index[target]
        handle = edge.target_handle
        inputs[t].append((src, edge.source_handle, handle, handle in kinds[t].multiple))
        if src != FROM_CONTAINER:
            mine = preds[t]
            if len(mine) < 16:  # a handful of edges into one node: a list is the fastest
                if src in mine:
                    continue
            else:
                seen = many.get(t)
                if seen is None:
                    seen = many[t] = set(mine)
                if src in seen:
                    continue
                seen.add(src)
            mine.append(src)
            successors[src].append(t)
    for pn in planned:
        i = pn.index
        pn.inputs = tuple(inputs[i])
        pn.successors = tuple(successors[i])
        pn.preds = tuple(preds[i])
        pn.n_preds = len(pn.preds)
        pn.keep = not pn.successors
    for src, _, _ in outputs_from:
        planned[src].keep = True
    roots = [pn.index for pn in planned if pn.n_preds == 0]
    sinks = [pn.index for pn in planned if not pn.successors]
    uses_cache = any(
        pn.settings.cache or (pn.children is not None and pn.children.uses_cache) for pn in planned
    )
    deferred = tuple(pn.index for pn in planned if pn.deferred)
    one_at_a_time = len(roots) == 1 and all(len(pn.successors) <= 1 for pn in planned)
    return GraphPlan(
        planned, roots, sinks, outputs_from, concurrency, uses_cache, deferred, one_at_a_time
    )


def plan_flow(flow: Flow, catalogue: Catalogue, storage: FlowStorage | None = None) -> FlowPlan:
    """Validate and compile a flow; raises FlowValidationError listing every problem.

    The cyclic garbage collector is paused meanwhile: planning builds a structure and leaves
    no garbage, and the collector would otherwise walk the whole flow again and again as the
    plan grows (40 % of planning a 100,000-node flow)."""
    with paused_gc():
        return _plan_flow(flow, catalogue, storage)


def _plan_flow(flow: Flow, catalogue: Catalogue, storage: FlowStorage | None) -> FlowPlan:
    report = validate(flow, catalogue, storage=storage, templates=expressions.ENGINE)
    report.raise_for_problems(flow.source)
    runtime = flow.settings.runtime
    concurrency = runtime.concurrency if runtime.parallel else 1
    root = _plan_graph(flow.nodes, flow.edges, report, None, concurrency, {})
    report.resolved.clear()  # the plan holds what it needs; the report keeps its problems
    if flow.pins:
        for pn in root.nodes:
            if pn.id in flow.pins:
                pn.pinned = dict(flow.pins[pn.id])
    timeout_s = runtime.timeout / 1000 if runtime.timeout is not None else None
    secret = tuple(_secret_values(root))
    return FlowPlan(flow, report, root, flow.variable_defaults(), timeout_s, secret)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection in the block (unless it was off already: then it stays
    off). For synchronous steps that only build: what they allocate is counted, and the
    next collection after them takes it in at once."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
