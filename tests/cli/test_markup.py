"""Square brackets in what the user or the engine wrote reach the terminal as they are: rich
reads ``[test]`` or ``[dask]`` as markup unless the command escapes it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., subprocess.CompletedProcess[str]]

BRACKETS = """
id: brackets
name: Data [test] flow
nodes:
  - id: lit
    type: edit-fields
    parameters: {values: {a: 1}}
  - id: pick
    type: transform
    parameters: {operation: map, expression: "item[key]"}
edges:
  - {source: lit, target: pick}
"""

INVALID = """
id: brackets-invalid
name: Invalid
nodes:
  - {id: lit, type: edit-fields, parameters: {values: {a: 1}, nope: 1}}
"""

ATOMITON = [sys.executable, "-m", "atomiton_core.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_a_failed_run_shows_the_file_and_the_expression_as_written(cli: Cli, home: Path) -> None:
    (home / "data[test].flow.yaml").write_text(BRACKETS)
    done = cli("run", "data[test].flow.yaml", "--storage", "s")
    assert done.returncode == 1
    assert "expression 'item[key]' failed" in done.stdout  # the summary's error
    assert "expression 'item[key]' failed" in done.stderr  # the node's progress line
    run_id = re.search(r"execution ([0-9a-f]+)", done.stdout)
    assert run_id is not None, done.stdout
    shown = cli("runs", "show", run_id.group(1), "--storage", "s")
    assert "item[key]" in shown.stdout


def test_errors_name_a_file_with_brackets_as_it_is(cli: Cli, home: Path) -> None:
    missing = cli("run", "nope[test].flow.yaml", "--storage", "s")
    assert missing.returncode == 3
    assert "nope[test].flow.yaml: no such flow file" in missing.stderr
    (home / "data[test].flow.yaml").write_text(INVALID)
    invalid = cli("run", "data[test].flow.yaml", "--storage", "s")
    assert invalid.returncode == 3
    assert "data[test].flow.yaml" in invalid.stderr and "nope" in invalid.stderr


def test_stored_flow_names_keep_their_brackets(cli: Cli, home: Path) -> None:
    (home / "data[test].flow.yaml").write_text(BRACKETS)
    assert cli("flows", "save", "data[test].flow.yaml", "--storage", "s").returncode == 0
    listed = cli("flows", "list", "--storage", "s")
    assert "Data [test] flow" in listed.stdout


def test_the_dask_install_hint_keeps_its_extra(home: Path, clean_env: dict[str, str]) -> None:
    """Without dask.distributed (made unimportable in the child), the hint names the extra."""
    (home / "f.flow.yaml").write_text(BRACKETS)
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "sys.argv = ['atomiton', 'run', 'f.flow.yaml', '--executor', 'dask', '--storage', 's']\n"
        "from atomiton_core.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=home,
        env=clean_env,
        timeout=60,
    )
    assert done.returncode == 1
    assert 'pip install "atomiton-core[dask]"' in done.stderr, done.stderr


def test_the_live_table_on_a_terminal_shows_brackets(home: Path, clean_env: dict[str, str]) -> None:
    """stderr a real terminal (a pty, 200 columns): the live table, not lines."""
    (home / "data[test].flow.yaml").write_text(BRACKETS)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    try:
        proc = subprocess.Popen(
            [*ATOMITON, "run", "data[test].flow.yaml", "--storage", "s"],
            stdout=subprocess.PIPE,
            stderr=follower,
            cwd=home,
            env={**clean_env, "TERM": "xterm", "COLUMNS": "200"},
            text=True,
        )
        os.close(follower)
        out, _ = proc.communicate(timeout=60)
        chunks: list[bytes] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal: all is read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    screen = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    assert proc.returncode == 1, (out, screen)
    assert "item[key]" in screen, screen
    assert "│ pick" in screen  # a table's row, so the live view drew it
    assert json.dumps("item[key]")[1:-1] in out  # the summary too
