"""http-request through the real conductor against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from atomiton_core import Conductor, ExecutionResult, loads_flow

RunNode = Callable[..., ExecutionResult]


def _out(res: ExecutionResult) -> dict[str, Any]:
    assert res.status == "completed", res.error
    out: dict[str, Any] = res.nodes["n"].outputs["output"]
    return out


def test_json_text_binary(run_node: RunNode, base_url: str) -> None:
    out = _out(run_node("http-request", {"url": f"{base_url}/json"}))
    assert out["result"] == {"hello": "world", "n": 1}
    assert out["status"] == 200 and out["ok"] is True and out["statusText"] == "OK"
    assert out["headers"]["content-type"] == "application/json"
    assert out["duration"] > 0 and out["url"] == f"{base_url}/json"
    assert _out(run_node("http-request", {"url": f"{base_url}/text"}))["result"] == "plain text ✓"
    out = _out(run_node("http-request", {"url": f"{base_url}/binary"}))
    assert base64.b64decode(out["result"]) == bytes(range(256))
    out = _out(run_node("http-request", {"url": f"{base_url}/json", "responseType": "text"}))
    assert out["result"] == '{"hello": "world", "n": 1}'
    out = _out(run_node("http-request", {"url": f"{base_url}/json", "responseType": "binary"}))
    assert base64.b64decode(out["result"]).startswith(b"{")
    res = run_node("http-request", {"url": f"{base_url}/text", "responseType": "json"})
    assert res.status == "failed" and "not valid JSON" in str(res.nodes["n"].error)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_methods_query_headers(run_node: RunNode, base_url: str, method: str) -> None:
    out = _out(
        run_node(
            "http-request",
            {
                "method": method.lower(),
                "url": f"{base_url}/echo",
                "params": {"q": "a b", "n": 3},
                "headers": {"X-Trace": "t-{{ 1 + 1 }}"},
            },
        )
    )
    echo = out["result"]
    assert echo["method"] == method
    assert echo["query"] == {"q": "a b", "n": "3"}
    assert echo["headers"]["x-trace"] == "t-2"


def test_head(run_node: RunNode, base_url: str) -> None:
    out = _out(run_node("http-request", {"method": "HEAD", "url": f"{base_url}/json"}))
    assert out["status"] == 200 and out["result"] is None


def test_json_body_form_body_and_input_body(run_node: RunNode, base_url: str) -> None:
    out = _out(
        run_node(
            "http-request",
            {"method": "POST", "url": f"{base_url}/echo", "body": {"a": [1, 2], "b": None}},
        )
    )
    echo = out["result"]
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["body"].replace(" ", "") == '{"a":[1,2],"b":null}'
    out = _out(
        run_node(
            "http-request",
            {
                "method": "POST",
                "url": f"{base_url}/echo",
                "body": {"x": "1"},
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
        )
    )
    assert out["result"]["body"] == "x=1"
    out = _out(
        run_node("http-request", {"method": "PUT", "url": f"{base_url}/echo"}, input="raw text")
    )
    assert out["result"]["body"] == "raw text"


def test_basic_and_bearer_auth(run_node: RunNode, base_url: str) -> None:
    out = _out(
        run_node(
            "http-request",
            {
                "url": f"{base_url}/echo",
                "auth": {"type": "basic", "username": "ann", "password": "s3cret"},
            },
        )
    )
    expected = "Basic " + base64.b64encode(b"ann:s3cret").decode()
    assert out["result"]["headers"]["authorization"] == expected
    out = _out(run_node("http-request", {"url": f"{base_url}/echo", "auth": {"token": "tok"}}))
    assert out["result"]["headers"]["authorization"] == "Bearer tok"


def test_redirects(run_node: RunNode, base_url: str) -> None:
    out = _out(run_node("http-request", {"url": f"{base_url}/redirect"}))
    assert out["result"] == {"hello": "world", "n": 1} and out["url"] == f"{base_url}/json"
    out = _out(run_node("http-request", {"url": f"{base_url}/redirect", "followRedirects": False}))
    assert out["status"] == 302 and out["headers"]["location"] == "/json" and out["ok"] is False


def test_http_error_fails_unless_told_otherwise(run_node: RunNode, base_url: str) -> None:
    res = run_node("http-request", {"url": f"{base_url}/status/404"})
    err = res.nodes["n"].error
    assert res.status == "failed" and err is not None and err.code == "HTTP_ERROR"
    assert "404" in err.message and "failOnHttpError" in str(err)
    out = _out(
        run_node("http-request", {"url": f"{base_url}/status/404", "failOnHttpError": False})
    )
    assert (
        out["status"] == 404 and out["ok"] is False and out["result"] == {"error": "as requested"}
    )


def test_client_errors_are_not_retried(run_node: RunNode, base_url: str) -> None:
    t0 = time.monotonic()
    res = run_node(
        "http-request", {"url": f"{base_url}/status/404", "retries": 3, "retryDelay": 500}
    )
    assert res.status == "failed" and res.nodes["n"].attempts == 1  # retrying a 404 cannot help
    assert time.monotonic() - t0 < 0.5


def test_retries_500_500_200(run_node: RunNode, base_url: str) -> None:
    key = uuid.uuid4().hex
    res = run_node(
        "http-request", {"url": f"{base_url}/flaky/{key}/2/500", "retries": 2, "retryDelay": 10}
    )
    assert _out(res)["result"] == {"attempt": 3}
    assert res.nodes["n"].attempts == 3
    key = uuid.uuid4().hex
    res = run_node(
        "http-request", {"url": f"{base_url}/flaky/{key}/3/503", "retries": 2, "retryDelay": 10}
    )
    assert res.status == "failed" and "503" in str(res.nodes["n"].error)


def test_retries_even_when_errors_are_output(run_node: RunNode, base_url: str) -> None:
    key = uuid.uuid4().hex
    res = run_node(
        "http-request",
        {
            "url": f"{base_url}/flaky/{key}/1/502",
            "retries": 1,
            "retryDelay": 10,
            "failOnHttpError": False,
        },
    )
    assert _out(res)["status"] == 200
    key = uuid.uuid4().hex
    out = _out(
        run_node("http-request", {"url": f"{base_url}/flaky/{key}/1/502", "failOnHttpError": False})
    )
    assert out["status"] == 502  # no retries asked: the error response is the output


def test_429_retry_after_is_honoured(run_node: RunNode, base_url: str, http_server: Any) -> None:
    key = uuid.uuid4().hex
    t0 = time.monotonic()
    res = run_node(
        "http-request", {"url": f"{base_url}/ratelimit/{key}/1", "retries": 1, "retryDelay": 10}
    )
    assert _out(res)["result"] == {"attempt": 2}
    hits = http_server.state.times[key]
    assert hits[1] - hits[0] >= 0.95  # the server asked for 1 s; the backoff alone is 10 ms
    assert time.monotonic() - t0 < 5


def test_connection_error_is_retried_then_reported(run_node: RunNode) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_node(
        "http-request", {"url": f"http://127.0.0.1:{port}/", "retries": 1, "retryDelay": 10}
    )
    err = res.nodes["n"].error
    assert res.status == "failed" and err is not None and err.code == "HTTP_ERROR"
    assert res.nodes["n"].attempts == 2 and "ConnectError" in err.message


def test_slow_response_times_out_quickly(run_node: RunNode, base_url: str) -> None:
    t0 = time.monotonic()
    res = run_node("http-request", {"url": f"{base_url}/slow/5", "timeout": 300})
    elapsed = time.monotonic() - t0
    err = res.nodes["n"].error
    assert res.status == "failed" and err is not None and err.code == "TIMEOUT"
    assert elapsed < 2


def test_large_body_is_capped(run_node: RunNode, base_url: str) -> None:
    res = run_node("http-request", {"url": f"{base_url}/big/1000000", "maxResponseBytes": 1000})
    err = res.nodes["n"].error
    assert err is not None and err.code == "RESPONSE_TOO_LARGE" and "1000000" in err.message
    res = run_node(
        "http-request", {"url": f"{base_url}/big/3000000/chunked", "maxResponseBytes": 100_000}
    )
    err = res.nodes["n"].error
    assert err is not None and err.code == "RESPONSE_TOO_LARGE"
    out = _out(run_node("http-request", {"url": f"{base_url}/big/5000", "maxResponseBytes": 5000}))
    assert len(base64.b64decode(out["result"])) == 5000


def test_url_template_and_missing_url(run_node: RunNode, base_url: str) -> None:
    out = _out(run_node("http-request", {"url": base_url + "/{{ $input }}"}, input="json"))
    assert out["result"]["hello"] == "world"


def test_no_url_is_refused_before_the_run_and_an_empty_url_port_fails_it(
    conductor: Conductor,
) -> None:
    (problem,) = conductor.validate(
        loads_flow("id: t\nname: t\nnodes:\n  - {id: n, type: http-request}\n")
    ).errors
    assert problem.code == "MISSING_PARAMETER" and problem.location == "nodes[0].parameters.url"
    res = conductor.run(
        loads_flow(
            "id: t\nname: t\nnodes:\n  - {id: none, type: const, parameters: {value: null}}\n"
            "  - {id: n, type: http-request}\n"
            "edges:\n  - {source: none, target: n, targetHandle: url}\n"
        )
    )
    assert res.status == "failed" and "no url" in str(res.nodes["n"].error)
