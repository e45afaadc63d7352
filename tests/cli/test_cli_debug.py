"""``atomiton run --break / --step / --inject / --slow-mo``, driven as a user would: a real
process on a pseudo-terminal, answered at its prompt."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

CHAIN = """
id: cli-debug
name: CLI debug
nodes:
  - {id: a, type: const, parameters: {value: [1, 2]}}
  - {id: b, type: transform, parameters: {operation: map, expression: "item * 10"}}
  - {id: c, type: transform, parameters: {operation: map, expression: "item + 1"}}
edges:
  - {source: a, target: b}
  - {source: b, target: c}
"""


class Terminal:
    """A child process whose standard input, output and error are one pseudo-terminal."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.leader, follower = pty.openpty()
        self.proc = subprocess.Popen(
            argv,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            cwd=cwd,
            env={**os.environ, "TERM": "dumb", "COLUMNS": "200", "NO_COLOR": "1"},
            close_fds=True,
        )
        os.close(follower)
        self.screen = ""

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Read until ``text`` has been shown; what was shown up to it."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never shown; the screen:\n{self.screen}"
            ready, _, _ = select.select([self.leader], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.leader, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the program ended before showing {text!r}:\n{self.screen}"
            self.screen += ANSI.sub("", chunk.decode("utf-8", "replace")).replace("\r", "")
        shown, _, self.screen = self.screen.partition(text)
        return shown + text

    def type(self, line: str) -> None:
        os.write(self.leader, line.encode() + b"\n")

    def close(self) -> int:
        code = self.proc.wait(timeout=60)
        os.close(self.leader)
        return code


def test_break_pauses_prompts_steps_and_continues(tmp_path: Path) -> None:
    (tmp_path / "chain.flow.yaml").write_text(CHAIN)
    term = Terminal(
        [*ATOMITON, "run", "chain.flow.yaml", "--break", "b", "--storage", "s"], tmp_path
    )
    try:
        shown = term.expect("debug (c continue, s step, i inputs in full, a abort)> ")
        assert 'paused before b [transform] (breakpoint); inputs: {"input": [1, 2]}' in shown
        assert "completed" in shown.split("paused before b")[0]  # a ran; b did not yet
        term.type("i")
        assert '{"input": [1, 2]}' in term.expect("> ")
        term.type("s")
        shown = term.expect("> ")
        assert "b [transform] completed" in shown
        assert 'paused before c [transform] (step); inputs: {"input": [10, 20]}' in shown
        term.type("bogus")
        assert "not a command: 'bogus'" in term.expect("> ")
        term.type("c")
        shown = term.expect("(execution ")
        assert "c [transform] completed" in shown and "completed in" in shown
        term.expect("21")  # the outputs, as JSON
    finally:
        code = term.close()
    assert code == 0


def test_abort_at_the_prompt_cancels_the_run(tmp_path: Path) -> None:
    (tmp_path / "chain.flow.yaml").write_text(CHAIN)
    term = Terminal([*ATOMITON, "run", "chain.flow.yaml", "--step", "--storage", "s"], tmp_path)
    try:
        assert "paused before a [const] (step)" in term.expect("> ")
        term.type("a")
        shown = term.expect("(execution ")
        assert "cancelled in" in shown
        assert "aborted in the debugger" in term.expect("debugger)")
    finally:
        code = term.close()
    assert code == 1


def test_inject_and_slow_mo_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "chain.flow.yaml").write_text(CHAIN)
    failed = subprocess.run(
        [*ATOMITON, "run", "chain.flow.yaml", "--inject", "b=error", "--json", "--storage", "s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1, failed.stderr
    result = json.loads(failed.stdout)
    b = result["nodes"]["b"]
    assert b["injected"] == "error" and b["error"]["code"] == "INJECTED_FAULT"
    slow = subprocess.run(
        [*ATOMITON, "run", "chain.flow.yaml", "--slow-mo", "150", "--json", "--storage", "s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert slow.returncode == 0, slow.stderr
    assert json.loads(slow.stdout)["durationMs"] >= 450  # three nodes, one after another
    bad = subprocess.run(
        [*ATOMITON, "run", "chain.flow.yaml", "--inject", "b=slow", "--storage", "s"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "cannot inject 'slow' into node 'b'" in bad.stderr
    assert "Traceback" not in bad.stderr
    piped = subprocess.run(
        [*ATOMITON, "run", "-", "--break", "b", "--storage", "s"],
        cwd=tmp_path,
        input=CHAIN,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 2 and "give the flow as a file, not -" in piped.stderr
