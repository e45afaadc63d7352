"""The flow data model: pydantic v2, camelCase in files, snake_case in Python.

Every model keeps keys it does not know (``extra="allow"``), so UI data such as ``position``,
``inputPorts`` or edge styling survives a load -> edit -> save cycle.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from atomiton_core.errors import FlowLoadError
from atomiton_core.flow import locate
from atomiton_core.flow import triggers as _triggers

__all__ = [
    "Edge",
    "Flow",
    "NodeSpec",
    "RuntimeSettings",
    "Settings",
    "Trigger",
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
    """A flow variable: its type (``string``, ``number``, ``integer``, ``boolean``,
    ``object``, ``array``, ``any``), its default, and what it is for. A run's inputs are
    checked against it and converted to its type."""

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
    """A flow's own settings: ``runtime`` (its timeout, parallelism, concurrency)."""

    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)


class Edge(_Model):
    """A connection from a node's output port (``sourceHandle``) to a node's input port
    (``targetHandle``); inside a container, from or to the container itself."""

    id: str | None = None
    source: str
    target: str
    source_handle: str = "output"
    target_handle: str = "input"


class NodeSpec(_Model):
    """A node of a flow: its id, its type, and its parameters (execution settings such as
    ``timeout`` among them); with ``nodes`` and ``edges``, a container's children."""

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


#: What each trigger type reads; a key of another type on a trigger is refused.
_TRIGGER_KEYS: dict[str, frozenset[str]] = {
    "schedule": frozenset({"cron", "timezone", "interval", "missed"}),
    "webhook": frozenset(
        {"path", "method", "secret", "signatureHeader", "public", "respond", "timeout"}
    ),
    "watch": frozenset({"folder", "glob", "recursive", "pollInterval", "debounce", "pathVariable"}),
}
_WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Trigger(_Model):
    """What starts a flow by itself under ``atomiton serve``: a ``schedule`` (cron with a time
    zone, or an interval), a ``webhook`` (an HTTP route) or a ``watch`` (files landing in a
    folder or an fsspec URL). See docs/server.md, "Triggers"; atomiton_core.server.triggers
    runs them."""

    #: Names the trigger in the API and the CLI (default ``<type>-<index>``); give one to
    #: keep its state (last fire, paused) across edits that move it in the list.
    id: str | None = None
    type: Literal["schedule", "webhook", "watch"]
    description: str | None = None
    #: False: listed, never fired.
    enabled: bool = True
    #: Fixed inputs of every run it starts (what fired it may add more).
    inputs: dict[str, Any] = Field(default_factory=dict)
    #: While a run it started is still going: "skip" the new one, "queue" it (one run at a
    #: time), or run in "parallel" (up to ``maxRuns``, then queued). Default: schedule skip,
    #: webhook parallel, watch queue.
    overlap: Literal["skip", "queue", "parallel"] | None = None
    max_runs: int = Field(4, ge=1)
    #: Fires waiting for a run (queue, parallel) at most; past it they are dropped, reported.
    max_queued: int = Field(100, ge=0)

    # schedule
    #: Five fields (minute hour day-of-month month day-of-week), or six with seconds first.
    cron: str | None = None
    #: The cron's IANA time zone (default UTC).
    timezone: str | None = None
    #: Milliseconds, or a text: "30s", "5m", "1h30m".
    interval: int | float | str | None = None
    #: Slots missed while the server was down: "skip" them, or run "once" at start.
    missed: Literal["skip", "once"] = "skip"

    # webhook
    #: Served at ``/api/hooks/<path>``.
    path: str | None = None
    method: str = "POST"
    #: A shared secret (or ``{{ secrets.NAME }}``): requests carry the HMAC-SHA256 of their
    #: body under it in ``signatureHeader`` (``sha256=<hex>``).
    secret: str | None = None
    signature_header: str = "X-Signature-256"
    #: No bearer token needed (the secret, which is then required, protects it).
    public: bool = False
    #: "accepted": 202 with the run's id at once; "result": the flow's outputs if the run
    #: ends within ``timeout`` (else 202).
    respond: Literal["accepted", "result"] = "accepted"
    timeout: float = Field(30_000, gt=0)

    # watch
    #: A local folder or an fsspec URL (polled every ``pollInterval``).
    folder: str | None = None
    glob: str = "*"
    recursive: bool = False
    poll_interval: int | float | str | None = None
    #: A file fires once it has been left alone this long (milliseconds, or "1s").
    debounce: int | float | str = 500
    #: The variable that receives the file's path (the flow must declare it).
    path_variable: str = "path"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            _triggers.check_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            _triggers.check_timezone(value)
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        if value is not None:
            ms = _triggers.duration_ms(value, "interval")
            if ms < _triggers.MIN_INTERVAL_MS:
                raise ValueError(
                    f"interval {value!r} is shorter than {_triggers.MIN_INTERVAL_MS:g} ms"
                )
        return value

    @field_validator("poll_interval", "debounce")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is not None and _triggers.duration_ms(value) < 0:
            raise ValueError(f"{value!r} is negative")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            _triggers.check_webhook_path(value)
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in _WEBHOOK_METHODS:
            raise ValueError(f"method {value!r}: give one of {', '.join(_WEBHOOK_METHODS)}")
        return value

    @model_validator(mode="after")
    def _fits_its_type(self) -> Trigger:
        fields = type(self).model_fields
        given = {(fields[n].alias or n) if n in fields else n for n in self.model_fields_set}
        own = _TRIGGER_KEYS[self.type]
        for other, keys in _TRIGGER_KEYS.items():
            stray = sorted((given & keys) - own)
            if other != self.type and stray:
                raise ValueError(f"{', '.join(stray)}: for {other} triggers, not {self.type} ones")
        known = [field.alias or name for name, field in fields.items()]
        for key in self.model_extra or {}:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
            if close:
                raise ValueError(f"unknown key {key!r}: did you mean {close[0]!r}?")
        if self.type == "schedule":
            if (self.cron is None) == (self.interval is None):
                raise ValueError("a schedule trigger needs `cron` or `interval` (one of them)")
            if self.timezone is not None and self.cron is None:
                raise ValueError("`timezone` goes with `cron` (an interval has none)")
        elif self.type == "webhook":
            if self.path is None:
                raise ValueError("a webhook trigger needs `path` (served at /api/hooks/<path>)")
            if self.public and not self.secret:
                raise ValueError(
                    "a public webhook needs a `secret`: without the token, the signature is "
                    "all that protects it"
                )
        elif self.folder is None:
            raise ValueError("a watch trigger needs `folder` (a folder or an fsspec URL)")
        return self

    @property
    def policy(self) -> str:
        """``overlap``, or its default for the trigger's type."""
        if self.overlap is not None:
            return self.overlap
        return {"schedule": "skip", "webhook": "parallel", "watch": "queue"}[self.type]

    @property
    def interval_ms(self) -> float | None:
        return None if self.interval is None else _triggers.duration_ms(self.interval)

    @property
    def hook_path(self) -> str | None:
        """The webhook's path under ``/api/hooks/``, without slashes around it."""
        return None if self.path is None else self.path.strip("/")

    def describe(self) -> str:
        """One line saying when it fires (lists, logs)."""
        if self.type == "schedule":
            if self.cron is not None:
                return f"cron '{self.cron}' ({self.timezone or 'UTC'})"
            return f"every {self.interval}" + (
                " ms" if isinstance(self.interval, int | float) else ""
            )
        if self.type == "webhook":
            access = "public, signed" if self.public else "token"
            return f"{self.method.upper()} /api/hooks/{self.hook_path} ({access})"
        return f"files {self.glob} in {self.folder}"


