"""The atomiton command, run as a user would: real subprocesses, real files, exit codes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
ORIGINALS = ROOT / "tests" / "fixtures" / "atomiton-flows"

GOOD = """
id: cli-demo
name: CLI demo
variables: {who: {type: string, defaultValue: world}}
nodes:
  - id: greet
    type: edit-fields
    parameters: {values: {message: "Hello {{ who }}"}, keepOnlySet: true}
  - id: shout
    type: transform
    parameters: {operation: map, expression: "item.message | upper"}
edges:
  - {source: greet, target: shout}
"""

FAILING = """
id: cli-fail
name: CLI fail
nodes:
  - id: boom
    type: transform
    parameters: {operation: map, expression: "item.missing.deeper"}
    # the input is required and wired from a literal node
  - id: lit
    type: edit-fields
    parameters: {values: {a: 1}}
edges:
  - {source: lit, target: boom}
"""


def atomiton(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ATOMITON, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "good.flow.yaml").write_text(GOOD)
    (tmp_path / "fail.flow.yaml").write_text(FAILING)
    return tmp_path


def test_run_prints_result_and_exits_zero(files: Path) -> None:
    done = atomiton(
        "run", str(files / "good.flow.yaml"), "--input", "who=Ada", "--storage", str(files / "s")
    )
    assert done.returncode == 0, done.stderr
    assert "HELLO ADA" in done.stdout and "completed" in done.stdout
    assert "greet [edit-fields] completed" in done.stderr  # per-node progress when not a terminal


def test_run_json(files: Path) -> None:
    done = atomiton("run", str(files / "good.flow.yaml"), "--json", "--storage", str(files / "s"))
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert data["status"] == "completed"
    assert data["outputs"] == {"shout": {"output": ["HELLO WORLD"]}}
    assert set(data["nodes"]["greet"]) >= {
        "status",
        "outputs",
        "error",
        "attempts",
        "startedAt",
        "durationMs",
    }
    runs = list((files / "s" / "runs").glob("*/run.json"))
    assert [r.parent.name for r in runs] == [data["executionId"]]  # the run record was stored
    assert (runs[0].parent / "events.jsonl").exists()  # and its log


def test_failed_run_exits_one(files: Path) -> None:
    done = atomiton("run", str(files / "fail.flow.yaml"), "--json", "--storage", str(files / "s"))
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["status"] == "failed"
    assert data["nodes"]["boom"]["error"]["code"] == "EXPRESSION_ERROR"


def test_invalid_flow_exits_three_with_every_problem(files: Path) -> None:
    done = atomiton(
        "run", str(ORIGINALS / "data-transform.flow.yaml"), "--storage", str(files / "s")
    )
    assert done.returncode == 3
    assert "VALIDATION_FAILED" not in done.stdout
    assert "nodes[2].parameters.code" in done.stderr
    # the original's transform never read `code`: the report says so, and what to do instead
    assert "INVALID_PARAMETER" in done.stderr and "never read 'code'" in done.stderr
    missing = atomiton("run", str(files / "nope.flow.yaml"), "--storage", str(files / "s"))
    assert missing.returncode == 3 and "no such flow file" in missing.stderr


def test_validate(files: Path) -> None:
    ok = atomiton("validate", str(files / "good.flow.yaml"))
    assert ok.returncode == 0 and "is valid" in ok.stdout
    hello = atomiton("validate", str(ORIGINALS / "hello-world.flow.yaml"), "--json")
    report = json.loads(hello.stdout)
    assert hello.returncode == (0 if report["valid"] else 3)
    javascript = [p for p in report["problems"] if p["nodeId"] == "format-content"]
    if importlib.util.find_spec("atomiton_lang_js") is None:  # its transformFunction
        assert report["valid"] is False and javascript
    else:
        assert not javascript


def test_nodes_lists_types_with_distribution() -> None:
    done = atomiton("nodes", "--json")
    assert done.returncode == 0
    types = {t["id"]: t for t in json.loads(done.stdout)["nodeTypes"]}
    assert types["transform"]["distribution"] == "atomiton-core"
    assert "properties" in types["transform"]["parameters"]
    table = atomiton("nodes")
    assert "edit-fields" in table.stdout and "atomiton-core" in table.stdout


def test_flows_commands(files: Path) -> None:
    store = str(files / "store")
    saved = atomiton("flows", "save", str(files / "good.flow.yaml"), "--storage", store)
    assert saved.returncode == 0 and "cli-demo" in saved.stdout
    listed = atomiton("flows", "list", "--json", "--storage", store)
    assert [f["id"] for f in json.loads(listed.stdout)] == ["cli-demo"]
    shown = atomiton("flows", "show", "cli-demo", "--storage", store)
    assert "Hello {{ who }}" in shown.stdout
    ran = atomiton("run", "cli-demo", "--json", "--storage", store)
    assert json.loads(ran.stdout)["outputs"] == {"shout": {"output": ["HELLO WORLD"]}}
    deleted = atomiton("flows", "delete", "cli-demo", "--storage", store)
    assert deleted.returncode == 0
    again = atomiton("flows", "delete", "cli-demo", "--storage", store)
    assert again.returncode == 1 and "no flow 'cli-demo'" in again.stderr


def test_bad_input_syntax_is_a_usage_error(files: Path) -> None:
    done = atomiton("run", str(files / "good.flow.yaml"), "--input", "novalue")
    assert done.returncode == 2 and "KEY=VALUE" in done.stderr


def group_alive(pgid: int) -> bool:
    """True while a process of the group is alive; zombies do not count (PID 1 may not reap)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_cancels_the_run_and_kills_its_programs(tmp_path: Path, how: str) -> None:
    pytest.importorskip("atomiton_nodes_shell")
    # the program writes to the CLI's own stderr (captureOutput: false): it says when it runs
    script = "echo nap running $$ >&2; sleep 60"
    nap = {"program": "sh", "args": ["-c", script], "captureOutput": False}
    flow = tmp_path / "sleepy.flow.yaml"
    flow.write_text(
        f"id: sleepy\nname: Sleepy\nnodes:\n  - {{id: nap, type: shell-command, parameters: {json.dumps(nap)}}}\n"
    )
    with subprocess.Popen(
        [*ATOMITON, "run", str(flow), "--json", "--storage", str(tmp_path / "s")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        seen: list[str] = []
        for line in proc.stderr:  # until the program runs, or the CLI ends without it
            seen.append(line)
            if line.startswith("nap running "):
                break
        assert seen and seen[-1].startswith("nap running "), "".join(seen)
        program = int(seen[-1].split()[2])
        os.kill(proc.pid, getattr(signal, how))
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    data = json.loads(out)
    assert data["status"] == "cancelled" and data["nodes"]["nap"]["status"] == "cancelled"
    # the program leads its own process group; the node killed the group before the CLI exited
    deadline = time.monotonic() + 30
    while group_alive(program) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(program), "the program was left running"


CODE_FLOW = """
id: code-cli
name: Code from the CLI
nodes:
  - id: c
    type: code
    parameters:
      code: |
        import os
        return {"pid": os.getpid()}
"""


def test_run_with_isolated_nodes_and_a_memory_ceiling(tmp_path: Path) -> None:
    (tmp_path / "code.flow.yaml").write_text(CODE_FLOW)
    args = ("run", str(tmp_path / "code.flow.yaml"), "--json", "--storage", str(tmp_path / "s"))
    done = atomiton(*args, "--process-workers", "1")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["nodes"]["c"]["peakMemory"] > 0
    assert data["nodes"]["c"]["cpuMs"] >= 0
    refused = atomiton(*args, "--memory-ceiling", "1")
    assert refused.returncode == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "RESOURCE_LIMIT"
    assert "memory ceiling of 1 MB" in error["message"]
    assert "Traceback" not in refused.stderr
