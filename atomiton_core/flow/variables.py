"""A run's inputs held to the flow's declared variables.

``variables:`` in a flow names what a run may set (``inputs``, ``--input name=value``, the
server's ``inputs``) and the type of each (a variable that declares none has its default's:
``defaultValue: 10`` makes it a number). :func:`check_inputs` gives the values a run sees:
a name the flow does not declare is refused, with the names it does declare; a value is
converted to its variable's type (``--input n=5`` gives the number 5 for ``type: number``)
or refused, naming the variable, its type and the value.

The types:

=========== ==========================================================================
``string``  text; a number or a boolean given for it becomes its text
``number``  an int or a float; text that reads as one (``"5"``, ``"2.5"``, ``"1e3"``)
``integer`` an int; text or a float that is a whole number
``boolean`` true or false; text ``true/false``, ``yes/no``, ``on/off``, ``1/0``
``object``  a mapping; text that is a JSON object
``array``   a list; text that is a JSON array
``any``     anything, as given
=========== ==========================================================================
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from atomiton_core.errors import VariableError

if TYPE_CHECKING:
    from atomiton_core.flow.models import Flow, Variable

__all__ = ["VARIABLE_TYPES", "check_inputs", "convert", "declared_type"]

VARIABLE_TYPES = ("string", "number", "integer", "boolean", "object", "array", "any")

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def check_inputs(flow: Flow, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``inputs`` converted to the types of the flow's variables; VariableError names any
    input the flow does not declare, or whose value its variable's type cannot take."""
    if not inputs:
        return {}
    declared = flow.variables
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        var = declared.get(name)
        if var is None:
            raise _unknown(flow, str(name))
        out[name] = convert(name, declared_type(var), value)
    return out


def declared_type(var: Variable) -> str:
    """A variable's type: as declared, or, when it declares none, its default's kind
    (``defaultValue: 10`` makes a number; no default, anything)."""
    if "type" in var.model_fields_set:
        return var.type
    default = var.default_value
    for kind, python in (("boolean", bool), ("number", int | float), ("string", str)):
        if isinstance(default, python):
            return kind
    if isinstance(default, dict):
        return "object"
    if isinstance(default, list):
        return "array"
    return "any"


def _unknown(flow: Flow, name: str) -> VariableError:
    names = sorted(flow.variables)
    if not names:
        return VariableError(
            f"input {name!r}: flow {flow.id!r} declares no variables",
            hint=f"declare it under `variables:` in the flow, e.g. {name}: {{type: string}}",
            variable=name,
        )
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return VariableError(
        f"input {name!r} is not a variable of flow {flow.id!r}",
        hint=f"{hint}its variables: {', '.join(names)}",
        variable=name,
    )


def convert(name: str, kind: str, value: Any) -> Any:
    """``value`` as variable ``name`` of type ``kind`` takes it, or VariableError."""
    if value is None or kind == "any" or kind not in VARIABLE_TYPES:
        return value  # null is every variable's "unset"; an unknown type is validation's
    try:
        return _CONVERT[kind](value)
    except (ValueError, TypeError):
        raise VariableError(
            f"input {name!r} must be {_A[kind]} (type: {kind}), got {_show(value)}",
            variable=name,
            type=kind,
        ) from None


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)  # ValueError for what is not a number
            if math.isnan(number):
                raise ValueError from None
            return number
    raise TypeError


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError
        return int(number)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError


def _json_of(kind: type) -> Any:
    def conv(value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, kind):
            raise TypeError
        return value

    return conv


_CONVERT: dict[str, Any] = {
    "string": _string,
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "object": _json_of(dict),
    "array": _json_of(list),
}
_A = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "a mapping (a JSON object)",
    "array": "a list (a JSON array)",
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
