"""``atomiton migrate``, run as a user would: a real subprocess on real files (the original's
example flows, ``tests/fixtures/atomiton-flows/``, commit 723faa4b), exit codes, output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from atomiton_core.flow.yaml_io import loads_flow

Cli = Callable[..., subprocess.CompletedProcess[str]]

ORIGINALS = Path(__file__).parents[1] / "fixtures" / "atomiton-flows"


@pytest.fixture
def originals(home: Path) -> Path:
    """Copies of the original's flows in the command's working directory."""
    for path in ORIGINALS.glob("*.flow.yaml"):
        shutil.copy(path, home / path.name)
    return home


@pytest.fixture
def flagged_flow(originals: Path) -> str:
    """data-transform with ``operation: sort`` on both transforms: its JavaScript then
    contradicts what they do (a filter, a code node's code), so migrate keeps and flags it."""
    text = (originals / "data-transform.flow.yaml").read_text()
    for key in ("expression:", "code: |"):
        text = text.replace(
            f"    parameters:\n      {key}",
            f'    parameters:\n      operation: "sort"\n      {key}',
        )
    (originals / "flagged.flow.yaml").write_text(text)
    return "flagged.flow.yaml"


def test_it_writes_out_and_reports_each_change(cli: Cli, originals: Path) -> None:
    flow = originals / "image-processor.flow.yaml"
    before = flow.read_bytes()
    done = cli("migrate", flow.name, "-o", "out.flow.yaml")
    assert done.returncode == 0, done.stderr
    assert flow.read_bytes() == before  # FLOW is never touched without --in-place
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("translated node 'image-loop' (line 82): moved 4 node(s)") for line in lines
    )
    assert lines[-1].endswith("0 kept and flagged; wrote out.flow.yaml")
    migrated = loads_flow((originals / "out.flow.yaml").read_text())
    assert [n.id for n in migrated.nodes] == ["image-source", "image-loop"]


def test_without_out_the_flow_goes_to_stdout_and_the_report_to_stderr(
    cli: Cli, originals: Path
) -> None:
    done = cli("migrate", "hello-world.flow.yaml")
    assert done.returncode == 0, done.stderr
    flow = loads_flow(done.stdout)
    params = flow.nodes[1].parameters
    assert "transformFunction" not in params and params["expression"].startswith("item.message")
    assert done.stderr.splitlines()[0].startswith(
        "translated node 'format-content', parameter 'transformFunction' (line 72): JavaScript"
    )


def test_what_is_kept_and_flagged_exits_1_and_the_flow_is_written(
    cli: Cli, originals: Path, flagged_flow: str
) -> None:
    done = cli("migrate", flagged_flow, "-o", "out.yaml")
    assert done.returncode == 1
    flagged = [line for line in done.stdout.splitlines() if line.startswith("flagged")]
    assert [line.split(" (line")[0] for line in flagged] == [
        "flagged    node 'filter-transform', parameter 'expression'",
        "flagged    node 'aggregate-code', parameter 'code'",
    ]
    assert "2 kept and flagged" in done.stdout
    assert "atomiton validate out.yaml lists them" in done.stdout
    assert (originals / "out.yaml").exists()


def test_json_report(cli: Cli, originals: Path, flagged_flow: str) -> None:
    clean = cli("migrate", "data-transform.flow.yaml", "--json")
    assert clean.returncode == 0, clean.stdout
    assert json.loads(clean.stdout)["ok"] is True
    done = cli("migrate", flagged_flow, "--json")
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["ok"] is False and body["changed"] is True and body["output"] is None
    assert loads_flow(body["flow"]).id == "550e8400-e29b-41d4-a716-446655440002"
    kept = [c for c in body["changes"] if not c["translated"]]
    assert {(c["nodeId"], c["parameter"]) for c in kept} == {
        ("filter-transform", "expression"),
        ("aggregate-code", "code"),
    }
    assert body["validation"]["flowId"] == "550e8400-e29b-41d4-a716-446655440002"


def test_in_place_rewrites_flow_and_only_when_asked(cli: Cli, originals: Path) -> None:
    refused = cli("migrate", "hello-world.flow.yaml", "-o", "./hello-world.flow.yaml")
    assert refused.returncode == 2 and "--in-place" in refused.stderr
    assert cli("migrate", "-", "--in-place", input="").returncode == 2
    assert cli("migrate", "x.yaml", "--in-place", "-o", "y.yaml").returncode == 2
    done = cli("migrate", "hello-world.flow.yaml", "--in-place")
    assert done.returncode == 0, done.stderr
    text = (originals / "hello-world.flow.yaml").read_text()
    assert "transformFunction" not in text and "expression:" in text
    again = cli("migrate", "hello-world.flow.yaml", "--in-place")
    assert again.returncode == 0
    assert again.stdout.splitlines() == ["nothing to change; left hello-world.flow.yaml"]
    assert (originals / "hello-world.flow.yaml").read_text() == text


def test_a_flow_that_needs_nothing_comes_back_as_it_was(cli: Cli, home: Path) -> None:
    text = "# ours already\nid: ok\nname: OK\nnodes:\n  - {id: a, type: const, parameters: {value: 1}}\n"
    done = cli("migrate", "-", input=text)
    assert done.returncode == 0
    assert done.stdout == text
    assert done.stderr == "nothing to change\n"


def test_a_file_that_cannot_be_read_exits_3(cli: Cli, home: Path) -> None:
    missing = cli("migrate", "missing.yaml")
    assert missing.returncode == 3 and "no such flow file" in missing.stderr
    (home / "bad.yaml").write_text("id: [\n")
    bad = cli("migrate", "bad.yaml", "--json")
    assert bad.returncode == 3
    assert json.loads(bad.stdout)["error"]["code"] == "FLOW_LOAD_FAILED"


def test_migrate_help_loads_no_engine(cli: Cli) -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['atomiton', 'migrate', '--help']\n"
        "from atomiton_core.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('atomiton_core.flow', "
        "'atomiton_core.conductor', 'atomiton_core.nodes', 'ruamel', 'jinja2', 'pydantic'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "Rewrite FLOW" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
