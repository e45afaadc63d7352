"""The shell-command node against the core's property-based node contract (safe programs only)."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

# the testing kit is new: prefer its public name, fall back to the module defining it
testing = pytest.importorskip("atomiton_core.testing")
check_node = getattr(testing, "check_node", None) or (
    pytest.importorskip("atomiton_core.testing.contract").check_node
)

#: Only harmless programs may run, whatever hypothesis draws; others are refused by the node.
SAFE = ["echo", "true", "false", "sleep", "cat", "printf"]

params = st.fixed_dictionaries(
    {"program": st.sampled_from([*SAFE, "rm", "no-such-program"])},
    optional={
        "args": st.lists(
            st.sampled_from(["0", "1", "5", "-n", "%s", "{{ input }}", "a;b"]), max_size=3
        ),
        "stdin": st.text(max_size=20),
        "environment": st.dictionaries(
            st.sampled_from(["A", "B"]), st.text(max_size=5), max_size=2
        ),
        "inheritEnvironment": st.booleans(),
        "encoding": st.sampled_from(["utf-8", "latin-1", None]),
        "maxOutputBytes": st.integers(0, 64),
        "killGracePeriod": st.integers(0, 200),
        "failOnNonZeroExit": st.booleans(),
        "captureOutput": st.just(True),
    },
)


@pytest.mark.slow
def test_shell_command_keeps_the_node_contract() -> None:
    check_node(
        "shell-command",
        params=params,
        config={"allowedPrograms": SAFE},
        max_examples=30,
        timeout=0.5,
    )
