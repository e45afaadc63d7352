"""The OpenAPI document of the server's HTTP API, read from the app it describes.

Nothing here lists the endpoints: :func:`openapi_document` walks the routes of a Starlette
app as :func:`~atomiton_core.server.app.create_app` built it, and takes each operation's
summary and description from its endpoint's docstring, its path parameters from the route's
pattern, its query parameters from the ``?name=`` the docstring mentions, and which paths
need the token from the app's token gate. An endpoint added to the app is in the document
the next time it is built, with whatever its docstring says. WebSocket routes, which OpenAPI
has no word for, are ``get`` operations marked ``x-websocket: true`` (the upgrade request).

Served at ``/api/openapi.json`` by :func:`openapi_json`, and rendered in the documentation
site (its reference "HTTP API" page is built from the document of the app ``atomiton serve``
runs).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from atomiton_core.version import __version__

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

__all__ = ["OPENAPI_VERSION", "openapi_document", "openapi_json"]

#: The OpenAPI version of the documents built here.
OPENAPI_VERSION = "3.1.0"

_QUERY = re.compile(r"[?&]([A-Za-z_][A-Za-z0-9_-]*)=")
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}")
_CONVERTOR_TYPES = {
    "IntegerConvertor": {"type": "integer"},
    "FloatConvertor": {"type": "number"},
    "UUIDConvertor": {"type": "string", "format": "uuid"},
}
_DESCRIPTION = """\
The HTTP and WebSocket API of `atomiton serve`: flows, executions, runs, node types and
triggers of one conductor. Bodies are JSON unless an operation says otherwise; an error is
`{"error": {"code", "message", "hint"?}}` with the HTTP status its code carries.
Every path under `/api` needs `Authorization: Bearer <token>` (a WebSocket may send
`?token=` instead) unless its operation says `security: []`.
"""


def _doc(endpoint: Any) -> str:
    return inspect.getdoc(endpoint) or ""


def _summary(name: str, doc: str) -> str:
    """The docstring's first sentence, asides in parentheses left out; without a docstring,
    the endpoint's name in words."""
    if not doc:
        words = name.strip("_").replace("_", " ")
        return words[:1].upper() + words[1:]
    first = " ".join(doc.split("\n\n", 1)[0].split())
    kept, depth = [], 0
    for i, char in enumerate(first):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".;:" and first[i + 1 : i + 2] in (" ", ""):
            break
        if depth == 0 and char != ")":
            kept.append(char)
    return " ".join("".join(kept).split())


def _path_parameters(route: Any) -> list[dict[str, Any]]:
    convertors: dict[str, Any] = getattr(route, "param_convertors", {})
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(
                _CONVERTOR_TYPES.get(type(convertors.get(name)).__name__, {"type": "string"})
            ),
        }
        for name in _PARAM.findall(route.path)
    ]


def _query_parameters(doc: str, taken: Iterable[str]) -> list[dict[str, Any]]:
    seen = set(taken)
    found = []
    for name in _QUERY.findall(doc):
        if name not in seen:
            seen.add(name)
            found.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "see the operation's description",
                }
            )
    return found


def _open_paths(app: Starlette) -> frozenset[str]:
    """The paths the app's token gate lets through without the token."""
    for middleware in getattr(app, "user_middleware", []):
        cls = middleware.cls
        if cls.__name__ != "TokenGate":
            continue
        given = dict(middleware.kwargs).get("open_paths")
        if given is None:
            given = inspect.signature(cls).parameters["open_paths"].default
        return frozenset(given)
    return frozenset()  # no gate: nothing needs a token, every path is open


def _gated(app: Starlette) -> bool:
    return any(m.cls.__name__ == "TokenGate" for m in getattr(app, "user_middleware", []))


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    if parts[:1] == ["api"]:
        parts = parts[1:]
    return parts[0] if parts else "page"


def _operation(
    route: Any, method: str, *, websocket: bool, open_path: bool, gated: bool
) -> dict[str, Any]:
    endpoint = route.endpoint
    name = getattr(endpoint, "__name__", type(endpoint).__name__)
    doc = _doc(endpoint)
    params = _path_parameters(route)
    params += _query_parameters(doc, (p["name"] for p in params))
    op: dict[str, Any] = {
        "operationId": name,
        "summary": _summary(name, doc),
        "tags": [_tag(route.path)],
    }
    if doc:
        op["description"] = doc
    if params:
        op["parameters"] = params
    if websocket:
        op["x-websocket"] = True
        op["responses"] = {
            "101": {"description": "Switching Protocols: the socket then carries JSON messages"},
            "4XX": {"$ref": "#/components/responses/Error"},
        }
    else:
        op["responses"] = {
            "2XX": {"description": "Success"},
            "4XX": {"$ref": "#/components/responses/Error"},
            "5XX": {"$ref": "#/components/responses/Error"},
        }
    if gated and (open_path or not route.path.startswith("/api")):
        op["security"] = []
    return op


def _routes(routes: Sequence[BaseRoute]) -> list[tuple[Any, list[str], bool]]:
    """(route, methods, is a WebSocket) for each route the document describes."""
    from starlette.routing import Mount, Route, WebSocketRoute

    found: list[tuple[Any, list[str], bool]] = []
    for route in routes:
        if isinstance(route, WebSocketRoute):
            found.append((route, ["get"], True))
        elif isinstance(route, Route):
            methods = sorted(m.lower() for m in (route.methods or {"GET"}) if m != "HEAD")
            found.append((route, methods, False))
        elif isinstance(route, Mount):
            found.append((_MountedFiles(route), ["get"], False))
    return found


class _MountedFiles:
    """A mount (the page's static files) seen as the one route it answers."""

    def __init__(self, mount: Any) -> None:
        self.path = mount.path.rstrip("/") + "/{path}"
        self.endpoint = _files
        self.param_convertors: dict[str, Any] = {}


def _files() -> None:
    """Files served under this path (the page's scripts and styles); no token needed."""


def openapi_document(app: Starlette) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s routes (see the module's notes)."""
    open_paths = _open_paths(app)
    gated = _gated(app)
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for route, methods, websocket in _routes(app.routes):
        path = _PARAM.sub(r"{\1}", route.path)
        item = paths.setdefault(path, {})
        for method in methods:
            op = _operation(
                route, method, websocket=websocket, open_path=route.path in open_paths, gated=gated
            )
            if op["operationId"] in used:
                op["operationId"] = f"{op['operationId']}_{method}"
            used.add(op["operationId"])
            item[method] = op
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Atomiton server",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "hint": {"type": "string"},
                                "nodeId": {"type": "string"},
                                "path": {"type": "string"},
                            },
                        },
                        "report": {
                            "type": "object",
                            "description": "a validation failure's ValidationReport",
                        },
                    },
                }
            },
            "responses": {
                "Error": {
                    "description": "An error, with its stable code",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }
    if gated:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


async def openapi_json(request: Request) -> Response:
    """This server's OpenAPI document (built once, from its own routes)."""
    from starlette.responses import JSONResponse

    state = request.app.state
    document = getattr(state, "openapi", None)
    if document is None:
        document = state.openapi = openapi_document(request.app)
    return JSONResponse(document)
