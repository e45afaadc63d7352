"""Every test leaves no sandbox process behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ours(pid: str) -> bool:
    """True if this test process is an ancestor (directly, or through a pool worker)."""
    me = str(os.getpid())
    for _ in range(8):
        fields = _stat(pid)
        if fields is None:
            return False
        pid = fields[1]
        if pid == me:
            return True
    return False


def hosts() -> list[int]:
    """This process's sandbox processes alive now (their command line names the host)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = _stat(entry)
        alive = fields is not None and fields[0] not in ("Z", "X")
        if b"atomiton_lang_js/_host.py" in cmdline and alive and _ours(entry):
            found.append(int(entry))
    return found


@pytest.fixture
def sandbox_processes() -> Callable[[], list[int]]:
    return hosts


@pytest.fixture(autouse=True)
def no_sandbox_left_behind() -> Iterator[None]:
    before = set(hosts())
    yield
    deadline = time.monotonic() + 10
    while (left := set(hosts()) - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"sandbox processes left running: {left}"
