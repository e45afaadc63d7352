"""The wire format: the one place JSON is written and read.

Results, node results, events, validation reports, errors and records all go through
:func:`dump` / :func:`load` (and :func:`dumps` / :func:`loads` for text). The types declare their
fields with the annotations below, and pydantic's core does the work, in both directions, so
nothing is encoded by hand in one place and parsed by hand in another:

- keys are camelCase (``executionId``, ``durationMs``);
- timestamps (:data:`Timestamp`) are epoch seconds in Python and ISO 8601 UTC text on the wire;
- node values (:data:`Value`) are written JSON-safe (:func:`jsonable`: bytes as base64, other
  objects as their ``repr``) and read back as plain JSON data;
- errors (:data:`Error`) are ``{"code", "message", "hint", "nodeId", "path", ...}`` and are
  read back as the class that owns the code (``errors.ERROR_CLASSES``).

The client of ``atomiton serve`` reads what the server wrote with the same functions, so it
returns the same classes a local conductor does.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ConfigDict, PlainSerializer, PlainValidator, TypeAdapter
from pydantic.alias_generators import to_camel

from atomiton_core.errors import (
    AtomitonError,
    FlowValidationError,
    RemoteError,
    ValidationReport,
    error_class,
)

__all__ = [
    "CONFIG",
    "Error",
    "Timestamp",
    "Value",
    "dump",
    "dump_error",
    "dumps",
    "iso",
    "jsonable",
    "load",
    "load_error",
    "loads",
]

T = TypeVar("T")

#: The pydantic configuration of every dataclass that travels: ``__pydantic_config__ = CONFIG``.
CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, arbitrary_types_allowed=True)


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: bytes become base64 text, unknown objects their ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, AtomitonError):
        return dump_error(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return jsonable(model_dump(mode="json", by_alias=True))
    return repr(value)


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC text (the wire's one timestamp format)."""
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def _epoch(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return value


_REPORT = TypeAdapter(ValidationReport)


def dump_error(err: AtomitonError) -> dict[str, Any]:
    """An error as the wire carries it."""
    data: dict[str, Any] = {"code": str(err.code), "message": err.message}
    if err.hint:
        data["hint"] = err.hint
    if err.node_id:
        data["nodeId"] = err.node_id
    if err.path:
        data["path"] = err.path
    if err.retryable:
        data["retryable"] = True
    if isinstance(err, FlowValidationError):
        data["problems"] = [p.model_dump(mode="json", by_alias=True) for p in err.report.problems]
        data["flowId"] = err.report.flow_id
    elif isinstance(err, RemoteError):
        data["statusCode"] = err.status_code
    return data


def load_error(data: Any) -> AtomitonError | None:
    """The error :func:`dump_error` wrote, as the class that owns its code."""
    if data is None or isinstance(data, AtomitonError):
        return data
    code = str(data.get("code", ""))
    message = str(data.get("message", ""))
    cls = error_class(code)
    where = {"hint": data.get("hint"), "node_id": data.get("nodeId"), "path": data.get("path")}
    if cls is FlowValidationError:
        report = _REPORT.validate_python(
            {"flowId": data.get("flowId", ""), "problems": data.get("problems", [])}
        )
        err: AtomitonError = FlowValidationError(report)
        err.message = message or err.message
        return err
    if cls is None or cls is RemoteError:
        err = RemoteError(
            message, status_code=int(data.get("statusCode", 502)), **where, remote_code=code
        )
    else:
        err = cls.__new__(cls)
        AtomitonError.__init__(err, message, **where)
    err.retryable = bool(data.get("retryable", False))
    return err


#: An epoch-seconds float, written as ISO 8601 UTC text.
Timestamp = Annotated[
    float | None, BeforeValidator(_epoch), PlainSerializer(iso, return_type=str | None)
]
#: Whatever a node produced; written JSON-safe.
Value = Annotated[Any, PlainSerializer(jsonable)]
#: An AtomitonError, written as its code and message.
Error = Annotated[
    AtomitonError | None,
    PlainValidator(load_error),
    PlainSerializer(lambda e: dump_error(e) if e is not None else None),
]


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(cls: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def dump(obj: Any, *, exclude_none: bool = False) -> Any:
    """``obj`` (a result, event, report, error...) as JSON-ready data."""
    if isinstance(obj, AtomitonError):
        return dump_error(obj)
    return _adapter(type(obj)).dump_python(
        obj, mode="json", by_alias=True, exclude_none=exclude_none
    )


def dumps(obj: Any, *, exclude_none: bool = False, indent: int | None = None) -> str:
    """``obj`` as JSON text."""
    if isinstance(obj, AtomitonError):
        return _adapter(dict).dump_json(dump_error(obj), indent=indent).decode()
    raw = _adapter(type(obj)).dump_json(
        obj, by_alias=True, exclude_none=exclude_none, indent=indent
    )
    return raw.decode()


def load(cls: type[T], data: Any) -> T:
    """What :func:`dump` wrote for a ``cls``, as a ``cls`` again."""
    if isinstance(cls, type) and issubclass(cls, AtomitonError):
        err = load_error(data)
        if not isinstance(err, cls):
            raise TypeError(f"expected a {cls.__name__} on the wire, got {data!r}")
        return err
    result: T = _adapter(cls).validate_python(data)
    return result


def loads(cls: type[T], text: str | bytes) -> T:
    """What :func:`dumps` wrote for a ``cls``, as a ``cls`` again."""
    result: T = _adapter(cls).validate_json(text)
    return result