def trigger_id(trigger: Trigger, index: int) -> str:
    """A trigger's id: its own, or ``<type>-<index>``."""
    return trigger.id if trigger.id else f"{trigger.type}-{index}"


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
    #: What starts the flow by itself under ``atomiton serve`` (see :class:`Trigger`).
    triggers: list[Trigger] = Field(default_factory=list)
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
        """Each variable's default value, by name (what a run without inputs sees)."""
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
                elif err["type"] == "value_error" and isinstance(err.get("input"), dict):
                    lines.append(f"  - {at}: {pydantic_message(err)}")  # a whole item's rule
                else:
                    got = _short(err.get("input"))
                    lines.append(f"  - {at}: {pydantic_message(err)} (got {got})")
            raise FlowLoadError("\n".join(lines), source=source) from None
        problems = flow.trigger_problems()
        if problems:
            document = locate.document_of(text) if text is not None else None
            lines = [f"{where}: not a valid flow ({len(problems)} problem(s)):"]
            for loc, message in problems:
                line = locate.line_of(document, loc) if document is not None else None
                lines.append(
                    f"  - {loc} (line {line}): {message}" if line else f"  - {loc}: {message}"
                )
            raise FlowLoadError("\n".join(lines), source=source)
        flow._source = source
        return flow

    def trigger_problems(self) -> list[tuple[str, str]]:
        """What the triggers say that the rest of the flow does not bear out, as (key path,
        message): ids used twice, inputs and path variables the flow does not declare, a
        webhook route given twice."""
        problems: list[tuple[str, str]] = []
        seen: dict[str, int] = {}
        routes: dict[tuple[str, str], int] = {}
        declared = sorted(self.variables)
        for i, trigger in enumerate(self.triggers):
            at = f"triggers[{i}]"
            tid = trigger_id(trigger, i)
            if tid in seen:
                own = "" if trigger.id else " (the default, <type>-<index>)"
                problems.append(
                    (f"{at}.id", f"id {tid!r}{own} is also triggers[{seen[tid]}]'s; give another")
                )
            seen.setdefault(tid, i)
            wanted = [(f"{at}.inputs.{name}", name) for name in trigger.inputs]
            if trigger.type == "watch":
                wanted.append((f"{at}.pathVariable", trigger.path_variable))
            for loc, name in wanted:
                if name not in self.variables:
                    close = difflib.get_close_matches(name, declared, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(
                        (
                            loc,
                            f"{name!r} is not a variable of the flow{hint}; declare it under "
                            f"`variables:`, e.g. {name}: {{type: string}}",
                        )
                    )
            if trigger.type == "webhook" and trigger.hook_path is not None:
                route = (trigger.method.upper(), trigger.hook_path)
                if route in routes:
                    problems.append(
                        (f"{at}.path", f"{route[0]} {route[1]} is also triggers[{routes[route]}]'s")
                    )
                routes.setdefault(route, i)
        return problems


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
