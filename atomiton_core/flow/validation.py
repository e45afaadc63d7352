"""Validation: every problem of a flow at once, each with a stable code and its location.

Locations are key paths into the file (``nodes[2].parameters.path``, ``edges[0].target``),
and problems name the node or edge id as well, so an editor can highlight the culprit.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from atomiton_core.errors import AtomitonError, Problem, ValidationReport
from atomiton_core.flow import locate
from atomiton_core.flow.models import Edge, Flow, NodeSpec, pydantic_message
from atomiton_core.flow.protocols import CatalogueLike, FlowSource, NodeTypeLike, TemplateEngine
from atomiton_core.flow.settings import DEFAULT_SETTINGS, ExecutionSettings, own_parameters
from atomiton_core.flow.variables import VARIABLE_TYPES, convert

#: The node type that runs another stored flow; its ``flowId`` parameter names it.
FLOW_REFERENCE_TYPE = "flow"

__all__ = ["ResolvedNode", "validate"]


@dataclass(slots=True)
class ResolvedNode:
    """What validation learnt about one node, reused by the planner."""

    node_type: NodeTypeLike
    params: BaseModel
    settings: ExecutionSettings
    #: For containers: the output ports its children define (edges to the container's id).
    child_outputs: tuple[str, ...] = ()
    #: Parameters that are not text but given as templates (``count: "{{ n }}"``), by the
    #: key the flow gives them under: rendered over the variables as each run starts.
    deferred: dict[str, str] | None = None


#: Names every template may read besides the flow's variables: the node's input (nodes
#: render with ``input=``), all the variables, the run's secrets.
_NODE_NAMES = frozenset({"input", "vars", "secrets"})
#: And inside a container: what ``loop`` and ``parallel`` give their children.
_CHILD_NAMES = frozenset({"item", "index", "items", "iteration", "lastResult"})


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class _NoSecrets:
    """The secrets a template names are not known while validating."""

    def __getattr__(self, name: str) -> Any:
        raise AtomitonError(f"secret {name!r} is known only when the run starts")

    __getitem__ = __getattr__


def _literal_parameters(model: type[BaseModel]) -> frozenset[str]:
    """The keys (name and alias) of parameters that are values, never templates: fields
    marked ``json_schema_extra={"template": False}`` (``const``'s ``value``)."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("template") is False:
            keys.add(name)
            if field.alias:
                keys.add(field.alias)
    return frozenset(keys)


def _loc(prefix: str, rest: str) -> str:
    return f"{prefix}.{rest}" if prefix else rest


def _pydantic_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _unknown_parameter_names(model: type[BaseModel], params: Mapping[str, Any]) -> list[str]:
    if model.model_config.get("extra") in ("allow", "forbid"):
        return []
    known: set[str] = set()
    for name, info in model.model_fields.items():
        known.add(name)
        if info.alias:
            known.add(info.alias)
        if isinstance(info.validation_alias, str):
            known.add(info.validation_alias)
    return [k for k in params if k not in known]


_EMPTY: weakref.WeakKeyDictionary[type[BaseModel], BaseModel] = weakref.WeakKeyDictionary()


def _empty_params(model: type[BaseModel]) -> BaseModel | None:
    """The one instance of a parameter model with no fields, given nothing: every node of
    such a type shares it (it holds nothing a node could change); None if the model takes
    extra attributes or refuses to be empty."""
    found = _EMPTY.get(model)
    if found is None:
        if model.model_config.get("extra") == "allow":
            return None
        try:
            found = _EMPTY[model] = model.model_validate({})
        except ValidationError:
            return None
    return found


def _original_names_given(model: type[BaseModel], given: Mapping[str, Any]) -> dict[str, str]:
    """Our names of the parameters ``given`` by the original's names -> the name given
    (``depth`` -> ``flattenDepth``): a problem with one is reported where the flow has it."""
    originals: Mapping[str, str] = getattr(model, "original_names", None) or {}
    found: dict[str, str] = {}
    for old, new in originals.items():
        if old in given:
            found[new] = old
            for name, info in model.model_fields.items():
                if info.alias == new:
                    found[name] = old
    return found


def _translated(model: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` in the model's own names, when it accepts the original's (what its "before"
    validator does, for ``model_construct``, which runs none)."""
    originals = getattr(model, "original_names", None)
    if not originals or given.keys().isdisjoint(originals):
        return given
    try:
        return model.from_original(dict(given))  # type: ignore[attr-defined,no-any-return]
    except ValueError:
        return given


def _known_parameter_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


class _Validator:
    def __init__(
        self,
        flow: Flow,
        catalogue: CatalogueLike,
        storage: FlowSource | None,
        templates: TemplateEngine | None = None,
    ) -> None:
        self.flow = flow
        self.templates = templates
        #: How deep in containers the node being checked is.
        self._in_container = 0
        #: The current node's deferred parameters (see ``_templated``).
        self._deferred: dict[str, str] | None = None
        self.catalogue = catalogue
        self.storage = storage
        self.report = ValidationReport(flow_id=flow.id)
        self._acyclic: set[str] = set()
        #: Stored flows that ``flow`` nodes run, loaded once (None: not there or unreadable).
        self._stored: dict[str, Flow | None] = {}
        #: The top-level nodes' types (None: unknown), for the pins.
        self.top_types: dict[str, NodeTypeLike | None] = {}

    def add(self, code: str, message: str, location: str, **kw: Any) -> None:
        self.report.problems.append(Problem(code=code, message=message, location=location, **kw))

    def run(self) -> ValidationReport:
        self.variables()
        self.graph(self.flow.nodes, self.flow.edges, "", None)
        self.pins()
        return self.report

    def variables(self) -> None:
        """Each variable has a known type, and a default of that type."""
        for name, var in self.flow.variables.items():
            where = f"variables.{name}"
            if var.type not in VARIABLE_TYPES:
                close = difflib.get_close_matches(var.type, VARIABLE_TYPES, n=1)
                self.add(
                    "UNKNOWN_VARIABLE_TYPE",
                    f"variable {name!r} has type {var.type!r}, which is not a type",
                    f"{where}.type",
                    hint=(f"did you mean {close[0]!r}? " if close else "")
                    + f"the types are: {', '.join(VARIABLE_TYPES)}",
                )
                continue
            try:
                convert(name, var.type, var.default_value)
            except AtomitonError:
                self.add(
                    "INVALID_VARIABLE_DEFAULT",
                    f"variable {name!r} is of type {var.type}, but its default is "
                    f"{_short(var.default_value)}",
                    f"{where}.defaultValue",
                    hint=f"give a default of type {var.type}, or change its type",
                )

    def pins(self) -> None:
        """Each pin names a top-level node, and gives outputs its type has."""
        types = self.top_types
        for node_id, outputs in self.flow.pins.items():
            where = f"pins.{node_id}"
            if node_id not in types:
                self.add(
                    "PIN_NODE_NOT_FOUND",
                    f"outputs are pinned for node {node_id!r}, which the flow does not have",
                    where,
                    hint="remove the pin, or pin a node of the flow's top level",
                )
                continue
            nt = types[node_id]
            if nt is None or getattr(nt, "dynamic_outputs", False):
                continue
            unknown = sorted(set(outputs) - set(nt.outputs))
            if unknown:
                self.add(
                    "PIN_PORT_NOT_FOUND",
                    f"the pin of node {node_id!r} gives output port(s) {unknown} that "
                    f"{nt.id} does not have; its outputs are: {', '.join(nt.outputs) or 'none'}",
                    f"{where}.{unknown[0]}",
                    node_id=node_id,
                    hint="pin the node's own output ports (a run's outputs: "
                    "`atomiton run --pin-from RUN`)",
                )

    # -- one level: nodes, then edges, then cycles --------------------------------------
    def graph(
        self,
        nodes: list[NodeSpec],
        edges: list[Edge],
        prefix: str,
        container: tuple[NodeSpec, NodeTypeLike | None] | None,
    ) -> None:
        specs: dict[str, NodeSpec] = {}
        types: dict[str, NodeTypeLike | None] = {}
        positions: dict[str, int] = {}
        for i, spec in enumerate(nodes):
            here = _loc(prefix, f"nodes[{i}]")
            if spec.id in specs or (container and spec.id == container[0].id):
                self.add(
                    "DUPLICATE_ID",
                    f"node id {spec.id!r} is used more than once",
                    f"{here}.id",
                    node_id=spec.id,
                    hint="ids must be unique among the nodes of one flow or container",
                )
                continue
            specs[spec.id] = spec
            positions[spec.id] = i
            types[spec.id] = self.node(spec, here)
        if not prefix:
            self.top_types = types
        incoming = self.edges(edges, prefix, specs, types, container)
        for node_id in specs:
            nt = types[node_id]
            if nt is None:
                continue
            i = positions[node_id]
            # a group's child that no edge feeds is given the group's inputs, by port name
            fed_by_container = (
                container is not None
                and container[1] is not None
                and container[1].child_sources is None
                and not incoming.get(node_id)
            )
            for port in () if fed_by_container else nt.required_inputs:
                if port not in incoming.get(node_id, ()):
                    self.add(
                        "MISSING_REQUIRED_INPUT",
                        f"required input port {port!r} of node {node_id!r} ({nt.id}) has no "
                        "incoming edge",
                        _loc(prefix, f"nodes[{i}]"),
                        node_id=node_id,
                        hint=f"connect an output to {node_id}.{port}",
                    )
            self.missing_inputs(specs[node_id], incoming.get(node_id), _loc(prefix, f"nodes[{i}]"))
        self.cycles(edges, prefix, specs)

    def missing_inputs(self, spec: NodeSpec, incoming: Mapping[str, int] | None, here: str) -> None:
        """What the node's parameters say a run would lack, given the ports with an edge
        (``Parameters.missing_inputs`` of ``atomiton_core.nodes.definition``). A container's
        child that no edge feeds is given its container's inputs, known only when it runs:
        not checked."""
        resolved = self.report.resolved.get(id(spec))
        if resolved is None:
            return
        check = getattr(type(resolved.params), "missing_inputs", None)
        if check is None or getattr(check, "unchanged", False):
            return
        if not incoming and self._in_container:
            return
        for name, message in resolved.params.missing_inputs(frozenset(incoming or ())):
            self.add(
                "MISSING_PARAMETER",
                message,
                f"{here}.parameters.{name}",
                node_id=spec.id,
            )

    def node(self, spec: NodeSpec, here: str) -> NodeTypeLike | None:
        nt = self.catalogue.get(spec.type)
        if nt is None:
            self.add(
                "NODE_TYPE_NOT_FOUND",
                f"node type {spec.type!r} is not installed",
                f"{here}.type",
                node_id=spec.id,
                hint=self.catalogue.missing_hint(spec.type),
            )
        settings = self.settings(spec, here, nt)
        self._deferred = None
        params = self.params(spec, nt, here) if nt is not None else None
        deferred = self._deferred
        child_outputs: tuple[str, ...] = ()
        if spec.is_container:
            if nt is not None and not nt.container:
                self.add(
                    "NOT_A_CONTAINER",
                    f"node {spec.id!r} has child nodes but its type {nt.id!r} does not run "
                    "children",
                    f"{here}.nodes",
                    node_id=spec.id,
                    hint="use a container type such as 'group', 'loop' or 'parallel'",
                )
            self._in_container += 1
            try:
                self.graph(spec.nodes or [], spec.edges or [], here, (spec, nt))
            finally:
                self._in_container -= 1
            child_outputs = tuple(
                dict.fromkeys(e.target_handle for e in spec.edges or [] if e.target == spec.id)
            )
        elif nt is not None and nt.container:
            self.add(
                "EMPTY_CONTAINER",
                f"container node {spec.id!r} ({nt.id}) has no child nodes",
                here,
                node_id=spec.id,
                severity="warning",
            )
        if nt is not None and nt.container and settings is not None and settings.isolated:
            self.add(
                "INVALID_PARAMETER",
                f"container node {spec.id!r} ({nt.id}) cannot run isolated: its children "
                "run in the conductor",
                f"{here}.parameters.isolation",
                node_id=spec.id,
                hint="set isolation: process on the child nodes instead",
            )
            settings = None
        if nt is not None and params is not None and settings is not None:
            self.report.resolved[id(spec)] = ResolvedNode(
                nt, params, settings, child_outputs, deferred
            )
            if nt.id == FLOW_REFERENCE_TYPE:
                self.reference(spec, str(getattr(params, "flow_id", "")), here)
        return nt

    # -- flows referenced by `flow` nodes -----------------------------------------------
    def reference(self, spec: NodeSpec, target: str, here: str) -> None:
        if self.storage is None:
            return
        try:
            exists = self.storage.exists(target)
        except AtomitonError as exc:
            self.add("INVALID_PARAMETER", exc.message, f"{here}.parameters.flowId", node_id=spec.id)
            return
        if target != self.flow.id and not exists:
            self.add(
                "FLOW_NOT_FOUND",
                f"node {spec.id!r} runs flow {target!r}, which is not in storage",
                f"{here}.parameters.flowId",
                node_id=spec.id,
                hint=f"save it in storage {self.storage.url} first: storage.save(flow) "
                "(`atomiton flows save FILE`, PUT /api/flows/{id})",
            )
            return
        cycle = self._cycle_through(target, [self.flow.id])
        if cycle:
            self.add(
                "CIRCULAR_DEPENDENCY",
                "flow includes itself: " + " -> ".join(cycle),
                f"{here}.parameters.flowId",
                node_id=spec.id,
                hint="a flow cannot run itself through flow nodes; use a loop instead",
            )

    def subflow_input(self, spec: NodeSpec, handle: str, edge: Edge, here: str) -> None:
        """An edge into a ``flow`` node gives a variable of the flow it runs: one it declares."""
        target = spec.parameters.get("flowId")
        if not isinstance(target, str) or self.storage is None:
            return
        if target in self._stored:
            stored = self._stored[target]
        else:
            stored = None
            try:
                if target != self.flow.id and self.storage.exists(target):
                    stored = self.storage.load(target)
            except AtomitonError:
                pass  # reported where it is referenced, or when it runs
            self._stored[target] = stored
        if stored is None or handle in stored.variables:
            return
        names = sorted(stored.variables)
        close = difflib.get_close_matches(handle, names, n=1)
        self.add(
            "UNKNOWN_VARIABLE",
            f"node {spec.id!r} runs flow {target!r}, which declares no variable {handle!r}",
            f"{here}.targetHandle",
            edge_id=_label(edge),
            node_id=spec.id,
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "its variables: "
            + (", ".join(names) or "none")
            + f"; an edge into a flow node gives one of them (declare {handle!r} under "
            f"`variables:` in flow {target!r})",
        )

    def _cycle_through(self, flow_id: str, chain: list[str]) -> list[str] | None:
        if flow_id in chain:
            return [*chain[chain.index(flow_id) :], flow_id]
        if flow_id in self._acyclic or self.storage is None:
            return None
        try:
            stored = self.storage.load(flow_id)
        except AtomitonError:
            return None  # reported where it is referenced, or when it runs
        for target in _referenced_flows(stored.nodes):
            found = self._cycle_through(target, [*chain, flow_id])
            if found:
                return found
        self._acyclic.add(flow_id)
        return None

    def settings(
        self, spec: NodeSpec, here: str, nt: NodeTypeLike | None
    ) -> ExecutionSettings | None:
        defaults = nt.default_settings if nt is not None else None
        if not spec.parameters and not defaults:
            return DEFAULT_SETTINGS
        try:
            settings = ExecutionSettings.from_parameters(spec.parameters, defaults)
        except ValidationError as exc:
            for err in exc.errors():
                self.add(
                    "INVALID_PARAMETER",
                    f"execution setting: {pydantic_message(err)} (got {err.get('input')!r})",
                    f"{here}.parameters{_pydantic_loc(err['loc'])}",
                    node_id=spec.id,
                )
            return None
        loose = settings.limits_without_isolation(nt.own_limits if nt is not None else frozenset())
        if loose:
            self.add(
                "INVALID_PARAMETER",
                f"{', '.join(loose)} hold(s) an isolated node to a limit, and node "
                f"{spec.id!r} is not isolated",
                f"{here}.parameters.{loose[0]}",
                node_id=spec.id,
                hint="add 'isolation: process' to the node's parameters",
            )
            return None
        return settings

    def params(self, spec: NodeSpec, nt: NodeTypeLike, here: str) -> BaseModel | None:
        if not spec.parameters and not nt.params.model_fields:
            shared = _empty_params(nt.params)
            if shared is not None:
                return shared
        given = own_parameters(spec.parameters, nt.params)
        ok = True
        unknown = _unknown_parameter_names(nt.params, given)
        for name in unknown:
            close = difflib.get_close_matches(name, _known_parameter_names(nt.params), n=1)
            known = ", ".join(_known_parameter_names(nt.params)) or "none"
            self.add(
                "UNKNOWN_PARAMETER",
                f"node type {nt.id!r} has no parameter {name!r}",
                f"{here}.parameters.{name}",
                node_id=spec.id,
                hint=f"did you mean {close[0]!r}?" if close else f"its parameters are: {known}",
            )
            ok = False
        if self.templates is not None:
            literal = _literal_parameters(nt.params)
            for key, value in given.items():
                if key not in literal:
                    self.template_names(spec, value, f"{here}.parameters.{key}")
        try:
            model = nt.params.model_validate(given)
        except ValidationError as exc:
            handled, deferred = self._templated(spec, nt, here, given, exc)
            if handled:
                return deferred if ok else None
            names = _known_parameter_names(nt.params)
            given_as = _original_names_given(nt.params, given)
            for err in exc.errors():
                loc = err["loc"]
                if loc and loc[0] in given_as:  # said where the flow wrote it
                    loc = (given_as[str(loc[0])], *loc[1:])
                where = f"{here}.parameters{_pydantic_loc(loc)}"
                if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                    name = str(err["loc"][0])
                    close = difflib.get_close_matches(name, names, n=1)
                    self.add(
                        "UNKNOWN_PARAMETER",
                        f"node type {nt.id!r} has no parameter {name!r}",
                        where,
                        node_id=spec.id,
                        hint=f"did you mean {close[0]!r}?"
                        if close
                        else f"its parameters are: {', '.join(names) or 'none'}",
                    )
                    continue
                self.add(
                    "INVALID_PARAMETER",
                    f"{pydantic_message(err)} (got {_short(err.get('input'))})",
                    where,
                    node_id=spec.id,
                )
            return None
        return model if ok else None

    def template_names(self, spec: NodeSpec, value: Any, where: str) -> None:
        """Each template in ``value`` reads only names a run gives it.

        A node that data reaches (an edge into it, or a container's child, which is given
        its container's inputs) sees its input's fields by name as well, which are known only
        when it runs: there a name that is not a variable is taken for such a field, and
        reported (a warning) only when it is close to a known name, as a likely typo. A node
        that nothing reaches sees the variables and the names nodes are given: any other name
        is an error."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.template_names(spec, item, f"{where}.{key}")
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.template_names(spec, item, f"{where}[{i}]")
            return
        if not _is_template(value) or self.templates is None:
            return
        names = self.templates.names(value)
        if names is None:
            reason = self.templates.error(value) or "it cannot be compiled"
            self.add(
                "INVALID_TEMPLATE",
                f"the template {_short(value)} cannot be rendered: {reason}",
                where,
                node_id=spec.id,
                hint="templates are Jinja: {{ name }}, {{ value | filter }}; "
                "filters are those of Jinja's documentation",
            )
            return
        known = self.flow.variables.keys() | _NODE_NAMES
        if self._in_container:
            known |= _CHILD_NAMES
        unknown = names - known
        if not unknown:
            return
        fed = self._sees_input(spec, where)
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            variables = ", ".join(sorted(self.flow.variables)) or "none"
            if fed:
                if close:
                    self.add(
                        "UNDEFINED_NAME",
                        f"the template {_short(value)} reads {name!r}, which is not a variable "
                        "of the flow: it must then be a field of the node's input",
                        where,
                        node_id=spec.id,
                        severity="warning",
                        hint=f"did you mean {close[0]!r}? the flow's variables: {variables}",
                    )
                continue
            self.add(
                "UNDEFINED_NAME",
                f"the template {_short(value)} reads {name!r}, which is not a variable of the "
                "flow nor a name nodes are given",
                where,
                node_id=spec.id,
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"the flow's variables: {variables}; declare it under `variables:`, or "
                "use input, vars, secrets",
            )

    def _sees_input(self, spec: NodeSpec, where: str) -> bool:
        """The template at ``where`` may read the node's input fields: data reaches the node,
        and the template is rendered by the node, not as the run starts (a parameter that is
        not text, ``count: "{{ n }}"``, renders over the variables alone)."""
        if not self._receives_data(spec):
            return False
        _, found, key = where.rpartition(".parameters.")
        if not found or "." in key or "[" in key:
            return True  # inside a parameter's mapping or list: the node renders it
        nt = self.catalogue.get(spec.type)
        if nt is None:
            return True
        for name, info in nt.params.model_fields.items():
            if key in (name, info.alias, info.validation_alias):
                return _takes_text(info.annotation)
        return True

    def _receives_data(self, spec: NodeSpec) -> bool:
        """Data may reach the node when it runs: an edge ends at it, or it is the child of a
        container that gives its own inputs to the children no edge feeds (a ``group``; a
        ``loop`` or ``parallel`` gives its children ``item``, ``index``... instead)."""
        fed: set[int] | None = getattr(self, "_fed", None)
        if fed is None:
            fed = set()
            self._fed = fed
            levels: list[tuple[list[NodeSpec], list[Edge], bool]] = [
                (self.flow.nodes, self.flow.edges, False)
            ]
            while levels:
                nodes, edges, feeds = levels.pop()
                targets = {e.target for e in edges}
                for child in nodes:
                    if feeds or child.id in targets:
                        fed.add(id(child))
                    if child.is_container:
                        nt = self.catalogue.get(child.type)
                        gives = nt is None or nt.child_sources is None
                        levels.append((child.nodes or [], child.edges or [], gives))
        return id(spec) in fed

    def _templated(
        self,
        spec: NodeSpec,
        nt: NodeTypeLike,
        here: str,
        given: dict[str, Any],
        exc: ValidationError,
    ) -> tuple[bool, BaseModel | None]:
        """(True, the parameters) when what failed is only templates given for parameters
        that are not text (``count: "{{ n }}"``): each is rendered over the variables'
        defaults and checked (with a renderer), and rendered as each run starts. (True,
        None): such a template cannot render or renders a wrong value, reported here.
        (False, None): other problems, which the caller reports."""
        failed = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
        templated = {k: given[k] for k in failed if k in given and _is_template(given[k])}
        if not templated or len(failed) != len(templated):
            return False, None
        if self.templates is None:  # checked when the run renders them
            self._deferred = templated
            return True, nt.params.model_construct(**_translated(nt.params, given))
        render = self.templates.render
        defaults = self.flow.variable_defaults()
        names = {**defaults, "vars": defaults, "secrets": _NoSecrets()}
        rendered: dict[str, Any] = {}
        unknown: set[str] = set()  # rendered None or read a secret: known when it runs
        for key, template in templated.items():
            try:
                value = render(template, names)
            except AtomitonError as failure:
                if "secret" in str(failure):
                    unknown.add(key)
                    continue
                where = f"{here}.parameters.{key}"
                if any(p.location == where for p in self.report.problems):
                    return True, None  # its names are reported already
                self.add(
                    "INVALID_PARAMETER",
                    f"parameter {key!r} is the template {template!r}, which cannot be "
                    f"rendered from the flow's variables: {failure.message}",
                    f"{here}.parameters.{key}",
                    node_id=spec.id,
                    hint="a parameter that is not text may use the flow's variables (rendered "
                    "as the run starts), not the node's inputs",
                )
                return True, None
            if value is None:
                unknown.add(key)
            else:
                rendered[key] = value
        try:
            model = nt.params.model_validate(
                {k: v for k, v in given.items() if k not in unknown} | rendered
            )
        except ValidationError as again:
            for err in again.errors():
                key = str(err["loc"][0]) if err["loc"] else ""
                if key in unknown and err["type"] == "missing":
                    continue
                if key not in templated:
                    return False, None
                self.add(
                    "INVALID_PARAMETER",
                    f"parameter {key!r} is the template {templated[key]!r}, which renders "
                    f"{_short(err.get('input'))} from the variables' defaults: "
                    f"{pydantic_message(err)}",
                    f"{here}.parameters{_pydantic_loc(err['loc'])}",
                    node_id=spec.id,
                )
                return True, None
            # what is left: required parameters known only when the run starts
            model = nt.params.model_construct(**_translated(nt.params, given))
        self._deferred = templated
        return True, model

    def edges(
        self,
        edges: list[Edge],
        prefix: str,
        specs: dict[str, NodeSpec],
        types: dict[str, NodeTypeLike | None],
        container: tuple[NodeSpec, NodeTypeLike | None] | None,
    ) -> dict[str, dict[str, int]]:
        incoming: dict[str, dict[str, int]] = {}
        seen_ids: set[str] = set()
        own_id = container[0].id if container else None
        for j, edge in enumerate(edges):
            source, target = edge.source, edge.target
            if edge.id is not None:
                if edge.id in seen_ids:
                    self.add(
                        "DUPLICATE_ID",
                        f"edge id {edge.id!r} is used more than once",
                        f"{_loc(prefix, f'edges[{j}]')}.id",
                        edge_id=edge.id,
                    )
                seen_ids.add(edge.id)
            if (source not in specs and source != own_id) or (
                target not in specs and target != own_id
            ):
                self.missing_end(edge, _loc(prefix, f"edges[{j}]"), specs, container)
                continue
            if source == own_id and container is not None:
                self.container_source(edge, prefix, j, container)
            else:
                nt = types[source]
                if nt is not None and edge.source_handle not in nt.outputs:
                    self.output_port(edge, prefix, j, specs[source], nt)
            if target == own_id:
                continue
            nt = types[target]
            ports = incoming.get(target)
            if ports is None:
                ports = incoming[target] = {}
            handle = edge.target_handle
            count = ports[handle] = ports.get(handle, 0) + 1
            if nt is None:
                continue
            port = nt.inputs.get(handle)
            if port is None:
                if not nt.dynamic_inputs:
                    self.add(
                        "PORT_NOT_FOUND",
                        f"node {target!r} ({nt.id}) has no input port {handle!r}",
                        f"{_loc(prefix, f'edges[{j}]')}.targetHandle",
                        edge_id=_label(edge),
                        hint=_ports_hint(nt.inputs),
                    )
                elif nt.id == FLOW_REFERENCE_TYPE:
                    self.subflow_input(specs[target], handle, edge, _loc(prefix, f"edges[{j}]"))
            elif count == 2 and not port.multiple:
                self.add(
                    "DUPLICATE_INPUT",
                    f"input port {handle!r} of node {target!r} has more than "
                    "one incoming edge and accepts one",
                    f"{_loc(prefix, f'edges[{j}]')}.targetHandle",
                    edge_id=_label(edge),
                    hint="merge the values first (a 'merge' node) or use another port",
                )
        return incoming

    def missing_end(
        self,
        edge: Edge,
        here: str,
        specs: dict[str, NodeSpec],
        container: tuple[NodeSpec, NodeTypeLike | None] | None,
    ) -> None:
        own_id = container[0].id if container else None
        for end, node_id in (("source", edge.source), ("target", edge.target)):
            if node_id not in specs and node_id != own_id:
                close = difflib.get_close_matches(node_id, list(specs), n=1)
                self.add(
                    "NODE_NOT_FOUND",
                    f"edge {end} {node_id!r} is not a node of this "
                    + ("container" if container else "flow"),
                    f"{here}.{end}",
                    edge_id=_label(edge),
                    hint=f"did you mean {close[0]!r}?" if close else None,
                )

    def container_source(
        self,
        edge: Edge,
        prefix: str,
        j: int,
        container: tuple[NodeSpec, NodeTypeLike | None],
    ) -> None:
        spec, nt = container
        if nt is None:
            return
        offered: Iterable[str] | None = nt.child_sources
        if offered is None and not nt.dynamic_inputs:
            offered = nt.inputs
        if offered is not None and edge.source_handle not in offered:
            self.add(
                "PORT_NOT_FOUND",
                f"container {spec.id!r} ({nt.id}) offers its children no port "
                f"{edge.source_handle!r}",
                f"{_loc(prefix, f'edges[{j}]')}.sourceHandle",
                edge_id=_label(edge),
                hint="it offers: " + ", ".join(sorted(offered)),
            )

    def output_port(
        self, edge: Edge, prefix: str, j: int, spec: NodeSpec, nt: NodeTypeLike
    ) -> None:
        """The edge's source port is not among its node's declared outputs."""
        here, label = _loc(prefix, f"edges[{j}]"), _label(edge)
        if nt.dynamic_outputs:
            if not nt.container:
                return  # outputs known only when it runs (e.g. a stored sub-flow's sinks)
            declared = [e.target_handle for e in spec.edges or [] if e.target == spec.id]
            if not declared:
                declared = _sink_ids(spec)
            if edge.source_handle in declared:
                return
            outputs = [*nt.outputs, *declared]
            hint = "its outputs are: " + (", ".join(outputs) or "none")
            if not spec.is_container:
                hint += (
                    f"; a {nt.id} runs the nodes nested in it: move the per-item nodes into "
                    f"its `nodes` and wire them with edges from {spec.id!r} (`atomiton migrate "
                    "FLOW` does it for a flow written for the original Atomiton)"
                )
            self.add(
                "PORT_NOT_FOUND",
                f"container {spec.id!r} has no output {edge.source_handle!r}",
                f"{here}.sourceHandle",
                edge_id=label,
                hint=hint,
            )
            return
        self.add(
            "PORT_NOT_FOUND",
            f"node {spec.id!r} ({nt.id}) has no output port {edge.source_handle!r}",
            f"{here}.sourceHandle",
            edge_id=label,
            hint=_ports_hint(nt.outputs),
        )

    def cycles(self, edges: list[Edge], prefix: str, specs: dict[str, NodeSpec]) -> None:
        if _acyclic(edges, specs):
            return
        succ: dict[str, list[str]] = {n: [] for n in specs}
        for e in edges:
            if e.source in specs and e.target in specs:
                succ[e.source].append(e.target)
        for cycle in find_cycles(succ):
            path = " -> ".join([*cycle, cycle[0]])
            self.add(
                "CIRCULAR_DEPENDENCY",
                f"nodes form a cycle: {path}",
                _loc(prefix, "edges"),
                node_id=cycle[0],
                hint="remove one of these edges; use a 'loop' node to repeat work",
            )


def _takes_text(annotation: Any) -> bool:
    """A parameter of this type may be given a text (a template the node renders)."""
    import types
    import typing

    if annotation is str or annotation is Any:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_takes_text(arg) for arg in typing.get_args(annotation))
    return False


