"""Hypothesis strategies for node authors: parameters, input values and whole flows.

- :func:`params_for` draws parameter sets that the node type's pydantic model accepts, from its
  JSON schema (hypothesis-jsonschema), filtered through the model itself;
- :func:`inputs_for` draws a value of each input port's declared type (plugins add strategies
  for their own types through the ``atomiton_hypothesis_strategies`` hook);
- :func:`flows` draws valid flows (DAGs, optionally with groups) over given node types.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hypothesis import strategies as st
from pydantic import ValidationError

from atomiton_core.flow.models import Edge, Flow, NodeSpec
from atomiton_core.flow.settings import RESERVED_PARAMETERS
from atomiton_core.nodes.definition import NodeType, Port, ports_compatible, type_name

__all__ = ["StrategyError", "flows", "inputs_for", "json_values", "params_for"]

Strategies = Mapping[str, st.SearchStrategy[Any]]


class StrategyError(TypeError):
    """The kit cannot derive a strategy on its own; the message says what to pass instead."""


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """JSON-like values (no NaN or infinity): what an ``Any`` port receives in practice."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


# -- parameters ------------------------------------------------------------------------------
_UNSUPPORTED = ("patternProperties", "not", "if", "dependentSchemas", "propertyNames")


class _SchemaWalker:
    """JSON schema -> strategy. Objects, arrays and references are walked here; every other
    schema (strings, numbers, enums, ...) goes to hypothesis-jsonschema's ``from_schema``.

    Walking objects ourselves keeps parameter names exact and sidesteps hypothesis-jsonschema
    0.23's object generation, which relies on hypothesis internals that newer versions changed.
    """

    def __init__(self, root: dict[str, Any], where: str) -> None:
        self.defs: dict[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.where = where
        self.resolving: list[str] = []

    def fail(self, problem: str) -> StrategyError:
        return StrategyError(
            f"{self.where}: {problem}; pass a strategy of parameter dicts instead "
            "(e.g. check_node(..., params=st.fixed_dictionaries({...})))"
        )

    def walk(self, schema: Any) -> st.SearchStrategy[Any]:
        from hypothesis_jsonschema import from_schema

        if schema is True or schema == {}:
            return json_values()
        if schema is False:
            raise self.fail("a schema that accepts nothing")
        if not isinstance(schema, dict):
            raise self.fail(f"not a JSON schema: {schema!r}")
        bad = [k for k in _UNSUPPORTED if k in schema]
        if bad:
            raise self.fail(f"the schema uses {bad}, which the kit does not generate")
        if "$ref" in schema:
            return self.ref(schema["$ref"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.walk(branch) for branch in schema[key]])
        if "allOf" in schema:
            branches = schema["allOf"]
            if len(branches) == 1:
                return self.walk(branches[0])
            raise self.fail("allOf with several schemas")
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.walk({**schema, "type": k}) for k in kind])
        if kind == "object" or (kind is None and "properties" in schema):
            return self.object(schema)
        if kind == "array":
            return self.array(schema)
        if kind is None:
            return json_values()
        try:
            strategy: st.SearchStrategy[Any] = from_schema(schema)
            getattr(strategy, "wrapped_strategy", None)  # resolve the lazy strategy: fail here
        except Exception as exc:
            raise self.fail(f"hypothesis-jsonschema cannot handle {schema!r}: {exc}") from exc
        return strategy

    def ref(self, ref: str) -> st.SearchStrategy[Any]:
        name = ref.rsplit("/", 1)[-1]
        if name not in self.defs:
            raise self.fail(f"unresolvable reference {ref!r}")
        if name in self.resolving:
            raise self.fail(f"the model is recursive ({' -> '.join([*self.resolving, name])})")
        self.resolving.append(name)
        try:
            return self.walk(self.defs[name])
        finally:
            self.resolving.pop()

    def object(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = st.fixed_dictionaries(
            {k: self.walk(v) for k, v in props.items() if k in required},
            optional={k: self.walk(v) for k, v in props.items() if k not in required},
        )
        more = schema.get("additionalProperties", not props)
        if more is False or (props and more is True):
            return fixed
        values = self.walk(more if isinstance(more, dict) else {})
        keys = st.text(max_size=8).filter(lambda k: k not in props)
        lo = int(schema.get("minProperties", 0))
        hi = int(schema.get("maxProperties", lo + 4))
        extra = st.dictionaries(keys, values, min_size=lo, max_size=max(hi, lo))
        return st.tuples(fixed, extra).map(lambda pair: {**pair[1], **pair[0]})

    def array(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", lo + 5))
        prefix = schema.get("prefixItems")
        if prefix is not None:
            head = st.tuples(*(self.walk(p) for p in prefix)).map(list)
            items = schema.get("items", False if "maxItems" in schema else {})
            if items is False or len(prefix) >= hi:
                return head
            tail = st.lists(self.walk(items), max_size=max(0, hi - len(prefix)))
            return st.tuples(head, tail).map(lambda pair: pair[0] + pair[1])
        items = self.walk(schema.get("items", {}))
        if schema.get("uniqueItems"):
            return st.lists(items, min_size=lo, max_size=hi, unique_by=_json_key)
        return st.lists(items, min_size=lo, max_size=hi)


def _json_key(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=repr)


def params_for(node_type: NodeType) -> st.SearchStrategy[dict[str, Any]]:
    """Parameter dicts (camelCase aliases, as in a flow file) the node type's model accepts.

    Drawn from the model's JSON schema (``by_alias``), so bounds, enums, optional and nested
    fields are respected; the reserved execution settings are never drawn. Each draw is
    validated by the model, so custom validators hold too (a model whose validators reject most
    drawn values fails hypothesis's ``filter_too_much`` health check: pass an explicit strategy
    instead). Raises :class:`StrategyError` at once for schemas the kit cannot generate
    (recursive models, ``patternProperties``, ``not``...).
    """
    model = node_type.params
    where = f"node type {node_type.id!r}: parameters of {model.__name__}"
    schema = model.model_json_schema(by_alias=True)
    props = {k: v for k, v in schema.get("properties", {}).items() if k not in RESERVED_PARAMETERS}
    top = {
        "type": "object",
        "properties": props,
        "required": [k for k in schema.get("required", ()) if k in props],
        "additionalProperties": False,
    }
    strategy = _SchemaWalker(schema, where).walk(top)

    def accepted(data: Any) -> bool:
        try:
            model.model_validate(data)
        except ValidationError:
            return False
        return True

    return strategy.filter(accepted)


# -- input values ----------------------------------------------------------------------------
_PLAIN: dict[Any, st.SearchStrategy[Any]] = {
    float: st.floats(allow_nan=False, allow_infinity=False),
    complex: st.complex_numbers(allow_nan=False, allow_infinity=False),
}


def plugin_strategies(plugin_manager: Any) -> dict[str, st.SearchStrategy[Any]]:
    """Strategies plugins contribute through ``atomiton_hypothesis_strategies``, by type name."""
    found: dict[str, st.SearchStrategy[Any]] = {}
    if plugin_manager is None:
        return found
    for contributed in reversed(plugin_manager.hook.atomiton_hypothesis_strategies()):
        found.update(contributed or {})
    return found


def for_type(tp: Any, extra: Strategies | None = None) -> st.SearchStrategy[Any]:
    """A strategy for values of a port type: ``extra`` by type name first, ``Any`` as JSON."""
    extra = extra or {}
    name = type_name(tp)
    if name in extra:
        return extra[name]
    if tp is Any or tp is object:
        return json_values()
    if tp in _PLAIN:
        return _PLAIN[tp]
    if tp is list or tp is tuple:
        return st.lists(json_values(), max_size=5)
    if tp is dict:
        return st.dictionaries(st.text(max_size=8), json_values(), max_size=5)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of([for_type(a, extra) for a in args])
    if origin is typing.Annotated:
        return for_type(args[0], extra)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (list, set, frozenset) and args:
        items = for_type(args[0], extra)
        if origin is list:
            return st.lists(items, max_size=5)
        return st.frozensets(items, max_size=5).map(origin)
    if origin in (list, set, frozenset):
        return st.lists(json_values(), max_size=5).map(origin)
    if origin is dict and len(args) == 2:
        return st.dictionaries(for_type(args[0], extra), for_type(args[1], extra), max_size=5)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(for_type(args[0], extra), max_size=5).map(tuple)
        return st.tuples(*(for_type(a, extra) for a in args))
    return _from_type(tp, name)


def _from_type(tp: Any, name: str) -> st.SearchStrategy[Any]:
    """``st.from_type``, with a failure to resolve (now or at the first draw) explained."""
    from hypothesis.errors import InvalidArgument

    def explain(exc: Exception) -> StrategyError:
        return StrategyError(
            f"no strategy for port type {name!r}: {exc}; a plugin can provide one with the "
            f"hook atomiton_hypothesis_strategies (return {{{name!r}: strategy}}), or pass "
            "input_strategies={...}"
        )

    try:
        strategy = st.from_type(tp)
        getattr(strategy, "wrapped_strategy", None)
    except InvalidArgument as exc:
        raise explain(exc) from exc

    @st.composite
    def explained(draw: st.DrawFn) -> Any:
        try:
            return draw(strategy)
        except InvalidArgument as exc:
            raise explain(exc) from exc

    return explained()


_PORT_NAMES = st.text("abcdefghij", min_size=1, max_size=6)


def inputs_for(
    node_type: NodeType,
    *,
    strategies: Strategies | None = None,
    plugin_manager: Any = None,
    dynamic: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of input values keyed by port: every required port, optional ones sometimes.

    A port's values come from ``strategies`` (by port name or type name), then from plugins'
    ``atomiton_hypothesis_strategies`` (by type name, via ``plugin_manager``), then from the
    type itself (``st.from_type``; ``Any`` gives JSON-like values). A port that takes several
    edges gets a non-empty list. A node with ``**inputs`` gets up to two extra ports of JSON
    values unless ``dynamic=False``.
    """
    extra = {**plugin_strategies(plugin_manager), **(strategies or {})}
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for port in node_type.inputs.values():
        values = extra[port.name] if port.name in extra else for_type(port.type, extra)
        if port.multiple:
            values = st.lists(values, min_size=1, max_size=3)
        (required if port.required else optional)[port.name] = values
    fixed = st.fixed_dictionaries(required, optional=optional)
    if not (dynamic and node_type.dynamic_inputs):
        return fixed
    declared = set(node_type.inputs)
    more = st.dictionaries(
        _PORT_NAMES.filter(lambda n: n not in declared), json_values(), max_size=2
    )
    return st.tuples(fixed, more).map(lambda pair: {**pair[1], **pair[0]})


# -- flows -----------------------------------------------------------------------------------
@st.composite
def _graph(
    draw: st.DrawFn,
    catalogue: Mapping[str, NodeType],
    leaf_types: list[str],
    container_types: list[str],
    params: Callable[[NodeType], st.SearchStrategy[dict[str, Any]]],
    max_nodes: int,
    depth: int,
    prefix: str,
    offered: list[tuple[str, str]],
    container_id: str | None,
) -> tuple[list[NodeSpec], list[Edge], list[str]]:
    """Nodes and edges of one level; returns them and the container outputs they feed.
    An edge joins ports whose types are compatible (:func:`ports_compatible`), so a drawn
    flow never fails the conductor's check of an input's type."""
    #: (source node id, source port) pairs the nodes drawn so far offer to later ones
    sources = list(offered)
    #: the type of each source's values (Any: not known before the run)
    typed: dict[tuple[str, str], Any] = {}
    nodes: list[NodeSpec] = []
    edges: list[Edge] = []

    def fitting(port: Port) -> list[tuple[str, str]]:
        return [s for s in sources if ports_compatible(typed.get(s, Any), port.type)]

    def fed(nt: NodeType) -> bool:
        return all(fitting(nt.inputs[name]) for name in nt.required_inputs)

    n = draw(st.integers(1, max_nodes))
    for i in range(n):
        node_id = f"{prefix}n{i}"
        feedable = [t for t in leaf_types if fed(catalogue[t])]
        nestable = [t for t in container_types if fed(catalogue[t])] if depth > 0 else []
        if not feedable and not nestable:
            break
        nest = bool(nestable) and (not feedable or draw(st.integers(0, 3)) == 0)
        type_id = draw(st.sampled_from(nestable if nest else feedable))
        nt = catalogue[type_id]
        spec = NodeSpec(id=node_id, type=type_id, parameters=draw(params(nt)))
        for port in nt.inputs.values():
            candidates = fitting(port)
            if not candidates or not (port.required or draw(st.booleans())):
                continue
            count = draw(st.integers(1, 2)) if port.multiple else 1
            for _ in range(count):
                src, sport = draw(st.sampled_from(candidates))
                edges.append(_edge(src, sport, node_id, port.name))
        new_sources: list[tuple[str, str]] = [(node_id, p) for p in nt.outputs]
        typed.update({(node_id, p): port.type for p, port in nt.outputs.items()})
        if nest:
            inner_offered, outer_feeds = _offers(nt, sources, draw)
            for name, (src, sport) in outer_feeds.items():
                edges.append(_edge(src, sport, node_id, name))
            child_nodes, child_edges, child_outputs = draw(
                _graph(
                    catalogue,
                    leaf_types,
                    container_types,
                    params,
                    max(1, max_nodes // 2),
                    depth - 1,
                    f"{node_id}_",
                    [(node_id, p) for p in inner_offered],
                    node_id,
                )
            )
            spec.nodes = child_nodes
            spec.edges = child_edges
            new_sources += [(node_id, name) for name in child_outputs]
        nodes.append(spec)
        sources += new_sources
    outputs: list[str] = []
    if container_id is not None:
        mine = [(s, p) for s, p in sources if s != container_id]
        if mine:
            k = draw(st.integers(0, min(2, len(mine))))
            for j in range(k):
                src, sport = draw(st.sampled_from(mine))
                edges.append(_edge(src, sport, container_id, f"out{j}"))
                outputs.append(f"out{j}")
    return nodes, edges, outputs


def _offers(
    nt: NodeType, sources: list[tuple[str, str]], draw: st.DrawFn
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Ports a container offers its children, and outer edges feeding its dynamic inputs."""
    if nt.child_sources is not None:
        return sorted(nt.child_sources), {}
    if not nt.dynamic_inputs:
        return list(nt.inputs), {}
    feeds: dict[str, tuple[str, str]] = {}
    if sources:
        for j in range(draw(st.integers(0, 2))):
            feeds[f"in{j}"] = draw(st.sampled_from(sources))
    return list(feeds), feeds


def _edge(source: str, source_handle: str, target: str, target_handle: str) -> Edge:
    return Edge(
        source=source, source_handle=source_handle, target=target, target_handle=target_handle
    )


def flows(
    catalogue: Mapping[str, NodeType],
    node_types: Iterable[str] | None = None,
    *,
    max_nodes: int = 6,
    nested: bool | int = False,
    params: Mapping[str, st.SearchStrategy[dict[str, Any]]] | None = None,
) -> st.SearchStrategy[Flow]:
    """Valid flows over ``node_types`` (ids in ``catalogue``; default: all of them).

    Every drawn flow passes :func:`atomiton_core.validate`: each node reads only from nodes
    drawn before it (so the graph is acyclic), every required input port has exactly one edge
    (several for ports that take several), parameters come from :func:`params_for` or
    ``params`` (by type id). ``nested`` (``True`` or a depth) puts sub-flows in the container
    types among ``node_types``, fed from the container's offered ports and feeding its outputs.
    """
    ids = list(node_types) if node_types is not None else list(catalogue)
    missing = [t for t in ids if t not in catalogue]
    if missing:
        raise StrategyError(f"flows(): node types {missing} are not in the catalogue")
    overrides = dict(params or {})
    derived: dict[str, st.SearchStrategy[dict[str, Any]]] = {}

    def params_of(nt: NodeType) -> st.SearchStrategy[dict[str, Any]]:
        if nt.id in overrides:
            return overrides[nt.id]
        if nt.id not in derived:
            derived[nt.id] = params_for(nt)
        return derived[nt.id]

    for t in ids:  # fail now, naming the type, rather than at the first draw
        params_of(catalogue[t])
    depth = int(nested)
    containers = [t for t in ids if catalogue[t].container] if depth else []
    leaves = [t for t in ids if not catalogue[t].container]
    if not leaves and not containers:
        raise StrategyError("flows(): no node type to draw (containers need nested=True)")
    if not any(not catalogue[t].required_inputs for t in leaves) and not containers:
        raise StrategyError(
            "flows(): every node type has required inputs, so no flow can start; add a "
            "source node type (one without required inputs)"
        )

    def build(parts: tuple[list[NodeSpec], list[Edge], list[str]], n: int) -> Flow:
        nodes, edges, _ = parts
        return Flow(id=f"generated-{n}", name="Generated flow", nodes=nodes, edges=edges)

    graph = _graph(catalogue, leaves, containers, params_of, max_nodes, depth, "", [], None)
    return st.builds(build, graph, st.integers(0, 999))
