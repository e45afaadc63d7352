"""A flow may be a URL: one whose protocol has no backend installed says what to install
(no traceback); an HTTP URL is read from a real server on 127.0.0.1 when the extra is in."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

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