def _label(edge: Edge) -> str:
    return edge.id or f"{edge.source}->{edge.target}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ports_hint(ports: Mapping[str, Any]) -> str:
    return "its ports are: " + (", ".join(ports) or "none")


def _sink_ids(spec: NodeSpec) -> list[str]:
    sources = {e.source for e in spec.edges or [] if e.target != spec.id}
    return [n.id for n in spec.nodes or [] if n.id not in sources]


def _referenced_flows(nodes: list[NodeSpec]) -> list[str]:
    found: list[str] = []
    stack = list(nodes)
    while stack:
        spec = stack.pop()
        if spec.type == FLOW_REFERENCE_TYPE:
            target = spec.parameters.get("flowId")
            if isinstance(target, str):
                found.append(target)
        stack.extend(spec.nodes or [])
    return found


def _acyclic(edges: list[Edge], specs: Mapping[str, NodeSpec]) -> bool:
    """Whether the edges among ``specs`` form no cycle (Kahn's count of what sorts: the
    common case, cheaper than the search for the cycles themselves)."""
    pos = {node_id: k for k, node_id in enumerate(specs)}
    n = len(pos)
    succ: list[list[int]] = [[] for _ in range(n)]
    indegree = [0] * n
    get = pos.get
    for e in edges:
        s, t = get(e.source), get(e.target)
        if s is not None and t is not None:
            succ[s].append(t)
            indegree[t] += 1
    ready = [k for k in range(n) if not indegree[k]]
    done = 0
    while ready:
        k = ready.pop()
        done += 1
        for t in succ[k]:
            indegree[t] -= 1
            if not indegree[t]:
                ready.append(t)
    return done == n


