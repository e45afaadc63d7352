"""The node-author guide keeps up with the kit: every public name and rule is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

import atomiton_core.testing as kit
from atomiton_core.testing import RULES, NodeContractTests

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "node-authors.md"


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", kit.__all__)
def test_public_name_is_documented(guide: str, name: str) -> None:
    assert f"`{name}" in guide, f"docs/node-authors.md does not mention {name}"


@pytest.mark.parametrize("rule", RULES)
def test_rule_is_documented(guide: str, rule: str) -> None:
    assert f"| `{rule}` |" in guide


def test_contract_tests_are_documented(guide: str) -> None:
    for name in dir(NodeContractTests):
        if name.startswith("test_"):
            assert f"`{name}`" in guide, name
