"""Every built-in node type keeps the node contract (check_node), found through the catalogue."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st

from atomiton_core import Catalogue, Flow, FlowStorage
from atomiton_core.catalogue import CORE_DISTRIBUTION
from atomiton_core.testing import check_node, json_values

BUILTIN = sorted(
    t.id for t in Catalogue.load(autoload=False).values() if t.distribution == CORE_DISTRIBUTION
)

_ITEM_EXPRESSIONS = [
    "item",
    "index",
    "item is none",
    "item ~ ''",
    "index * 2",
    "(item | string)[:3]",
]
_ACC_EXPRESSIONS = ["acc", "[acc, item]", "(acc | string) ~ (item | string)"]
_OPERATIONS = ["map", "filter", "sort", "group", "flatten", "unique", "reverse", "limit", "skip"]


def _transform_params(operation: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid transform parameters: ``acc`` exists only in reduce expressions."""
    names = _ACC_EXPRESSIONS + _ITEM_EXPRESSIONS if operation == "reduce" else _ITEM_EXPRESSIONS
    return st.fixed_dictionaries(
        {
            "operation": st.just(operation),
            "expression": st.sampled_from(names),
            "count": st.integers(0, 5),
        },
        optional={
            "order": st.sampled_from(["asc", "desc"]),
            "depth": st.integers(1, 3),
            "start": st.integers(-3, 3),
            "end": st.integers(-3, 3),
            "initial": json_values(),
        },
    )


_CONDITIONS = ["iteration < 3", "false", "lastResult is none", "iteration < 50"]
_LOOP_COMMON: dict[str, st.SearchStrategy[Any]] = {
    "array": st.lists(json_values(), max_size=5),
    "maxIterations": st.integers(1, 40),
    "collectResults": st.booleans(),
    "breakOnError": st.booleans(),
    "concurrency": st.integers(1, 4),
}

#: Strategy overrides where parameters derived from the schema would rarely be valid.
PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "transform": st.sampled_from([*_OPERATIONS, "reduce", "slice"]).flatmap(_transform_params),
    "flow": st.fixed_dictionaries({"flowId": st.just("child")}),
    # derived ones are valid too, but may ask for 10 000 iterations: keep examples quick
    "loop": st.one_of(
        st.fixed_dictionaries({"loopType": st.just("forEach")}, optional=_LOOP_COMMON),
        st.fixed_dictionaries(
            {"loopType": st.just("times"), "count": st.integers(0, 20)}, optional=_LOOP_COMMON
        ),
        st.fixed_dictionaries(
            {"loopType": st.just("while"), "condition": st.sampled_from(_CONDITIONS)},
            optional=_LOOP_COMMON,
        ),
    ),
}

#: Inputs where any name would not do: a flow node gives the variables its flow declares.
INPUTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "flow": st.fixed_dictionaries({}, optional={"x": st.integers() | st.text(max_size=5)}),
}


def test_the_builtins_are_found() -> None:
    assert {"group", "edit-fields", "transform"} <= set(BUILTIN)


@pytest.fixture
def storage(atomiton_storage: FlowStorage) -> FlowStorage:
    """Holds the flow the ``flow`` node runs: it echoes its variable ``x``."""
    atomiton_storage.save(
        Flow.from_data(
            {
                "id": "child",
                "name": "child",
                "variables": {"x": {"defaultValue": 1}},
                "nodes": [
                    {"id": "e", "type": "edit-fields", "parameters": {"values": {"x": "{{ x }}"}}}
                ],
            }
        )
    )
    return atomiton_storage


@pytest.mark.parametrize("type_id", BUILTIN)
def test_builtin_keeps_the_contract(type_id: str, storage: FlowStorage) -> None:
    check_node(
        type_id,
        params=PARAMS.get(type_id),
        inputs=INPUTS.get(type_id),
        autoload=False,
        max_examples=40,
        storage=storage,
    )


def test_a_long_loop_of_inline_children_respects_its_timeout() -> None:
    """Found by check_node: iterations that never suspend used to run past the timeout."""
    check_node(
        "loop",
        params=st.just(
            {
                "loopType": "times",
                "count": 500_000,
                "maxIterations": 500_000,
                "collectResults": False,
            }
        ),
        rules=["timeout"],
        timeout=0.05,
        margin=1.5,  # room for a loaded machine; running all iterations takes several seconds
        max_examples=1,
        autoload=False,
    )
