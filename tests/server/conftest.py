"""Fixtures for the server tests: a real uvicorn server on a free loopback port, per module."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import BaseModel

from atomiton_core import (
    Conductor,
    NodeContext,
    create_conductor,
    hookimpl,
    loads_flow,
    node,
    signals,
    wire,
)
from atomiton_core.server.app import create_app, uvicorn_settings

TOKEN = "test-token-0123456789"

DEMO_YAML = """\
# the demo flow of the issue
id: demo
name: Demo
variables: {who: {type: string, defaultValue: world}}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}, keepOnlySet: true}
  - id: shout
    type: transform
    parameters: {operation: map, expression: "item.message | upper"}
edges:
  - {source: greet, target: shout, sourceHandle: output, targetHandle: input}
"""

SLEEPY_YAML = """\
id: sleepy
name: Sleepy
nodes:
  - id: first
    type: edit-fields
    parameters: {values: {n: 1}}
  - id: nap
    type: test.sleep
    parameters: {seconds: 30, steps: 300}
  - id: after
    type: edit-fields
    parameters: {values: {done: true}}
edges:
  - {source: first, target: nap, sourceHandle: output, targetHandle: input}
  - {source: nap, target: after, sourceHandle: output, targetHandle: input}
"""


class SleepParams(BaseModel):
    seconds: float = 0.1
    steps: int = 4


@node("test.sleep", params=SleepParams, outputs={"output": object}, category="test")
async def sleep_node(ctx: NodeContext, params: SleepParams, input: Any = None) -> dict[str, Any]:
    """Sleep, reporting progress at each step."""
    for i in range(params.steps):
        await asyncio.sleep(params.seconds / params.steps)
        ctx.progress((i + 1) / params.steps, f"step {i + 1}")
    return {"output": input}


class BurstParams(BaseModel):
    count: int = 50


@node("test.burst", params=BurstParams, outputs={"output": object}, blocking=False)
def burst_node(ctx: NodeContext, params: BurstParams, input: Any = None) -> dict[str, Any]:
    """Report progress many times without yielding to the loop: a flood of events."""
    for i in range(params.count):
        ctx.progress((i + 1) / params.count)
    return {"output": params.count}


@node("test.gate", outputs={"output": object}, category="test")
async def gate_node(ctx: NodeContext, params: BaseModel, input: Any = None) -> dict[str, Any]:
    """Wait until the test opens ``config["gate"]`` (an asyncio.Event set in the server loop)."""
    await ctx.config["gate"].wait()
    return {"output": input}


class NodesPlugin:
    """A plugin contributing the test node types."""

    @hookimpl
    def atomiton_node_types(self) -> list[Any]:
        return [sleep_node, burst_node, gate_node]


def make_conductor(**kw: Any) -> Conductor:
    return create_conductor(
        f"memory://atomiton-server-tests/{uuid.uuid4().hex}",
        plugins=[NodesPlugin()],
        autoload=False,
        **kw,
    )


@dataclass
class Served:
    url: str
    token: str
    conductor: Conductor
    app: Any
    #: Every event the conductor emitted, as JSON data, in order (recorded in-process).
    recorded: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def recorded_for(self, execution_id: str) -> list[dict[str, Any]]:
        return [e for e in list(self.recorded) if e.get("executionId") == execution_id]


_EXECUTION_SIGNALS = [s for s in signals.ALL_SIGNALS if not s.name.startswith("flow.")]


class _Server(uvicorn.Server):
    """uvicorn's server, telling other threads when its startup is over (listening, or not)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_over = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_over.set()

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets=sockets)
        finally:
            self.startup_over.set()  # it failed before its startup


@contextlib.contextmanager
def serve(app: Any, conductor: Conductor, token: str = TOKEN) -> Iterator[Served]:
    """Run ``app`` under a real uvicorn in a thread until the generator is closed."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **uvicorn_settings()
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    if not server.startup_over.wait(60) or not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    served = Served(f"http://127.0.0.1:{port}", token, conductor, app)

    def record(sender: Any, event: Any) -> None:
        served.recorded.append(wire.dump(event, exclude_none=True))

    for sig in _EXECUTION_SIGNALS:
        sig.connect(record, sender=conductor, weak=False)
    try:
        yield served
    finally:
        for sig in _EXECUTION_SIGNALS:
            sig.disconnect(record)  # from all senders, or it stays in sig.receivers
        server.should_exit = True
        thread.join(10)
        conductor.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    conductor = make_conductor()
    assert conductor.storage is not None
    conductor.storage.save(loads_flow(DEMO_YAML))
    conductor.storage.save(loads_flow(SLEEPY_YAML))
    with serve(create_app(conductor, token=TOKEN, max_body_bytes=64 * 1024), conductor) as s:
        yield s


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., Served]]:
    """Start more servers: ``start_server(conductor_kw={...}, **create_app_kw)``."""
    with contextlib.ExitStack() as stack:

        def start(*, conductor_kw: dict[str, Any] | None = None, **app_kw: Any) -> Served:
            conductor = make_conductor(**(conductor_kw or {}))
            assert conductor.storage is not None
            conductor.storage.save(loads_flow(DEMO_YAML))
            app_kw.setdefault("token", TOKEN)
            return stack.enter_context(serve(create_app(conductor, **app_kw), conductor))

        yield start


@pytest.fixture
def serve_app() -> Callable[..., contextlib.AbstractContextManager[Served]]:
    """``with serve_app(app, conductor, token) as served``: any app under a real uvicorn."""
    return serve


@pytest.fixture
def demo_yaml() -> str:
    return DEMO_YAML


@pytest.fixture
def sleepy_yaml() -> str:
    return SLEEPY_YAML


@pytest.fixture
def local_conductor() -> Iterator[Conductor]:
    """A conductor in this process with the same node types as the served one."""
    conductor = make_conductor(record_runs=False)
    yield conductor
    conductor.close()


ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]


@contextlib.contextmanager
def _serve_cli(storage: Path, *extra: str) -> Iterator[tuple[str, str]]:
    """``atomiton serve`` in its own process on a free loopback port: its URL and token, read
    from what it prints; stopped on the way out."""
    command = [*ATOMITON, "serve", "--port", "0", "--storage", str(storage), *extra]
    proc = subprocess.Popen(
        [*command, "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "ATOMITON_TOKEN": ""},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    url = token = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (url is None or token is None):
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if m := re.search(r"Atomiton server on (http://127\.0\.0\.1:\d+)/", line):
            url = m.group(1)
        if m := re.match(r"token: (\S+)", line):
            token = m.group(1)
    try:
        assert url and token, "".join(seen)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture
def serve_cli() -> Callable[..., contextlib.AbstractContextManager[tuple[str, str]]]:
    """``with serve_cli(storage, *options) as (url, token)``: a real ``atomiton serve``."""
    return _serve_cli


# -- the page in a real browser (headless Chromium, driven by Playwright) ---------------------
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's package) for a module's page tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install playwright"
    )
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def expect() -> Any:
    """Playwright's waiting ``expect``, with 15 s to see each state."""
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=15_000)
    return sync_api.expect
