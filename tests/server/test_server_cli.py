"""``atomiton serve`` as a user runs it: a subprocess printing its URL and token."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atomiton_core import ExecutionResult, create_conductor, loads_flow
from atomiton_core.server.client import RemoteConductor

FLOW = """\
id: hello
name: Hello
nodes:
  - {id: greet, type: edit-fields, parameters: {values: {message: hi}}}
"""
FLOW_WITH_VARIABLE = """\
id: greeting
name: Greeting
variables:
  who: {type: string, defaultValue: world}
nodes:
  - {id: greet, type: edit-fields, parameters: {values: {message: "hi {{ who }}"}}}
"""
BROKEN_FLOW = """\
id: broken
name: Broken
nodes:
  - {id: bad, type: edit-fields, parameters: {values: {x: "{{ input.nowhere }}"}}}
"""
CODE_FLOW = """\
id: code
name: Code
nodes:
  - {id: run, type: code, parameters: {code: "1"}}
"""
SAFE_REFUSED = [
    (
        {"type": "spreadsheet", "parameters": {"path": "/etc/passwd", "format": "csv"}},
        "PATH_NOT_ALLOWED",
    ),
    (
        {
            "type": "file-system",
            "parameters": {"operation": "write", "path": "/tmp/x", "content": "x"},
        },
        "PATH_NOT_ALLOWED",
    ),
    ({"type": "shell-command", "parameters": {"program": "echo"}}, "EXECUTION_FAILED"),
    ({"type": "http-request", "parameters": {"url": "http://127.0.0.1:1/"}}, "HOST_NOT_ALLOWED"),
    ({"type": "http-request", "parameters": {"url": "http://localhost:1/"}}, "HOST_NOT_ALLOWED"),
    ({"type": "http-request", "parameters": {"url": "http://[::1]:1/"}}, "HOST_NOT_ALLOWED"),
    (
        {"type": "http-request", "parameters": {"url": "http://169.254.169.254/"}},
        "HOST_NOT_ALLOWED",
    ),
]


def run_served(url: str, token: str, node_spec: dict[str, object]) -> ExecutionResult:
    """One node run on the server, through the client (which follows its events)."""
    flow = {"id": "safe", "name": "safe", "nodes": [{"id": "n", **node_spec}]}
    with RemoteConductor(url, token) as remote:
        return remote.run(flow)


def atomiton(*args: str) -> list[str]:
    return [sys.executable, "-c", "from atomiton_core.cli import main; main()", *args]


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.flow.yaml").write_text(FLOW)
    proc = subprocess.Popen(
        atomiton(
            "serve",
            "--port",
            "0",
            "--storage",
            str(tmp_path),
            "--safe",
            "--disable-type",
            "transform",
            "--log-level",
            "warning",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ATOMITON_TOKEN": ""},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("live page:"):
            break
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def url_and_token(lines: list[str]) -> tuple[str, str]:
    """The URL and token ``atomiton serve`` printed."""
    text = "\n".join(lines)
    url_match = re.search(r"Atomiton server on (http://127\.0\.0\.1:\d+)/", text)
    token_match = re.search(r"^token: (\S+)$", text, re.MULTILINE)
    assert url_match and token_match, text
    return url_match.group(1), token_match.group(1)


def test_serve_prints_url_and_token_and_serves(
    server_process: tuple[subprocess.Popen[str], list[str]],
) -> None:
    proc, lines = server_process
    text = "\n".join(lines)
    url, token = url_and_token(lines)
    assert int(url.rsplit(":", 1)[1]) > 0
    assert len(token) >= 32  # secrets.token_urlsafe(32)
    assert f"live page: {url}/?token={token}" in text
    assert "disabled node types: code, javascript, transform" in text
    assert "safe mode: files under no folder; programs: none; hosts: public addresses only" in text

    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/api/health").status_code == 200
    assert httpx.get(f"{url}/api/flows").status_code == 401
    assert [f["id"] for f in httpx.get(f"{url}/api/flows", headers=auth).json()["flows"]] == [
        "hello"
    ]
    nodes = httpx.get(f"{url}/api/nodes", headers=auth).json()
    assert nodes["disabled"] == ["code", "javascript", "transform"]
    report = httpx.post(f"{url}/api/flows/validate", content=CODE_FLOW, headers=auth).json()
    assert report["valid"] is False
    assert "disabled" in report["problems"][0]["hint"]
    # --safe is a policy every node that touches the host is held to
    for flow, code in SAFE_REFUSED:
        result = run_served(url, token, flow)
        assert result.status == "failed", (flow, result)
        err = result.nodes["n"].error
        assert err is not None and err.code == code, err
    started = httpx.post(f"{url}/api/executions", json={"flowId": "hello"}, headers=auth)
    assert started.status_code == 202

    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0


def test_a_served_run_equals_the_local_run(
    server_process: tuple[subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    """Through the client, the same flow gives an equal ExecutionResult of the same class."""
    url, token = url_and_token(server_process[1])
    flow = loads_flow(FLOW_WITH_VARIABLE)
    with create_conductor(tmp_path / "local") as local_conductor:
        local = local_conductor.run(flow, {"who": "Ada"})
    with RemoteConductor(url, token) as remote:
        served = remote.run(flow, {"who": "Ada"})
        broken = remote.run(loads_flow(BROKEN_FLOW))
    with create_conductor(tmp_path / "local") as local_conductor:
        broken_here = local_conductor.run(loads_flow(BROKEN_FLOW))
    for theirs, ours in ((served, local), (broken, broken_here)):
        assert type(theirs) is type(ours) is ExecutionResult
        assert untimed(theirs) == untimed(ours)
    assert served.ok and served.outputs == {"greet": {"output": {"message": "hi Ada"}}}
    assert not broken.ok and type(broken.error) is type(broken_here.error)


def untimed(result: ExecutionResult) -> ExecutionResult:
    nodes = {
        path: dataclasses.replace(n, started_at=None, duration_ms=None, cpu_ms=None)
        for path, n in result.nodes.items()
    }
    return dataclasses.replace(
        result, execution_id="", started_at=None, duration_ms=None, nodes=nodes
    )


def test_the_client_imports_without_the_server_dependencies() -> None:
    probe = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn', 'wsproto'):\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from atomiton_core.server.client import RemoteConductor\n"
        "print('CLIENT', RemoteConductor.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "CLIENT RemoteConductor" in result.stdout, result.stdout + result.stderr


def test_serve_help_and_lazy_imports() -> None:
    out = subprocess.run(atomiton("serve", "--help"), capture_output=True, text=True, check=True)
    for option in (
        "--host",
        "--port",
        "--storage",
        "--token",
        "--disable-type",
        "--safe",
        "--cors-origin",
        "--max-body-bytes",
    ):
        assert option in out.stdout
    probe = (
        "import sys; from atomiton_core.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('uvicorn', 'starlette', 'websockets', 'wsproto'))\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