def find_cycles(succ: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan, iterative), each in edge order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in succ:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            children = succ[v]
            if i < len(children):
                work.append((v, i + 1))
                w = children[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in succ[v]:
                    found.append(_order_cycle(comp, succ))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return found


def _order_cycle(comp: list[str], succ: Mapping[str, list[str]]) -> list[str]:
    """One shortest cycle through the component's smallest id, in edge order."""
    members = set(comp)
    start = min(comp)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for v in frontier:
            for w in succ[v]:
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return list(reversed(path))
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def validate(
    flow: Flow,
    catalogue: CatalogueLike,
    *,
    storage: FlowSource | None = None,
    templates: TemplateEngine | None = None,
) -> ValidationReport:
    """Check a flow against a catalogue and report every problem found.

    With ``storage``, flows referenced by ``flow`` nodes are checked to exist and not to
    include themselves, directly or through others. With ``templates`` (the engine's,
    ``atomiton_core.nodes.expressions.ENGINE``), the names each template in a parameter
    reads are checked to be known (the variables, ``input``, ``vars``, ``secrets``, and in
    a container what it gives its children), and a template given for a parameter that is
    not text is rendered over the variables' defaults and its value checked; without, such
    a template is accepted as it is and checked when the run renders it.
    """
    report = _Validator(flow, catalogue, storage, templates).run()
    if report.problems:
        _add_lines(flow, report.problems)
    return report


def _add_lines(flow: Flow, problems: list[Problem]) -> None:
    """Each problem's line in the file the flow was loaded from. A flow edited after loading
    is matched to the file by node id (and an edge by its ends), so a node added in Python
    has no line rather than another node's."""
    document = flow._document
    if document is None and flow._text is not None:
        document = locate.document_of(flow._text)
    if not isinstance(document, dict):
        return
    for i, problem in enumerate(problems):
        if problem.location and problem.line is None:
            where = _in_document(flow, document, problem.location)
            line = locate.line_of(document, where) if where is not None else None
            if line is not None:
                problems[i] = problem.model_copy(update={"line": line})


def _in_document(flow: Flow, document: Any, location: str) -> str | None:
    """``location`` (indices into the flow's lists of nodes and edges) as indices into the
    loaded document's lists, found by node id and edge ends; None where the item is not in
    the document (added after loading)."""
    model: Any = flow
    doc: Any = document
    parts = locate.path_parts(location)
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else None
        if part in ("nodes", "edges") and isinstance(nxt, int) and model is not None:
            items = getattr(model, str(part), None) or []
            listed = doc.get(part) if isinstance(doc, dict) else None
            if nxt >= len(items) or not isinstance(listed, list):
                return None
            item = items[nxt]
            j = next(
                (k for k, raw in enumerate(listed) if _same_item(item, raw)),
                None,
            )
            if j is None:
                return None
            out.append(f"{'.' if out else ''}{part}[{j}]")
            model, doc = item, listed[j]
            i += 2
            continue
        out.append(f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}")
        model = None  # below a node or edge: the same keys in the model and the document
        doc = doc.get(part) if isinstance(doc, dict) and isinstance(part, str) else None
        i += 1
    return "".join(out)


def _same_item(item: NodeSpec | Edge, raw: Any) -> bool:
    """Whether a document's list item is this node (same id) or edge (same ends)."""
    if not isinstance(raw, dict):
        return False
    if isinstance(item, NodeSpec):
        return raw.get("id") == item.id
    if item.id is not None and raw.get("id") is not None:
        return raw.get("id") == item.id
    return (
        raw.get("source") == item.source
        and raw.get("target") == item.target
        and raw.get("sourceHandle", "output") == item.source_handle
        and raw.get("targetHandle", "input") == item.target_handle
    )
