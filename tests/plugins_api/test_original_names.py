"""A node type's parameter model may accept the original Atomiton's names for its parameters
(``original_names`` and ``accepts_original_names``): flows written for it run as written."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from atomiton_core.nodes.definition import Parameters, accepts_original_names


class _Sort(Parameters):
    original_names = {"sortDirection": "order", "sortKey": "expression"}
    order: str = "asc"
    expression: str | None = None
    _original = accepts_original_names()

    @classmethod
    def from_original(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "sortKey" in data:
            data["sortKey"] = f"item.{data['sortKey']}"
        return super().from_original(data)


class _Plain(Parameters):
    order: str = "asc"


def test_an_original_name_is_renamed_and_translated() -> None:
    params = _Sort.model_validate({"sortDirection": "desc", "sortKey": "price"})
    assert (params.order, params.expression) == ("desc", "item.price")
    assert _Sort.model_validate({"order": "desc"}).order == "desc"


def test_an_original_name_and_its_new_name_together_are_refused() -> None:
    for given in ({"sortDirection": "desc", "order": "asc"}, {"sortDirection": "a", "order": "b"}):
        with pytest.raises(ValidationError, match="'sortDirection' is the original's name"):
            _Sort.model_validate(given)


def test_a_model_without_original_names_refuses_them() -> None:
    with pytest.raises(ValidationError, match="sortDirection"):
        _Plain.model_validate({"sortDirection": "desc"})
