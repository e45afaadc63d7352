"""The JSON Schemas the package ships, for editors and tools that read its files.

``flow.schema.json`` (next to this module) describes a ``*.flow.yaml`` file: point an editor
at it (``# yaml-language-server: $schema=...`` in the file, or the editor's settings) and it
completes keys and marks mistakes as you type. It is generated from the flow models
(:class:`~atomiton_core.Flow` and the models it holds), never written by hand:
``python -m atomiton_core.schemas`` writes it again, and a test fails while the shipped file
differs from what :func:`flow_schema` gives.

The schema checks the file's shape (keys, types, bounds); the rest of validation (node types,
their parameters, edges, cycles) needs the node catalogue: ``atomiton validate``.
"""

from __future__ import annotations

import inspect
import json
import re
from importlib import resources
from typing import Any

from pydantic import BaseModel

from atomiton_core.flow.models import Flow

__all__ = [
    "FLOW_SCHEMA_FILE",
    "described_schema",
    "flow_schema",
    "flow_schema_text",
    "load_flow_schema",
]

#: The shipped schema's file name, in this package.
FLOW_SCHEMA_FILE = "flow.schema.json"

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_COMMENT = re.compile(r"^\s*#:\s?(?P<text>.*)$")
_FIELD = re.compile(r"^\s*(?P<name>[a-z_][a-z0-9_]*)\s*:")


def _field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment above each field of ``model``'s own body, by field name."""
    try:
        lines = inspect.getsource(model).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in lines[1:]:
        comment = _COMMENT.match(line)
        if comment:
            pending.append(comment["text"].strip())
            continue
        field = _FIELD.match(line)
        if field and pending and field["name"] in model.model_fields:
            found[field["name"]] = " ".join(pending)
        pending = []
    return found


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """``root`` and every model its fields hold, by the title pydantic gives each."""
    seen: dict[str, type[BaseModel]] = {}
    stack = [root]
    while stack:
        model = stack.pop()
        if model.__name__ in seen:
            continue
        seen[model.__name__] = model
        for info in model.model_fields.values():
            stack.extend(_models_in(info.annotation))
    return seen


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _strings_take_numbers(node: Any) -> None:
    """The flow models read a number where they want text (``version: 1.0`` is ``"1.0"``),
    so the schema accepts one there too rather than flag a file that loads."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not node.keys() & {"enum", "const", "format"}:
            node["type"] = ["string", "number"]
        for value in node.values():
            _strings_take_numbers(value)
    elif isinstance(node, list):
        for value in node:
            _strings_take_numbers(value)


def _describe(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Describe ``schema``'s properties from ``model``'s comments; drop their titles."""
    comments = _field_comments(model)
    by_alias = {(info.alias or name): name for name, info in model.model_fields.items()}
    for key, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        comment = comments.get(by_alias.get(key, key))
        if comment and "description" not in prop:
            prop["description"] = comment


def described_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema (camelCase keys, as files write them), each property described
    by the ``#:`` comment its field has in the model and without the titles pydantic makes up
    for properties (``Sourcehandle``)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    models = _models(model)
    for title, sub in schema.get("$defs", {}).items():
        if title in models:
            _describe(sub, models[title])
    _describe(schema, model)
    return schema


def flow_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a flow file, from the flow models."""
    schema = described_schema(Flow)
    _strings_take_numbers(schema)
    return {
        "$schema": _DIALECT,
        "title": "Atomiton flow",
        **{k: v for k, v in schema.items() if k not in ("title", "$defs")},
        "$defs": schema.get("$defs", {}),
    }


def flow_schema_text() -> str:
    """:func:`flow_schema` as the shipped file holds it (the models' order, two-space indent)."""
    return json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"


def load_flow_schema() -> dict[str, Any]:
    """The schema the package ships (``flow.schema.json``), as read from the installed file."""
    text = resources.files(__name__).joinpath(FLOW_SCHEMA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
