"""``atomiton flows save`` stores what the server's ``PUT /api/flows/{id}`` stores, and refuses
what it refuses: each file is saved through the command, and its text PUT to a real
``atomiton serve`` on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from atomiton_core import loads_flow

pytest.importorskip("uvicorn")

Cli = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).parents[2]
ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]

#: name -> text; with every example and original flow of the repository, below.
MADE = {
    "valid": "id: ok\nname: OK\nnodes:\n  - {id: a, type: edit-fields, parameters: {values: {x: 1}}}\n",
    "warning only": "id: empty-group\nname: Empty group\nnodes:\n  - {id: g, type: group}\n",
    "unknown type": "id: unknown\nname: U\nnodes:\n  - {id: a, type: no-such-type}\n",
    "unknown parameter": (
        "id: bad-param\nname: P\nnodes:\n  - {id: a, type: edit-fields, parameters: {nope: 1}}\n"
    ),
    "id storage cannot hold": "id: 'bad id!'\nname: B\nnodes: []\n",
    "not a flow": "- just\n- a list\n",
}


def flow_texts() -> dict[str, str]:
    found = dict(MADE)
    for folder in (ROOT / "examples", ROOT / "tests" / "fixtures" / "atomiton-flows"):
        for path in sorted(folder.glob("*.flow.yaml")):
            found[path.name] = path.read_text()
    return found


@contextlib.contextmanager
def atomiton_serve(storage: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A real ``atomiton serve`` on a free port: its URL and the token it printed."""
    proc = subprocess.Popen(
        [*ATOMITON, "serve", "--port", "0", "--storage", str(storage), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    url = token = None
    deadline = time.monotonic() + 60
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


def test_save_refuses_exactly_what_the_server_refuses(
    cli: Cli, home: Path, clean_env: dict[str, str]
) -> None:
    texts = flow_texts()
    outcomes: dict[str, tuple[int, int]] = {}
    with atomiton_serve(home / "served", clean_env) as (url, token), httpx.Client() as http:
        for name, text in texts.items():
            file = home / "flow.yaml"
            file.write_text(text)
            saved = cli("flows", "save", str(file), "--json", "--storage", "local")
            assert "Traceback" not in saved.stderr, saved.stderr
            body = json.loads(saved.stdout)
            flow_id = _id_in(text)
            answer = http.put(
                f"{url}/api/flows/{flow_id}",
                content=text.encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"},
            )
            outcomes[name] = (saved.returncode, answer.status_code)
            if saved.returncode == 0:
                assert body["report"]["valid"] is True
                stored = loads_flow(Path(body["location"]).read_text()).to_data()
                stamps = stored.get("metadata") or {}
                assert {"created", "updated"} <= stamps.keys(), name  # storage stamps a save
                for key in ("created", "updated"):
                    stamps.pop(key)
                if not stamps:
                    stored.pop("metadata")
                assert stored == loads_flow(text).to_data(), name
            else:
                assert saved.returncode == 3, (name, saved.stderr)
                assert body["error"]["code"] == answer.json()["error"]["code"], name
    accepted = {n for n, (rc, status) in outcomes.items() if rc == 0}
    served = {n for n, (rc, status) in outcomes.items() if status in (200, 201)}
    assert accepted == served, outcomes
    assert {"valid", "warning only", "order-report.flow.yaml"} <= accepted
    # (hello-world.flow.yaml is valid where atomiton-lang-js runs its transformFunction)
    assert {"unknown type", "unknown parameter", "data-transform.flow.yaml"} <= (
        set(texts) - accepted
    )


def _id_in(text: str) -> str:
    data = yaml.safe_load(text)
    return str(data["id"]) if isinstance(data, dict) and "id" in data else "no-id"


def test_save_shows_warnings_and_refuses_errors_without_storing(cli: Cli, home: Path) -> None:
    (home / "warn.flow.yaml").write_text(MADE["warning only"])
    warned = cli("flows", "save", "warn.flow.yaml", "--storage", "s")
    assert warned.returncode == 0
    assert "saved empty-group" in warned.stdout and "EMPTY_CONTAINER" in warned.stderr
    (home / "bad.flow.yaml").write_text(MADE["unknown parameter"])
    refused = cli("flows", "save", "bad.flow.yaml", "--storage", "s")
    assert refused.returncode == 3
    assert "bad.flow.yaml" in refused.stderr and "UNKNOWN_PARAMETER" in refused.stderr
    listed = json.loads(cli("flows", "list", "--json", "--storage", "s").stdout)
    assert [f["id"] for f in listed] == ["empty-group"]


def test_save_reads_standard_input(cli: Cli, home: Path) -> None:
    text = "# kept\n" + MADE["valid"]
    saved = cli("flows", "save", "-", "--storage", "s", input=text)
    assert saved.returncode == 0, saved.stderr
    stored = (home / "s" / "flows" / "ok.flow.yaml").read_text()
    assert stored.startswith(text)  # as given, with the stamps of its first save after it
    assert [line.split(":")[0] for line in stored[len(text) :].splitlines()] == [
        "metadata",
        "  created",
        "  updated",
    ]
    assert os.path.basename(saved.stdout.split(" -> ")[-1].strip()) == "ok.flow.yaml"
