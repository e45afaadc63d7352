"""A flow may be a URL: one whose protocol has no backend installed says what to install
(no traceback); an HTTP URL is read from a real server on 127.0.0.1 when the extra is in."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from atomiton_core import FlowLoadError, create_conductor

ROOT = Path(__file__).parents[2]


def test_a_url_whose_backend_is_missing_names_the_extra(tmp_path: Path) -> None:
    # aiohttp hidden, as on an install without the http extra
    script = textwrap.dedent(
        """
        import sys
        sys.modules["aiohttp"] = None
        from atomiton_core.cli import main
        sys.argv = ["atomiton", "run", "http://example.invalid/x.flow.yaml"]
        main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={"ATOMITON_STORAGE": str(tmp_path / "s"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "http://example.invalid/x.flow.yaml: cannot read" in done.stderr
    assert "pip install 'atomiton-core[http]'" in done.stderr  # markup did not eat [http]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A folder served over HTTP on 127.0.0.1 (a real server, in a thread of the test)."""
    (tmp_path / "web").mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "web"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_flow_is_read_from_an_http_url(served: str, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="the http extra (installed by the dev extra)")
    (tmp_path / "web" / "hello.flow.yaml").write_text(
        "id: hello\nname: Hello\nvariables: {who: {defaultValue: world}}\nnodes:\n"
        "  - {id: hi, type: edit-fields, parameters: {values: {m: 'hi {{ who }}'}, "
        "keepOnlySet: true}}\n"
    )
    with create_conductor(tmp_path / "store") as conductor:
        result = conductor.run(f"{served}/hello.flow.yaml", {"who": "Ada"})
        assert result.ok and result.outputs["hi"]["output"] == {"m": "hi Ada"}
        with pytest.raises(FlowLoadError, match="no such flow file"):
            conductor.run(f"{served}/missing.flow.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "atomiton_core", "run", f"{served}/hello.flow.yaml", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ATOMITON_STORAGE": str(tmp_path / "cli-store")},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["hi"]["output"] == {"m": "hi world"}
