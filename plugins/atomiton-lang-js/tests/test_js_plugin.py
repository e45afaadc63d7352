"""The package as installed: its entry point contributes the node, and neither importing it
nor listing its node loads mini-racer (V8 starts in the sandbox's process, when a node runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from types import ModuleType

from atomiton_core import create_conductor

import atomiton_lang_js


def loaded_after(code: str) -> list[str]:
    probe = (
        f"import json, sys\n{code}\n"
        "print(json.dumps(sorted(m for m in sys.modules if 'mini_racer' in m)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_entry_point_or_the_package_loads_no_v8() -> None:
    assert loaded_after("import atomiton_lang_js.plugin") == []
    assert loaded_after("import atomiton_lang_js") == []


def test_the_entry_point_contributes_the_node_to_every_conductor() -> None:
    conductor = create_conductor(f"memory://js-{uuid.uuid4().hex}", record_runs=False)
    entry = conductor.catalogue["javascript"]
    assert entry is atomiton_lang_js.javascript
    assert (
        loaded_after(
            "from atomiton_core import create_conductor\n"
            "create_conductor('memory://x', record_runs=False).catalogue['javascript']"
        )
        == []
    )


def test_the_public_names_are_exactly_all() -> None:
    public = {
        name
        for name, value in vars(atomiton_lang_js).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)  # submodules
    } - {"annotations"}
    assert public == set(atomiton_lang_js.__all__) - {"__version__"}
