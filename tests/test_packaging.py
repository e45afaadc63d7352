"""The distributions as a user gets them: atomiton-core and each plugin built with the backend in
this virtualenv and no network (the sdist first, then the wheel from that sdist, as
``pip install <sdist>`` does), their files and metadata read back.

Also here: what the extras promise (``[all]`` installs every extra; every
``pip install "atomiton-core[...]"`` hint names an extra that exists; the client's ``events()``
names its extra when websockets is missing) and ``python -m atomiton_core``.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import trove_classifiers
from packaging.requirements import Requirement

from atomiton_core.version import __version__

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = {
    "atomiton-core": ROOT,
    "atomiton-nodes-io": ROOT / "plugins" / "atomiton-nodes-io",
    "atomiton-nodes-image": ROOT / "plugins" / "atomiton-nodes-image",
    "atomiton-nodes-shell": ROOT / "plugins" / "atomiton-nodes-shell",
    "atomiton-nodes-sql": ROOT / "plugins" / "atomiton-nodes-sql",
}
PLUGINS = [name for name in PROJECTS if name != "atomiton-core"]
COPYRIGHT = "Copyright (c) 2026 The Atomiton authors"

#: What the core's sdist may hold at its top level: the package and what its README points to.
CORE_SDIST_TOP = {
    "atomiton_core",
    "docs",
    "examples",
    "README.md",
    "LICENSE",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",
}
#: A markdown link whose target is not a URL (``scheme:``) or an anchor: broken on PyPI.
RELATIVE_LINK = re.compile(r"\[[^\]\n]+\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|#)[^)\s]+\)")
FENCED_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INSTALL_HINT = re.compile(r"atomiton-core\[([a-z0-9,-]+)\]")


@dataclass(frozen=True)
class Built:
    """One project's sdist and the wheel built from it."""

    name: str
    source: Path
    sdist: Path
    wheel: Path

    def sdist_names(self) -> list[str]:
        """The sdist's paths below its ``<name>-<version>/`` folder."""
        with tarfile.open(self.sdist) as archive:
            names = [m.name for m in archive.getmembers() if not m.isdir()]
        prefix = names[0].split("/", 1)[0] + "/"
        assert all(n.startswith(prefix) for n in names), names
        return [n[len(prefix) :] for n in names]

    def sdist_text(self, member: str) -> str:
        with tarfile.open(self.sdist) as archive:
            prefix = archive.getnames()[0].split("/", 1)[0]
            extracted = archive.extractfile(f"{prefix}/{member}")
            assert extracted is not None, member
            return extracted.read().decode()

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.namelist()

    def dist_info(self, member: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            (path,) = [n for n in archive.namelist() if n.endswith(f".dist-info/{member}")]
            return archive.read(path).decode()

    def metadata(self) -> email.message.Message:
        return email.parser.Parser().parsestr(self.dist_info("METADATA"))

    def pyproject(self) -> dict[str, object]:
        return tomllib.loads((self.source / "pyproject.toml").read_text())


def run(*argv: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{argv} in {cwd} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    out = tmp_path_factory.mktemp("dist")
    result: dict[str, Built] = {}
    for name, source in PROJECTS.items():
        target = out / name
        run(sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", target, cwd=source)
        (sdist,) = target.glob("*.tar.gz")
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            target,
            sdist,
            cwd=target,
        )
        (wheel,) = target.glob("*.whl")
        result[name] = Built(name, source, sdist, wheel)
    return result


def package_files() -> list[str]:
    """The files of ``atomiton_core`` that git tracks (and that are on disk)."""
    tracked = subprocess.run(
        ["git", "ls-files", "atomiton_core"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [f for f in tracked if (ROOT / f).is_file()]


def test_every_distribution_carries_the_mit_license(built: dict[str, Built]) -> None:
    for dist in built.values():
        assert "LICENSE" in dist.sdist_names(), dist.name
        assert COPYRIGHT in dist.sdist_text("LICENSE"), dist.name
        assert dist.dist_info("licenses/LICENSE").startswith("MIT License\n"), dist.name
        assert COPYRIGHT in dist.dist_info("licenses/LICENSE"), dist.name
        meta = dist.metadata()
        assert meta["License-Expression"] == "MIT", dist.name
        assert meta.get_all("License-File") == ["LICENSE"], dist.name


def test_metadata_names_authors_keywords_and_known_classifiers(built: dict[str, Built]) -> None:
    for dist in built.values():
        meta = dist.metadata()
        assert meta["Author"] == "The Atomiton authors", dist.name
        assert meta["Keywords"], dist.name
        assert meta["Requires-Python"] == ">=3.11", dist.name
        classifiers = meta.get_all("Classifier") or []
        unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
        assert classifiers and not unknown, f"{dist.name}: {unknown=}"
        # the license is the License-Expression; PEP 639 retires the License :: classifiers
        assert not [c for c in classifiers if c.startswith("License ::")], dist.name
        assert "Typing :: Typed" in classifiers, dist.name
        assert any(n.endswith("/py.typed") for n in dist.wheel_names()), dist.name


def test_the_version_is_written_once(built: dict[str, Built]) -> None:
    core = built["atomiton-core"]
    assert core.metadata()["Version"] == __version__
    assert f"Version: {__version__}\n" in core.sdist_text("PKG-INFO")
    project = core.pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project and "version" in project["dynamic"]

    from atomiton_nodes_io import __version__ as io_version

    assert built["atomiton-nodes-io"].metadata()["Version"] == io_version


def test_every_dependency_has_a_floor_and_the_plugins_need_this_core(
    built: dict[str, Built],
) -> None:
    for dist in built.values():
        for line in dist.metadata().get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.name == "atomiton-core" and req.marker is not None:
                continue  # the core's extras naming each other
            floors = [s for s in req.specifier if s.operator in (">=", "==", "~=")]
            assert floors, f"{dist.name}: {line!r} has no version floor"
    for name in PLUGINS:
        (core,) = [
            Requirement(line)
            for line in built[name].metadata().get_all("Requires-Dist") or []
            if Requirement(line).name == "atomiton-core"
        ]
        assert [s for s in core.specifier if s.operator == ">="], f"{name}: {core}"
        assert core.specifier.contains(__version__), f"{name}: {core} refuses {__version__}"


def test_the_sdists_hold_the_package_and_not_the_repository(built: dict[str, Built]) -> None:
    core = built["atomiton-core"]
    names = core.sdist_names()
    assert {n.split("/", 1)[0] for n in names} <= CORE_SDIST_TOP
    assert "README.md" in names and "examples/order-report.flow.yaml" in names
    missing = [f for f in package_files() if f not in names]
    assert not missing, f"the sdist lacks files of the package: {missing}"
    for dist in built.values():
        names = dist.sdist_names()
        junk = [
            n
            for n in names
            if n.endswith((".png", ".pyc"))
            or "__pycache__/" in n
            or n.startswith((".ci/", "plugins/", "benchmarks/", "scripts/", "test-artifacts/"))
            or "_cache/" in n
        ]
        assert not junk, f"{dist.name}: {junk}"


def test_the_wheels_hold_the_package_and_its_entry_points(built: dict[str, Built]) -> None:
    core = built["atomiton-core"]
    names = core.wheel_names()
    assert "atomiton_core/__main__.py" in names
    missing = [f for f in package_files() if f not in names]
    assert not missing, f"the wheel lacks files of the package: {missing}"
    assert any(n.startswith("atomiton_core/cli/templates/plugin/") for n in names)
    assert all(n.startswith(("atomiton_core/", "atomiton_core-")) for n in names), names
    entry_points = core.dist_info("entry_points.txt")
    for section, line in [
        ("console_scripts", "atomiton = atomiton_core.cli:main"),
        ("atomiton", "builtin = atomiton_core.nodes.builtin"),
        ("pytest11", "atomiton = atomiton_core.testing.pytest_plugin"),
    ]:
        assert re.search(rf"^\[{section}\]\n(?:.+\n)*?{re.escape(line)}$", entry_points, re.M), (
            f"[{section}] {line} not in entry_points.txt:\n{entry_points}"
        )
    for name in PLUGINS:
        package = name.replace("-", "_")
        assert f"= {package}.plugin" in built[name].dist_info("entry_points.txt"), name
        assert all(n.startswith((f"{package}/", f"{package}-")) for n in built[name].wheel_names())


def test_the_pypi_description_has_no_link_into_the_source_tree(built: dict[str, Built]) -> None:
    for dist in built.values():
        meta = dist.metadata()
        assert meta["Description-Content-Type"] == "text/markdown", dist.name
        description = meta.get_payload()
        assert isinstance(description, str)
        assert not RELATIVE_LINK.findall(description), dist.name
        # only links are rewritten: the README's code blocks reach PyPI as they are
        readme = (dist.source / "README.md").read_text()
        for block in FENCED_BLOCK.findall(readme):
            assert block in description, f"{dist.name}: changed on PyPI:\n{block}"
    # the rewrite keeps a link's text
    core_description = built["atomiton-core"].metadata().get_payload()
    assert "- docs/user-guide.md: the flow format" in core_description


def _extra_requirements(meta: email.message.Message, extra: str) -> set[str]:
    found = set()
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": extra}):
            req.marker = None
            found.add(str(req))
    return found


def test_the_all_extra_installs_every_extra(built: dict[str, Built]) -> None:
    meta = built["atomiton-core"].metadata()
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"all", "client", "server", "dask", "http", "testing", "keyring"} <= extras
    everything = _extra_requirements(meta, "all")
    for extra in extras - {"all", "dev"}:
        lacking = _extra_requirements(meta, extra) - everything
        assert not lacking, f"[all] lacks [{extra}]'s {sorted(lacking)}"
    assert any(r.startswith("websockets") for r in _extra_requirements(meta, "client"))


def test_every_install_hint_names_an_extra_that_exists(built: dict[str, Built]) -> None:
    extras = set(built["atomiton-core"].metadata().get_all("Provides-Extra") or [])
    texts = [*ROOT.glob("atomiton_core/**/*.py"), *ROOT.glob("atomiton_core/**/*.tmpl")]
    texts += [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("plugins/*/README.md")]
    for path in texts:
        for match in INSTALL_HINT.finditer(path.read_text()):
            unknown = set(match[1].split(",")) - extras
            assert not unknown, f"{path.relative_to(ROOT)} names the extra(s) {unknown}"


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_the_client_names_its_extra_when_websockets_is_missing() -> None:
    done = python(
        "import asyncio, sys\n"
        "sys.modules['websockets'] = None  # as if it were not installed\n"
        "from atomiton_core.server.client import RemoteConductor\n"
        "from atomiton_core.errors import ConfigurationError\n"
        "async def main():\n"
        "    try:\n"
        "        await anext(RemoteConductor('http://127.0.0.1:9').events('e1'))\n"
        "    except ConfigurationError as exc:\n"
        "        print(exc.hint); print(exc)\n"
        "asyncio.run(main())\n"
    )
    assert done.returncode == 0, done.stderr
    hint, message = done.stdout.splitlines()[:2]
    assert hint == 'pip install "atomiton-core[client]"'
    assert "websockets" in message


def test_python_m_atomiton_core_is_the_cli_and_starts_light() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "atomiton_core", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"atomiton, version {__version__}"
    engine = ["pydantic", "pluggy", "fsspec", "httpx", "jinja2", "rich", "ruamel", "yaml"]
    probe = python(
        "import json, runpy, sys\n"
        "sys.argv = ['atomiton', '--help']\n"
        "try:\n"
        "    runpy.run_module('atomiton_core', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {engine!r})))\n"
    )
    assert probe.returncode == 0, probe.stderr
    assert "Usage:" in probe.stdout
    assert json.loads(probe.stdout.splitlines()[-1]) == []
