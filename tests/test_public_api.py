"""The public names are exactly __all__, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import atomiton_core


def test_all_is_exactly_the_public_names() -> None:
    # "annotations" comes from `from __future__`; "@py_*" from pytest's assertion rewriting
    public = {
        name
        for name in dir(atomiton_core)
        if not name.startswith(("_", "@")) and name != "annotations"
    }
    submodules = {
        "catalogue",
        "cli",
        "conductor",
        "errors",
        "flow",
        "hookspecs",
        "nodes",
        "storage",
        "testing",
        "server",
        "files",
        "results",
        "security",
        "secrets",
        "version",
    }
    assert public - submodules == set(atomiton_core.__all__) - {"__version__"}
    assert sorted(atomiton_core.__all__) == list(atomiton_core.__all__)


def test_every_error_has_a_stable_code() -> None:
    codes = {
        name: getattr(atomiton_core, name).code
        for name in atomiton_core.__all__
        if isinstance(getattr(atomiton_core, name), type)
        and issubclass(getattr(atomiton_core, name), atomiton_core.AtomitonError)
    }
    assert codes["FlowValidationError"] == "VALIDATION_FAILED"
    assert codes["NodeTypeNotFound"] == "NODE_TYPE_NOT_FOUND"
    assert codes["NodeTimeout"] == "TIMEOUT"
    assert codes["ExecutionCancelled"] == "CANCELLED"
    assert codes["ExecutionError"] == "EXECUTION_FAILED"
    assert len(set(codes.values())) == len(codes)


def test_import_does_not_pull_heavy_optional_dependencies() -> None:
    code = (
        "import sys, atomiton_core; "
        "heavy = [m for m in ('dask', 'distributed', 'PIL', 'uvicorn', 'starlette', 'python_calamine', 'hypothesis') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
