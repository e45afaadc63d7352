"""The flow data model: pydantic v2, camelCase in files, snake_case in Python.

Every model keeps keys it does not know (``extra="allow"``), so UI data such as ``position``,
``inputPorts`` or edge styling survives a load -> edit -> save cycle.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic.alias_generators import to_camel

from atomiton_core.errors import FlowLoadError
from atomiton_core.flow import locate

__all__ = [
    "Edge",
    "Flow",
    "NodeSpec",
    "RuntimeSettings",
    "Settings",
    "Variable",
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=True,
        coerce_numbers_to_str=True,
    )

    def to_data(self) -> dict[str, Any]:
        """The file representation: camelCase keys, only what was set."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Variable(_Model):
    type: str = "string"
    default_value: Any = None
    description: str | None = None


class RuntimeSettings(_Model):
    #: Whole-run timeout in milliseconds.
    timeout: float | None = Field(None, gt=0)
    #: Run independent nodes concurrently; false runs one node at a time, in plan order.
    parallel: bool = True
    #: How many nodes may run at once (``None``: no limit beyond the graph itself).
    concurrency: int | None = Field(None, ge=1)


class Settings(_Model):
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)


class Edge(_Model):
    id: str | None = None
    source: str
    target: str
    source_handle: str = "output"
    target_handle: str = "input"


class NodeSpec(_Model):
    id: str
    type: str
    name: str | None = None
    version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: Child nodes and edges make this node a sub-flow (a container such as ``group``).
    nodes: list[NodeSpec] | None = None
    edges: list[Edge] | None = None

    @property
    def is_container(self) -> bool:
        return self.nodes is not None or self.edges is not None


class Flow(_Model):
    """A flow: nodes connected output port -> input port, with variables and settings."""

    id: str
    name: str
    version: str | None = None
    description: str | None = None
    type: str | None = None
    metadata: dict[str, Any] | None = None
    variables: dict[str, Variable] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    nodes: list[NodeSpec] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    #: Pinned outputs: node id (a top-level node) -> its outputs by port. A pinned node does
    #: not run; these outputs flow on, and it is reported ``pinned``.
    pins: dict[str, dict[str, Any]] = Field(default_factory=dict)

    #: The round-trip YAML document this flow was loaded from (comments, order, styles).
    _document: Any = PrivateAttr(default=None)
    #: The text it was loaded from, until the round-trip document is needed (saving).
    _text: str | None = PrivateAttr(default=None)
    #: Where it was loaded from, for error messages.
    _source: str | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return self.model_dump(by_alias=True) == other.model_dump(by_alias=True)

    __hash__ = None  # type: ignore[assignment]

    @property
    def source(self) -> str | None:
        return self._source

    def variable_defaults(self) -> dict[str, Any]:
        return {name: var.default_value for name, var in self.variables.items()}

    def find_node(self, node_id: str) -> NodeSpec | None:
        """Find a node by id anywhere, children included (first match, depth first)."""
        stack = list(reversed(self.nodes))
        while stack:
            spec = stack.pop()
            if spec.id == node_id:
                return spec
            if spec.nodes:
                stack.extend(reversed(spec.nodes))
        return None

    @classmethod
    def from_data(cls, data: Any, *, source: str | None = None, text: str | None = None) -> Flow:
        """Build a flow from plain data, with errors that name the file, the key path and,
        given the ``text`` the data was read from, the line."""
        where = source or "<flow>"
        if data is None:
            raise FlowLoadError(
                f"{where}: the flow is empty",
                source=source,
                hint="a flow needs at least `id`, `name` and `nodes` (see docs/user-guide.md)",
            )
        if not isinstance(data, dict):
            raise FlowLoadError(
                f"{where}: a flow is a mapping of keys (id, name, nodes, edges...), not "
                f"{_kind(data)}",
                source=source,
            )
        try:
            flow = cls.model_validate(data)
        except ValidationError as exc:
            document = locate.document_of(text) if text is not None else None
            lines = [f"{where}: not a valid flow ({exc.error_count()} problem(s)):"]
            for err in exc.errors():
                loc = _location(err["loc"])
                line = locate.line_of(document, loc) if document is not None else None
                at = f"{loc} (line {line})" if line is not None else loc
                if err["type"] == "missing":
                    lines.append(f"  - {at}: required, and missing")
                elif err.get("input") is None and err["type"] in _EMPTY_WANTS:
                    lines.append(f"  - {at}: is empty; {_EMPTY_WANTS[err['type']]}")
                else:
                    got = _short(err.get("input"))
                    lines.append(f"  - {at}: {pydantic_message(err)} (got {got})")
            raise FlowLoadError("\n".join(lines), source=source) from None
        flow._source = source
        return flow


#: What to write instead of an empty value (``nodes:`` with nothing after it), by the error.
_EMPTY_WANTS = {
    "list_type": "give a list (`[]` for none)",
    "dict_type": "give a mapping of keys (`{}` for none)",
    "model_type": "give a mapping of keys, or remove the empty item",
    "model_attributes_type": "give a mapping of keys, or remove the empty item",
    "string_type": "give a text",
}


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def pydantic_message(err: Any) -> str:
    """pydantic's message less the prefix it gives a validator's own error."""
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
