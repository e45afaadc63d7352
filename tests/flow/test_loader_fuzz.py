"""The loaders under fuzz: whatever the text, loading, validating and saving a flow end in a
flow or an ``AtomitonError`` (never another exception), within a time budget; documents
built to explode (alias bombs, deep nesting, huge numbers) are refused cheaply.

Each campaign has a fixed budget here and a longer ``slow`` variant; the figures are in
tests/README.md.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atomiton_core import create_conductor, dumps_flow, loads_flow
from atomiton_core.errors import AtomitonError
from atomiton_core.flow import budget

ROOT = Path(__file__).parents[2]
ORIGINALS = sorted((ROOT / "tests" / "fixtures" / "atomiton-flows").glob("*.flow.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.flow.yaml"))
SEEDS = [p.read_text() for p in [*ORIGINALS, *EXAMPLES]]
#: Seconds one input may take through load, validate, save and load again.
TIME_BUDGET_S = 2.0

CONDUCTOR = create_conductor("memory://loader-fuzz", record_runs=False)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))

TOKENS = [
    "id: f\n",
    "name: n\n",
    "nodes:\n",
    "edges:\n",
    "- ",
    "  ",
    "    ",
    "\t",
    ":",
    ": ",
    "\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!!str ",
    "!!int ",
    "!!python/object ",
    "? ",
    "<<: ",
    "'",
    '"',
    "#",
    "---\n",
    "...\n",
    "|\n",
    ">\n",
    "- {id: x, type: if}\n",
    "type: loop\n",
    "parameters: ",
    "0x1F",
    "1e400",
    "-.inf",
    ".nan",
    "9" * 50,
    "null",
    "~",
    "true",
    "yes",
    "2026-12-02",
    "\u0000",
    "\ufeff",
    "\x85",
    "é",
    "%YAML 1.1\n",
    "!<tag:x> ",
]
yamlish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=60).map("".join)


def mutated(seed: str, draws: list[tuple[int, int, str]]) -> str:
    text = seed
    for pos, length, insert in draws:
        at = pos % (len(text) + 1)
        text = text[:at] + insert + text[at + length % 8 :]
    return text


mutations = st.builds(
    mutated,
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(
            st.integers(0, 10**6), st.integers(0, 7), st.sampled_from(TOKENS) | st.text(max_size=4)
        ),
        min_size=1,
        max_size=8,
    ),
)


def bomb(fanout: int, levels: int) -> str:
    lines = ["id: bomb", "name: bomb", "metadata:", "  l0: &l0 [" + ", ".join(["x"] * fanout) + "]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * fanout)
        lines.append(f"  l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def deep(depth: int, block: bool) -> str:
    if block:
        body = "".join("  " * (i + 1) + "- \n" for i in range(depth))
        return "id: deep\nname: deep\nmetadata:\n  x:\n" + body
    return "id: deep\nname: deep\nmetadata: {x: " + "[" * depth + "]" * depth + "}\n"


def huge_number(digits: int) -> str:
    return f"id: big\nname: big\nmetadata: {{n: {'7' * digits}, f: {'8' * digits}.5e9}}\n"


def through_everything(text: str) -> None:
    """Load, validate, save and load again; only AtomitonErrors, within the time budget."""
    t0 = time.perf_counter()
    try:
        flow = loads_flow(text, source="fuzz.flow.yaml")
    except AtomitonError:
        pass
    else:
        CONDUCTOR.validate(flow)
        saved = dumps_flow(flow)
        again = loads_flow(saved, source="saved.flow.yaml")
        assert again.to_data() == flow.to_data()
    took = time.perf_counter() - t0
    assert took < TIME_BUDGET_S, f"{took:.1f} s for {text[:200]!r}"


@FAST
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    through_everything(text)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_decoded(raw: bytes) -> None:
    through_everything(raw.decode("utf-8", errors="replace"))


@FAST
@given(yamlish)
def test_yaml_fragments(text: str) -> None:
    through_everything(text)


@FAST
@given(mutations)
def test_mutated_flows(text: str) -> None:
    through_everything(text)


@FAST
@given(st.integers(2, 12), st.integers(1, 12))
def test_alias_bombs_are_refused_cheaply(fanout: int, levels: int) -> None:
    text = bomb(fanout, levels)
    through_everything(text)  # timed
    tracemalloc.start()  # then traced, which is slower
    try:
        with contextlib.suppress(AtomitonError):
            dumps_flow(loads_flow(text))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 64 * 2**20
    if fanout**levels > budget.MAX_ALIAS_VALUES * 2:
        with pytest.raises(AtomitonError, match="aliases expand"):
            loads_flow(text)


@FAST
@given(st.integers(1, 5000), st.booleans())
def test_deep_nesting(depth: int, block: bool) -> None:
    text = deep(depth, block)
    through_everything(text)
    if depth > budget.MAX_DEPTH + 5:
        with pytest.raises(AtomitonError, match="nested"):
            loads_flow(text)


@FAST
@given(st.integers(1, 20_000))
def test_huge_numbers(digits: int) -> None:
    through_everything(huge_number(digits))


@pytest.mark.slow
@LONG
@given(st.one_of(st.text(max_size=2000), yamlish, mutations))
def test_long_campaign(text: str) -> None:
    through_everything(text)


@pytest.mark.parametrize(
    "text",
    [
        bomb(9, 9),
        "id: f\nname: f\nmetadata: &a [*a]\n",
        "id: f\nname: f\nmetadata: &a {x: *a}\n",
        deep(5000, False),
        deep(1200, True),
        huge_number(5000),
        "id: f\nname: f\nmetadata: {? [a, b] : c}\n",
        "id:\t x\nname: f\n",
        "id: f\nname: f\nmetadata: {x: !!python/object:os.system echo}\n",
        "\ufeffid: f\nname: f\n",
    ],
    ids=[
        "bomb",
        "self-list",
        "self-map",
        "deep-flow",
        "deep-block",
        "huge-int",
        "complex-key",
        "tab",
        "python-tag",
        "bom",
    ],
)
def test_the_reported_crashes(text: str) -> None:
    through_everything(text)


def test_a_loaded_tab_flow_saves(tmp_path: Path) -> None:
    """`id:\\t x` loads through libyaml; ruamel cannot re-read it, so the save is plain."""
    flow = loads_flow("id:\t x\nname: f\n")
    assert flow.id == "x"
    assert loads_flow(dumps_flow(flow)).id == "x"


def test_atomiton_validate_prints_no_traceback(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "atomiton_core.cli"]
    for i, text in enumerate([bomb(9, 9), deep(5000, False), huge_number(5000), "\x00\x01"]):
        path = tmp_path / f"nasty-{i}.flow.yaml"
        path.write_text(text)
        done = subprocess.run(
            [*exe, "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ATOMITON_STORAGE": str(tmp_path / "s")},
        )
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == 3, (text[:40], done.returncode, done.stderr)
        assert str(path) in done.stderr
