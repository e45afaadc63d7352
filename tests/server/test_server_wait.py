"""``?wait=``: start an execution and get its result in one request, or wait on a running one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest


@pytest.fixture(scope="module")
def http(served: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, headers=served.auth, timeout=30) as client:
        yield client


def test_post_with_wait_answers_the_result(http: httpx.Client) -> None:
    response = http.post("/api/executions?wait=true", json={"flowId": "demo"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "completed" and result["progress"] == 1.0
    assert result["outputs"] == {"shout": {"output": ["HELLO WORLD"]}}
    assert response.headers["location"] == f"/api/executions/{result['executionId']}"
    # the same answer GET gives
    assert http.get(response.headers["location"]).json() == result


def test_an_inline_flow_with_wait_answers_the_result(http: httpx.Client, demo_yaml: str) -> None:
    response = http.post(
        "/api/executions?wait=10", json={"flow": demo_yaml, "inputs": {"who": "Ada"}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"] == {"shout": {"output": ["HELLO ADA"]}}


def test_a_run_longer_than_the_wait_answers_202(http: httpx.Client) -> None:
    response = http.post("/api/executions?wait=0.05", json={"flowId": "sleepy"})
    assert response.status_code == 202, response.text
    eid = response.json()["executionId"]
    assert response.json()["status"] == "running"
    still = http.get(f"/api/executions/{eid}?wait=0.05")
    assert still.status_code == 200 and still.json()["status"] == "running"
    assert http.post(f"/api/executions/{eid}/cancel").status_code == 202
    final = http.get(f"/api/executions/{eid}?wait=true").json()
    assert final["status"] == "cancelled"


@pytest.mark.parametrize("wait", ["-1", "abc", "nan", "301", "inf"])
def test_a_wait_that_is_not_a_duration_is_refused(http: httpx.Client, wait: str) -> None:
    response = http.post(f"/api/executions?wait={wait}", json={"flowId": "demo"})
    assert response.status_code == 400
    assert "`wait` must be true or a number of seconds" in response.json()["error"]["message"]
    assert http.get(f"/api/executions/nope?wait={wait}").status_code == 400


@pytest.mark.parametrize("wait", ["false", "0", ""])
def test_wait_false_starts_as_without_it(http: httpx.Client, wait: str) -> None:
    response = http.post(f"/api/executions?wait={wait}", json={"flowId": "sleepy"})
    assert response.status_code == 202
    http.post(f"/api/executions/{response.json()['executionId']}/cancel")
