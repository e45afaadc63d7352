"""What ``http-request`` does when it runs: the httpx client, authentication, the size cap
and parsing of the answer. Kept apart from the node's declaration (``http_request``) so that
registering the node type, listing it or validating a flow does not import httpx and ssl.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from atomiton_core import ExecutionError, NodeContext, NodeTimeout

from atomiton_nodes_io._common import HttpError, ResponseTooLarge, render_str
from atomiton_nodes_io.http_request import HttpAuth, HttpRequestParams

__all__ = ["send"]

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_DEFAULT_TIMEOUT_S = 30.0


async def send(
    ctx: NodeContext,
    params: HttpRequestParams,
    input: Any = None,
    url: str | None = None,
    body: Any = None,
) -> dict[str, Any]:
    """The request of one ``http-request`` node, sent; its outputs."""
    target = url if url is not None else render_str(ctx, params.url, "url", input=input)
    if not target:
        raise ExecutionError(
            "no url given",
            node_id=ctx.node_id,
            hint="set the `url` parameter or connect the `url` input port",
        )
    settings = ctx.settings
    timeout_s = settings.timeout / 1000 if settings.timeout is not None else _DEFAULT_TIMEOUT_S
    headers = {k: str(ctx.render(v, input=input)) for k, v in params.headers.items()}
    query = ctx.render(params.params, input=input)
    request_kw = _body(params, headers, body, input, ctx)
    auth = _auth(ctx, params.auth, input)
    t0 = time.perf_counter()
    try:

        async def allowed(request: httpx.Request) -> None:  # every hop, redirects included
            await ctx.security.check_url(str(request.url), node_id=ctx.node_id)

        async with httpx.AsyncClient(
            event_hooks={"request": [allowed]},
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=params.follow_redirects,
            max_redirects=params.max_redirects,
            verify=_tls(params.verify_ssl),
        ) as client:
            request = client.build_request(
                params.method, target, headers=headers, params=query, **request_kw
            )
            response = await client.send(request, auth=auth, stream=True)
            try:
                content = await _read_capped(ctx, response, params.max_response_bytes)
            finally:
                await response.aclose()
    except httpx.TimeoutException as exc:
        raise NodeTimeout(
            f"{params.method} {target} timed out after {timeout_s:g} s ({type(exc).__name__})",
            node_id=ctx.node_id,
            hint="raise the node's 'timeout' parameter (milliseconds)",
        ) from exc
    except httpx.TooManyRedirects as exc:
        raise HttpError(
            f"{params.method} {target}: more than {params.max_redirects} redirects",
            node_id=ctx.node_id,
        ) from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise HttpError(
            f"{params.method} {target}: {type(exc).__name__}: {exc}",
            node_id=ctx.node_id,
            hint="check the url",
            retryable=False,
        ) from exc
    except httpx.TransportError as exc:
        raise HttpError(
            f"{params.method} {target} failed: {type(exc).__name__}: {exc}",
            node_id=ctx.node_id,
            hint="check the url and that the server is reachable",
            retryable=True,
        ) from exc
    duration_ms = (time.perf_counter() - t0) * 1000
    status = response.status_code
    ok = response.is_success
    retryable = status == 429 or status >= 500
    error_status = status >= 400
    if error_status and (
        params.fail_on_http_error or (retryable and ctx.attempt <= settings.retries)
    ):
        snippet = content[:200].decode("utf-8", "replace")
        raise HttpError(
            f"{params.method} {response.url} answered {status} "
            f"{response.reason_phrase}: {snippet!r}",
            node_id=ctx.node_id,
            status=status,
            hint="set `failOnHttpError: false` to receive error responses as output"
            + ("; set `retries` to retry" if retryable and not settings.retries else ""),
            retryable=retryable,
            retry_after=_capped(_retry_after_s(response.headers.get("retry-after")), params),
        )
    result = _parse(ctx, params.response_type, response, content)
    out = {
        "result": result,
        "status": status,
        "statusText": response.reason_phrase,
        "headers": dict(response.headers),
        "ok": ok,
        "duration": duration_ms,
        "url": str(response.url),
    }
    return {"output": out, "result": result, "status": status, "headers": out["headers"], "ok": ok}


@functools.cache
def _tls(verify: bool) -> ssl.SSLContext:
    """One TLS context per setting: building one costs ~50 ms, using one is thread-safe."""
    return httpx.create_ssl_context(verify=verify)


def _body(
    params: HttpRequestParams, headers: dict[str, str], body: Any, input: Any, ctx: NodeContext
) -> dict[str, Any]:
    value = body
    if value is None and params.body is not None:
        value = ctx.render(params.body, input=input)
    if value is None and params.method in _BODY_METHODS and params.method != "DELETE":
        value = input
    if value is None:
        return {}
    if isinstance(value, bytes | bytearray):
        return {"content": bytes(value)}
    if isinstance(value, str):
        return {"content": value.encode("utf-8")}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "application/x-www-form-urlencoded" in content_type and isinstance(value, dict):
        return {"data": value}
    return {"json": value}


def _auth(ctx: NodeContext, auth: HttpAuth | None, input: Any) -> httpx.Auth | None:
    if auth is None or auth.type == "none":
        return None
    if auth.type == "basic":
        return httpx.BasicAuth(
            str(ctx.render(auth.username or "", input=input)),
            str(ctx.render(auth.password or "", input=input)),
        )
    token = str(ctx.render(auth.token or "", input=input))
    if not token:
        raise ExecutionError(
            "bearer auth without a token",
            node_id=ctx.node_id,
            hint="set auth.token (a template such as '{{ apiToken }}' works)",
        )
    return _Bearer(token)


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


async def _read_capped(ctx: NodeContext, response: httpx.Response, limit: int) -> bytes:
    def too_big(size: str) -> ExecutionError:
        return ResponseTooLarge(
            f"response from {response.url} is {size}, more than maxResponseBytes={limit}",
            node_id=ctx.node_id,
            hint="raise `maxResponseBytes` if you really need the whole body",
        )

    declared = response.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > limit:
        raise too_big(f"{total} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_big(f"over {size} bytes")
        chunks.append(chunk)
        if total:
            ctx.progress(size / total)
    return b"".join(chunks)


def _parse(ctx: NodeContext, response_type: str, response: httpx.Response, content: bytes) -> Any:
    if response.request.method == "HEAD" or (not content and response_type != "binary"):
        return None if response_type != "text" else ""
    content_type = response.headers.get("content-type", "").lower()
    if response_type == "auto":
        if "json" in content_type:
            response_type = "json"
        elif content_type.startswith("text/") or any(
            t in content_type for t in ("xml", "javascript", "x-www-form-urlencoded")
        ):
            response_type = "text"
        elif content_type:
            response_type = "binary"
        else:
            try:
                return content.decode("utf-8")
            except UnicodeDecodeError:
                response_type = "binary"
    if response_type == "binary":
        return base64.b64encode(content).decode("ascii")
    text = content.decode(response.encoding or "utf-8", errors="replace")
    if response_type == "text":
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ExecutionError(
            f"response from {response.url} is not valid JSON: {exc}",
            node_id=ctx.node_id,
            hint="set `responseType: text` to receive it as text",
        ) from exc


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _capped(seconds: float | None, params: HttpRequestParams) -> float | None:
    """The server's Retry-After, capped by ``maxRetryWait``; the conductor waits it out."""
    return None if seconds is None else min(seconds, params.max_retry_wait / 1000)
