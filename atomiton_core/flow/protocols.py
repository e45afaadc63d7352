"""What the flow layer needs to know of node types, catalogues and stored flows.

Validation checks a flow against node types that ``nodes/`` defines, a catalogue that
``catalogue.py`` builds and a storage that ``storage/`` provides, all of them layers above
this one. They are described here as protocols, so ``flow/`` imports nothing above itself;
:class:`~atomiton_core.NodeType`, :class:`~atomiton_core.Catalogue` and
:class:`~atomiton_core.FlowStorage` satisfy them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from atomiton_core.flow.models import Flow

__all__ = ["CatalogueLike", "FlowSource", "NodeTypeLike", "PortLike", "TemplateEngine"]


class PortLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def required(self) -> bool: ...

    @property
    def multiple(self) -> bool: ...


class NodeTypeLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def params(self) -> type[BaseModel]: ...

    @property
    def inputs(self) -> Mapping[str, PortLike]: ...

    @property
    def outputs(self) -> Mapping[str, PortLike]: ...

    @property
    def dynamic_inputs(self) -> bool: ...

    @property
    def dynamic_outputs(self) -> bool: ...

    @property
    def container(self) -> bool: ...

    @property
    def child_sources(self) -> frozenset[str] | None: ...

    @property
    def required_inputs(self) -> list[str]: ...

    @property
    def default_settings(self) -> Mapping[str, Any]: ...

    @property
    def own_limits(self) -> frozenset[str]: ...


class CatalogueLike(Protocol):
    def get(self, key: str, /) -> NodeTypeLike | None: ...

    def missing_hint(self, type_id: str) -> str: ...


class FlowSource(Protocol):
    """Where flows referenced by id (``flow`` nodes) are found."""

    @property
    def url(self) -> str: ...

    def exists(self, flow_id: str) -> bool: ...

    def load(self, flow_id: str) -> Flow: ...


class TemplateEngine(Protocol):
    """The engine's templates (``atomiton_core.nodes.expressions.ENGINE``), for validation."""

    def render(self, value: Any, names: Mapping[str, Any], /) -> Any:
        """Render ``value`` (a template, or a structure of them) over ``names``; raises
        AtomitonError."""
        ...

    def names(self, template: str, /) -> frozenset[str] | None:
        """The names a template reads that it does not define itself, less the engine's
        helpers; None: it cannot be compiled (``error`` says why)."""
        ...

    def error(self, template: str, /) -> str | None:
        """Why ``template`` cannot be compiled (a syntax error, an unknown filter), or None."""
        ...
