"""``http-request``: one HTTP call with httpx, bounded in time and size.

Timeouts and retries are the node's execution settings (``timeout``, ``retries``,
``retryDelay``), enforced by the conductor. This node adds what the conductor cannot know:
httpx gets the same timeout (and a timeout becomes code TIMEOUT); connection errors, 429 and
5xx are retryable and carry the server's ``Retry-After`` (capped by ``maxRetryWait``), which
the conductor waits out instead of its own backoff when longer; other 4xx are not retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from atomiton_core import NodeContext, node
from atomiton_core.nodes.definition import accepts_original_names
from pydantic import Field, field_validator, model_validator

from atomiton_nodes_io._common import IOParams, fail_missing, is_template

__all__ = ["HttpAuth", "HttpRequestParams", "http_request"]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class HttpAuth(IOParams):
    type: Literal["basic", "bearer", "none"] = Field("basic", description="basic or bearer")
    username: str | None = None
    password: str | None = Field(None, json_schema_extra={"secret": True, "format": "password"})
    token: str | None = Field(
        None,
        description="bearer: the token",
        json_schema_extra={"secret": True, "format": "password"},
    )

    @model_validator(mode="before")
    @classmethod
    def _bearer_if_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" not in data and data.get("token"):
            return {**data, "type": "bearer"}
        return data


class HttpRequestParams(IOParams):
    """The original's ``validateSSL`` is accepted for ``verifySsl``; its ``timeout``,
    ``retries`` and ``retryDelay`` are the execution settings every node has."""

    original_names: ClassVar[Mapping[str, str]] = {"validateSSL": "verifySsl"}
    _original = accepts_original_names()

    method: Method = Field("GET", description="HTTP method")
    url: str = Field(
        "", description="An absolute http(s) URL (a template); the `url` input port wins"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers")
    params: dict[str, Any] = Field(default_factory=dict, description="Query parameters")
    body: Any = Field(
        None,
        description="Request body: objects and lists are sent as JSON (or as a form when "
        "Content-Type says application/x-www-form-urlencoded); default for POST/PUT/PATCH: "
        "the input",
    )
    auth: HttpAuth | None = Field(
        None, description="{type: basic, username, password} or {type: bearer, token}"
    )
    response_type: Literal["auto", "json", "text", "binary"] = Field(
        "auto", description="How to parse the body; binary gives base64 text"
    )
    fail_on_http_error: bool = Field(True, description="Fail the node on a 4xx/5xx status")
    follow_redirects: bool = Field(True, description="Follow 3xx redirects")
    max_redirects: int = Field(20, ge=0, description="Most redirects to follow")
    max_response_bytes: int = Field(
        50 * 1024 * 1024, gt=0, description="Refuse response bodies larger than this"
    )
    max_retry_wait: float = Field(
        60_000, ge=0, description="Longest Retry-After (ms) the node will honour"
    )
    verify_ssl: bool = Field(True, description="Check TLS certificates")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not is_template(value):
            parts = urlsplit(value.strip())
            if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"{value!r} is not an absolute http(s) URL, such as https://example.com/api"
                )
        return value

    def missing_inputs(self, connected: frozenset[str]) -> list[tuple[str, str]]:
        if self.url or "url" in connected:
            return []
        return [("url", "no url given: set the `url` parameter or connect the `url` input port")]


@node(
    "http-request",
    params=HttpRequestParams,
    outputs={"output": dict, "result": Any, "status": int, "headers": dict, "ok": bool},
    name="HTTP Request",
    category="io",
    icon="globe",
    description="Call an HTTP API (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS) and parse "
    "the answer as JSON, text or bytes",
    # the original's default (definitions/http-request: timeout 30000 ms); a flow's own wins
    settings={"timeout": 30_000},
)
async def http_request(
    ctx: NodeContext,
    params: HttpRequestParams,
    input: Any = None,
    url: str | None = None,
    body: Any = None,
) -> dict[str, Any]:
    """Send one request; ``output`` is {result, status, statusText, headers, ok, duration, url}."""
    fail_missing(ctx, params, {"url": url})
    from atomiton_nodes_io._http import send  # httpx (and ssl) load when a request is made

    return await send(ctx, params, input, url, body)
