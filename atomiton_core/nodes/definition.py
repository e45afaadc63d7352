"""The node-author API: ``@node`` turns a function into a checked :class:`NodeType`.

A node function takes ``(ctx, params, **inputs)``: the context, the validated parameter model
and one keyword argument per input port. It returns a dict keyed by output port. Async
functions run on the event loop; sync ones run in a worker thread unless declared
``blocking=False`` (cheap, never waits), in which case they run inline.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel

from atomiton_core.errors import NodeDefinitionError
from atomiton_core.flow.settings import LIMITS, RESERVED_PARAMETERS, ExecutionSettings
from atomiton_core.wire import CONFIG, Value, dump

__all__ = ["NoParams", "NodeType", "Parameters", "Port", "accepts_original_names", "node"]

_TYPE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MISSING: Any = inspect.Parameter.empty


_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
    bytes: "buffer",
    type(None): "null",
    Any: "any",
}


class Parameters(BaseModel):
    """Base class of a node type's parameter model: camelCase names in flow files
    (``sortKey``), snake_case in Python (``sort_key``), either accepted, and an unknown name
    is a validation error naming it (with the closest known one)."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, extra="forbid")

    #: The original Atomiton's parameter names this type accepts -> the name each becomes
    #: here (camelCase both). A model that declares some also sets
    #: ``_original = accepts_original_names()``; ``atomiton migrate`` rewrites them.
    original_names: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def from_original(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The parameters as written for the original, in this type's own names and meaning
        (``data`` is a copy, free to change). By default each of ``original_names`` is
        renamed; a type whose original parameters mean something else overrides this
        (calling ``super().from_original``). Raises ValueError when a flow gives both an
        original name and the one it becomes."""
        for old, new in cls.original_names.items():
            if old not in data:
                continue
            attribute = _field_of(cls, new)
            if new in data or (attribute is not None and attribute in data):
                raise ValueError(
                    f"{old!r} is the original's name for {new!r}: give one of them, not both"
                )
            data[new] = data.pop(old)
        return data

    def missing_inputs(self, connected: frozenset[str]) -> Sequence[tuple[str, str]]:
        """What a run of a node with these parameters would lack, given the input ports
        that have an incoming edge (``connected``): ``(parameter, message)`` each, reported
        by validation at that parameter. None by default; a type whose parameters may come
        from a port instead (a ``path`` parameter or a ``path`` input) overrides it."""
        return ()

    #: Validation skips types that keep this default (it cannot import this layer).
    missing_inputs.unchanged = True  # type: ignore[attr-defined]


def _field_of(model: type[BaseModel], name: str) -> str | None:
    for attribute, info in model.model_fields.items():
        if info.alias == name:
            return attribute
    return None


def accepts_original_names() -> Any:
    """A "before" validator for a :class:`Parameters` model that declares
    ``original_names``: flows written for the original run as written. Assign it in the class
    body (``_original = accepts_original_names()``); models that declare none pay nothing."""

    def _translate(cls: type[Parameters], data: Any) -> Any:
        if isinstance(data, dict) and not data.keys().isdisjoint(cls.original_names):
            return cls.from_original(dict(data))
        return data

    return model_validator(mode="before")(classmethod(_translate))  # type: ignore[arg-type]


class NoParams(Parameters):
    """Parameter model of a node type that takes none."""


def type_name(tp: Any) -> str:
    """A short, editor-friendly name for a port type (``number``, ``array``, ``Image``...)."""
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return _TYPE_NAMES.get(origin, getattr(origin, "__name__", str(origin)))
    return getattr(tp, "__name__", str(tp))


_PLAIN = (bool, int, float, str, bytes, list, dict)


def plain_kinds(tp: Any) -> tuple[type, ...] | None:
    """The classes a value of a port's type may be, when the type is plain (``int``,
    ``str | None``, ``list[int]``...); None for anything else (Any, models, unions of more)."""
    import types

    if tp is Any or tp is None:
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        kinds: list[type] = []
        for arg in typing.get_args(tp):
            part = (type(None),) if arg is type(None) else plain_kinds(arg)
            if part is None:
                return None
            kinds.extend(part)
        return tuple(kinds)
    base = origin if origin is not None else tp
    if base in _PLAIN:
        return (int, float) if base is float else (base,)
    return None


def ports_compatible(source: Any, target: Any) -> bool:
    """Whether every value an output port of type ``source`` gives passes the conductor's
    check of an input port of type ``target`` (the types of values: a port that takes
    several checks each). A type that is not plain (Any, a model) is taken as compatible:
    its values are checked as they come."""
    wanted = plain_kinds(target)
    given = plain_kinds(source)
    if wanted is None or given is None:
        return True
    for kind in given:
        if kind is bool and bool not in wanted:
            return False  # the check refuses a bool for an int port
        if not issubclass(kind, wanted):
            return False
    return True


#: A port's Python type, written on the wire as its editor-friendly name (``number``...).
PortType = Annotated[Any, PlainSerializer(lambda tp: type_name(tp), return_type=str)]


@dataclass(frozen=True, slots=True)
class Port:
    """An input or output port of a node type."""

    __pydantic_config__ = CONFIG

    name: str
    type: PortType = Any
    required: bool = True
    default: Value = None
    #: An input port that accepts several edges receives the list of their values, in edge order.
    multiple: bool = False
    description: str = ""


def _port_list(ports: dict[str, Port]) -> list[Any]:
    return [dump(p) for p in ports.values()]


def _sorted(names: frozenset[str] | None) -> list[str] | None:
    return sorted(names) if names is not None else None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True)


#: Ports keyed by name in Python, a list in port order on the wire.
Ports = Annotated[dict[str, Port], PlainSerializer(_port_list)]


@dataclass(eq=False, slots=True)
class NodeType:
    """A node type: what the catalogue holds and the conductor runs.

    On the wire (``wire.dump(node_type)``, what ``/api/nodes`` and ``atomiton nodes --json``
    show) it is its metadata, its ports in order and ``parameters``: the JSON schema of its
    parameter model, from which an editor draws a form.
    """

    __pydantic_config__ = CONFIG

    id: str
    fn: Annotated[Callable[..., Any], Field(exclude=True)]
    params: Annotated[
        type[BaseModel], PlainSerializer(_schema), Field(serialization_alias="parameters")
    ]
    inputs: Ports
    outputs: Ports
    name: str
    category: str = "general"
    description: str = ""
    version: str = "1.0.0"
    icon: str | None = None
    is_async: bool = False
    #: Sync functions run in a worker thread unless their author says they never block.
    blocking: bool = True
    #: Same params and inputs always give the same outputs (checked by the testing kit).
    pure: bool = False
    #: Accepts input ports not declared in its signature (``**kwargs``).
    dynamic_inputs: bool = False
    #: Output ports are defined per flow node (containers: by the edges to the container's id).
    dynamic_outputs: bool = False
    #: Runs child nodes (``nodes``/``edges`` inside the node) through ``ctx.run_children``.
    container: bool = False
    #: The ports a container offers its children (edges whose source is the container's id);
    #: ``None`` means its own input ports, whatever they are.
    child_sources: Annotated[frozenset[str] | None, PlainSerializer(_sorted)] = None
    #: The type's defaults for execution settings (``{"isolation": "process", ...}``),
    #: camelCase as in flow files; a flow's own value wins.
    default_settings: Mapping[str, Any] = field(default_factory=dict)
    #: Limits (``cpuLimit``, ``memoryLimit``, ``processLimit``) the type enforces itself on
    #: the work it starts (a program it runs), so they need no isolation.
    own_limits: Annotated[frozenset[str], PlainSerializer(sorted)] = frozenset()
    #: The distribution that contributed this node type (filled in by the catalogue).
    distribution: str | None = field(default=None, compare=False)
    #: The required input ports' names, worked out once (planning asks for every node).
    _required: Annotated[tuple[str, ...] | None, Field(exclude=True)] = field(
        default=None, init=False, repr=False, compare=False
    )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<NodeType {self.id!r} from {self.distribution or 'unregistered'}>"

    @property
    def required_inputs(self) -> list[str]:
        required = self._required
        if required is None:
            required = self._required = tuple(p.name for p in self.inputs.values() if p.required)
        return list(required)

    def params_schema(self) -> dict[str, Any]:
        """The JSON schema of the parameter model, for editors drawing a form."""
        return self.params.model_json_schema(by_alias=True)


def _ports_from_outputs(type_id: str, outputs: Mapping[str, Any] | None) -> dict[str, Port]:
    ports: dict[str, Port] = {}
    for name, spec in (outputs or {}).items():
        if not isinstance(name, str) or not _PORT_NAME.fullmatch(name):
            raise NodeDefinitionError(
                f"node type {type_id!r}: output port name {name!r} is not valid",
                hint="use letters, digits, '_' and '-', starting with a letter",
            )
        ports[name] = spec if isinstance(spec, Port) else Port(name, spec, required=False)
    return ports


def _ports_from_signature(
    type_id: str, fn: Callable[..., Any], overrides: Mapping[str, Any] | None, multiple: set[str]
) -> tuple[dict[str, Port], bool]:
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if len(params) < 2 or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise NodeDefinitionError(
            f"node type {type_id!r}: {fn.__qualname__} must accept (ctx, params, **inputs); "
            f"its signature is {sig}",
            hint="the first two parameters receive the context and the validated parameters",
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: ports stay untyped
        hints = {}
    ports: dict[str, Port] = {}
    dynamic = False
    for p in params[2:]:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            dynamic = True
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            raise NodeDefinitionError(
                f"node type {type_id!r}: *{p.name} is not allowed; input ports are keywords",
            )
        if not _PORT_NAME.fullmatch(p.name):
            raise NodeDefinitionError(f"node type {type_id!r}: bad input port name {p.name!r}")
        required = p.default is _MISSING
        ports[p.name] = Port(
            p.name,
            hints.get(p.name, Any),
            required=required,
            default=None if required else p.default,
            multiple=p.name in multiple,
        )
    for name, spec in (overrides or {}).items():
        if name not in ports and not dynamic:
            raise NodeDefinitionError(
                f"node type {type_id!r}: inputs= names {name!r}, which is not a parameter of "
                f"{fn.__qualname__}",
            )
        if isinstance(spec, Port):
            ports[name] = spec
        else:
            old = ports.get(name, Port(name, required=False))
            ports[name] = Port(name, spec, old.required, old.default, old.multiple)
    unknown = multiple - set(ports)
    if unknown:
        raise NodeDefinitionError(
            f"node type {type_id!r}: multiple= names unknown input port(s) {sorted(unknown)}"
        )
    return ports, dynamic


def node(
    type_id: str,
    *,
    params: type[BaseModel] | None = None,
    outputs: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    name: str | None = None,
    category: str = "general",
    description: str | None = None,
    version: str = "1.0.0",
    icon: str | None = None,
    pure: bool = False,
    blocking: bool | None = None,
    multiple: tuple[str, ...] | list[str] = (),
    container: bool = False,
    child_sources: frozenset[str] | set[str] | None = None,
    dynamic_outputs: bool = False,
    settings: Mapping[str, Any] | None = None,
    own_limits: tuple[str, ...] | list[str] | frozenset[str] = (),
    cacheable: bool = False,
) -> Callable[[Callable[..., Any]], NodeType]:
    """Declare a node type; the declaration is checked here, not when the node first runs.

    ``outputs`` maps output port names to their types; input ports are the function's
    keyword parameters (a default makes a port optional, ``**kwargs`` accepts any port).
    ``multiple`` names input ports that take several edges (they receive a list).
    ``settings`` gives the type's defaults for execution settings, e.g.
    ``{"isolation": "process", "cpuLimit": 5}`` for a node that runs untrusted work;
    ``own_limits`` names the limits the type enforces itself on what it starts (a program),
    which a flow may then set without isolating the node. ``cacheable=True`` (with
    ``pure=True``: the same inputs and parameters always give the same outputs) caches the
    node by default (the execution setting ``cache``); a flow may still say ``cache: false``.
    """
    if not isinstance(type_id, str) or not _TYPE_ID.fullmatch(type_id):
        raise NodeDefinitionError(
            f"node type id {type_id!r} is not valid",
            hint="use letters, digits, '.', '_' and '-', e.g. 'acme.scale'",
        )
    if params is not None and not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise NodeDefinitionError(
            f"node type {type_id!r}: params= must be a pydantic BaseModel subclass, got {params!r}"
        )
    clash = RESERVED_PARAMETERS & set((params or NoParams).model_fields)
    if clash:
        raise NodeDefinitionError(
            f"node type {type_id!r}: parameter(s) {sorted(clash)} are reserved for execution "
            "settings on every node",
            hint="rename them; the conductor enforces enabled/timeout/retries/retryDelay/"
            "continueOnFail itself",
        )
    out_ports = _ports_from_outputs(type_id, outputs)
    if cacheable:
        if not pure:
            raise NodeDefinitionError(
                f"node type {type_id!r}: cacheable=True needs pure=True",
                hint="a cached node's outputs are reused for the same inputs: declare it pure "
                "(the testing kit then checks that it is deterministic)",
            )
        settings = {"cache": True, **(settings or {})}
    default_settings = _default_settings(type_id, settings)
    unknown_limits = sorted(set(own_limits) - set(LIMITS.values()))
    if unknown_limits:
        raise NodeDefinitionError(
            f"node type {type_id!r}: own_limits= names {unknown_limits}, which are not limits",
            hint=f"limits are: {', '.join(LIMITS.values())}",
        )

    def decorate(fn: Callable[..., Any]) -> NodeType:
        if not callable(fn):
            raise NodeDefinitionError(f"@node({type_id!r}) must decorate a function")
        in_ports, dynamic = _ports_from_signature(type_id, fn, inputs, set(multiple))
        is_async = inspect.iscoroutinefunction(fn)
        if is_async and blocking:
            raise NodeDefinitionError(
                f"node type {type_id!r}: blocking=True makes no sense for an async function"
            )
        doc = inspect.getdoc(fn) or ""
        return NodeType(
            id=type_id,
            fn=fn,
            params=params or NoParams,
            inputs=in_ports,
            outputs=out_ports,
            name=name or type_id,
            category=category,
            description=description if description is not None else doc.split("\n\n")[0],
            version=version,
            icon=icon,
            is_async=is_async,
            blocking=(not is_async) if blocking is None else blocking,
            pure=pure,
            dynamic_inputs=dynamic,
            dynamic_outputs=dynamic_outputs or container,
            container=container,
            child_sources=frozenset(child_sources) if child_sources is not None else None,
            default_settings=default_settings,
            own_limits=frozenset(own_limits),
        )

    return decorate


def _default_settings(type_id: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The type's setting defaults, camelCase, checked now rather than in every flow."""
    if not settings:
        return {}
    by_name = {n: f.alias or n for n, f in ExecutionSettings.model_fields.items()}
    named = {by_name.get(k, k): v for k, v in settings.items()}
    unknown = sorted(set(named) - RESERVED_PARAMETERS)
    if unknown:
        raise NodeDefinitionError(
            f"node type {type_id!r}: settings= names {unknown}, which are not execution settings",
            hint=f"execution settings are: {', '.join(sorted(RESERVED_PARAMETERS))}",
        )
    try:
        ExecutionSettings.from_parameters(named)
    except ValueError as exc:
        raise NodeDefinitionError(f"node type {type_id!r}: settings= {exc}") from None
    return named
