"""A conformance suite a node package's tests inherit in one line (as fsspec's tests/abstract)::

    from atomiton_core.testing import NodeContractTests
    import acme_nodes.plugin

    class TestAcmeNodes(NodeContractTests):
        plugin = acme_nodes.plugin

Each rule of the node contract is one test method, parametrized over the node types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st

from atomiton_core.catalogue import Catalogue
from atomiton_core.nodes.definition import NodeType
from atomiton_core.testing import contract
from atomiton_core.testing.runner import Children

__all__ = ["NodeContractTests"]


class NodeContractTests:
    """Subclass it (``Test...``) and set ``plugin`` or ``node_types``; override to taste.

    ``plugin``: a plugin module or object; its ``atomiton_node_types()`` are checked and it is
    registered, so its ``atomiton_hypothesis_strategies`` are used. ``node_types``: node types
    (or ids of installed ones) to check besides. ``params`` / ``inputs``: strategy overrides by
    type id; ``input_strategies``: per port or type name; ``children``: a container's body by
    type id. ``max_examples``, ``timeout``, ``margin``: as for :func:`check_node`.
    """

    plugin: ClassVar[Any] = None
    node_types: ClassVar[Sequence[NodeType | str]] = ()
    params: ClassVar[Mapping[str, st.SearchStrategy[dict[str, Any]]]] = {}
    inputs: ClassVar[Mapping[str, st.SearchStrategy[dict[str, Any]]]] = {}
    input_strategies: ClassVar[Mapping[str, st.SearchStrategy[Any]]] = {}
    children: ClassVar[Mapping[str, Children]] = {}
    max_examples: ClassVar[int] = 25
    timeout: ClassVar[float] = 0.5
    margin: ClassVar[float] = 1.0

    @classmethod
    def contract_node_types(cls) -> list[NodeType]:
        """The node types under test: the plugin's, then ``node_types``."""
        found: list[NodeType] = []
        if cls.plugin is not None:
            hook = getattr(cls.plugin, "atomiton_node_types", None)
            if hook is None:
                raise TypeError(f"{cls.__name__}.plugin {cls.plugin!r} has no atomiton_node_types")
            found.extend(hook())
        ids = [t for t in cls.node_types if isinstance(t, str)]
        installed = Catalogue.load(cls._plugins()) if ids else {}
        for item in cls.node_types:
            found.append(installed[item] if isinstance(item, str) else item)
        return found

    @classmethod
    def _plugins(cls) -> list[Any]:
        return [cls.plugin] if cls.plugin is not None else []

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per rule and node type (pytest calls this; the ids name the type)."""
        if "node_type" in metafunc.fixturenames:
            types = self.contract_node_types()
            metafunc.parametrize("node_type", types, ids=[t.id for t in types])

    def check(self, node_type: NodeType, rule: str) -> None:
        """Check one rule of the contract for one node type."""
        contract.check_node(
            node_type,
            rules=[rule],
            params=self.params.get(node_type.id),
            inputs=self.inputs.get(node_type.id),
            input_strategies=self.input_strategies,
            children=self.children.get(node_type.id),
            max_examples=self.max_examples,
            timeout=self.timeout,
            margin=self.margin,
            plugins=self._plugins(),
            autoload=False,
        )

    def test_declared_outputs(self, node_type: NodeType) -> None:
        """Only declared output ports, with values of their types."""
        self.check(node_type, contract.DECLARED_OUTPUTS)

    def test_errors_are_atomiton_errors(self, node_type: NodeType) -> None:
        """Failures only as ``AtomitonError``s."""
        self.check(node_type, contract.ATOMITON_ERRORS)

    def test_inputs_not_mutated(self, node_type: NodeType) -> None:
        """Inputs left as they came."""
        self.check(node_type, contract.INPUTS_NOT_MUTATED)

    def test_pure_is_deterministic(self, node_type: NodeType) -> None:
        """The same outputs for the same inputs, for a type declared ``pure``."""
        if not node_type.pure:
            pytest.skip(f"{node_type.id} is not declared pure=True")
        self.check(node_type, contract.PURE_DETERMINISTIC)

    def test_timeout_respected(self, node_type: NodeType) -> None:
        """The run ends within its ``timeout`` (and the margin)."""
        self.check(node_type, contract.TIMEOUT)
