"""A run's inputs are held to the flow's declared variables: unknown names and values of
the wrong type are refused naming the variable; values are converted to the declared type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atomiton_core import Conductor, loads_flow
from atomiton_core.errors import VariableError
from atomiton_core.flow.variables import check_inputs, convert

ROOT = Path(__file__).parents[2]

FLOW = """
id: typed
name: Typed
variables:
  who: {type: string, defaultValue: world}
  n: {type: number, defaultValue: 1}
  k: {type: integer, defaultValue: 2}
  loud: {type: boolean, defaultValue: false}
  opts: {type: object, defaultValue: {}}
  tags: {type: array, defaultValue: []}
  free: {type: any}
  inferred: {defaultValue: 10}
nodes:
  - id: show
    type: edit-fields
    parameters:
      values:
        who: "{{ who }}"
        twice: "{{ n * 2 }}"
      keepOnlySet: true
"""


def test_values_are_converted_to_their_variables_types() -> None:
    flow = loads_flow(FLOW)
    got = check_inputs(
        flow,
        {
            "who": 5,
            "n": "2.5",
            "k": "7",
            "loud": "yes",
            "opts": '{"a": 1}',
            "tags": "[1, 2]",
            "free": "as is",
            "inferred": "12",
        },
    )
    assert got == {
        "who": "5",
        "n": 2.5,
        "k": 7,
        "loud": True,
        "opts": {"a": 1},
        "tags": [1, 2],
        "free": "as is",
        "inferred": 12,
    }
    assert check_inputs(flow, {"n": "3"}) == {"n": 3} and check_inputs(flow, None) == {}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("n", "abc", "input 'n' must be a number (type: number), got 'abc'"),
        ("n", True, "must be a number"),
        ("n", "nan", "must be a number"),
        ("k", "2.5", "input 'k' must be a whole number (type: integer), got '2.5'"),
        ("loud", "maybe", "input 'loud' must be true or false"),
        ("opts", "[1]", "input 'opts' must be a mapping"),
        ("opts", "{not json", "input 'opts' must be a mapping"),
        ("tags", "{}", "input 'tags' must be a list"),
        ("who", {"a": 1}, "input 'who' must be text"),
    ],
)
def test_a_value_its_type_cannot_take_is_refused_naming_the_variable(
    name: str, value: object, says: str
) -> None:
    with pytest.raises(VariableError, match=says.replace("(", r"\(").replace(")", r"\)")) as exc:
        check_inputs(loads_flow(FLOW), {name: value})
    assert exc.value.context["variable"] == name
    assert exc.value.code == "INVALID_VARIABLE" and exc.value.http_status == 422


def test_an_unknown_name_is_refused_with_the_declared_ones() -> None:
    with pytest.raises(VariableError) as exc:
        check_inputs(loads_flow(FLOW), {"whom": "Ada"})
    assert str(exc.value).startswith("input 'whom' is not a variable of flow 'typed'")
    assert "did you mean 'who'?" in (exc.value.hint or "")
    assert "inferred, k, loud, n, opts, tags, who" in (exc.value.hint or "")
    bare = loads_flow("id: bare\nname: Bare\nnodes: []\n")
    with pytest.raises(VariableError, match="flow 'bare' declares no variables"):
        check_inputs(bare, {"x": 1})


@given(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_given_as_its_text_is_that_number(number: float) -> None:
    assert convert("n", "number", str(number)) == number
    assert convert("n", "number", number) == number


@given(st.integers())
def test_an_integer_given_as_text_or_whole_float_is_that_integer(number: int) -> None:
    assert convert("k", "integer", str(number)) == number
    if abs(number) < 2**53:
        assert convert("k", "integer", float(number)) == number


def test_a_run_sees_the_converted_values(conductor: Conductor) -> None:
    result = conductor.run(loads_flow(FLOW), {"n": "21", "who": "Ada"})
    assert result.ok, result.error
    out = result.outputs["show"]["output"]
    assert out["who"] == "Ada" and out["twice"] == 42  # not "2121": n is a number
    with pytest.raises(VariableError, match="input 'nn' is not a variable"):
        conductor.run(loads_flow(FLOW), {"nn": 1})


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATOMITON_STORAGE": str(tmp_path / "store")}
    return subprocess.run(
        [sys.executable, "-m", "atomiton_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_the_readme_example_refuses_a_number_that_is_not_one(tmp_path: Path) -> None:
    """``--input bigOrder=abc`` used to run, "complete" the loop and blame another node."""
    done = _cli(
        "run",
        "examples/order-report.flow.yaml",
        "--input",
        f"outputDir={tmp_path / 'out'}",
        "--input",
        "bigOrder=abc",
        tmp_path=tmp_path,
    )
    assert done.returncode == 2  # a bad value on the command line
    assert "input 'bigOrder' must be a number (type: number), got 'abc'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_the_cli_refuses_an_unknown_input(tmp_path: Path) -> None:
    done = _cli(
        "run", "examples/order-report.flow.yaml", "--input", "bigorder=100", tmp_path=tmp_path
    )
    assert done.returncode == 2
    assert "input 'bigorder' is not a variable of flow 'order-report'" in done.stderr
    assert "did you mean 'bigOrder'?" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_the_cli_converts_inputs_for_the_flow(tmp_path: Path) -> None:
    flow = tmp_path / "typed.flow.yaml"
    flow.write_text(FLOW)
    done = _cli("run", str(flow), "--json", "--input", "n=4", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["show"]["output"]["twice"] == 8


def test_validation_refuses_an_unknown_type_and_a_default_of_another_type(
    conductor: Conductor,
) -> None:
    flow = loads_flow(
        "id: v\nname: V\nnodes: []\nvariables:\n"
        "  a: {type: numbr}\n  b: {type: number, defaultValue: abc}\n  c: {defaultValue: 3}\n"
    )
    problems = {p.location: p for p in conductor.validate(flow).errors}
    assert set(problems) == {"variables.a.type", "variables.b.defaultValue"}
    assert problems["variables.a.type"].code == "UNKNOWN_VARIABLE_TYPE"
    assert "did you mean 'number'?" in (problems["variables.a.type"].hint or "")
    assert "its default is 'abc'" in problems["variables.b.defaultValue"].message
