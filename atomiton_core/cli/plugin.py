"""``atomiton plugin new``: scaffold a publishable node package from the templates in
``templates/plugin`` (``__package__`` in a path is the import name, ``dot-`` a leading dot,
``.tmpl`` files are rendered with Jinja2).

The import name is made from the distribution name (``my-nodes`` gives ``my_nodes``); one
that Python could not import, or that would hide another module once installed (a keyword
such as ``class``, a standard library module such as ``json``, ``atomiton_core``), gets a
trailing underscore, and the command says so. ``--package`` names it outright.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atomiton_core.version import __version__

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["Scaffold", "import_name", "plugin", "scaffold"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*([._-][A-Za-z0-9]+)*$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _clash(package: str) -> str | None:
    """Why ``package`` cannot be the import name of a new package, or None."""
    if keyword.iskeyword(package):
        return f"{package!r} is a Python keyword: `import {package}` is a syntax error"
    if package in sys.stdlib_module_names:
        return f"{package!r} is a module of the standard library, which it would hide"
    if package == "atomiton_core" or package.startswith("atomiton_core_"):
        return f"{package!r} is Atomiton's own package (or looks like one of its modules)"
    return None


def import_name(name: str) -> tuple[str, str | None]:
    """The import name for the distribution ``name``, and why it differs from the plain one
    (``my-nodes`` -> ``my_nodes``; ``class`` -> ``class_``, a keyword), or None."""
    package = re.sub(r"[^a-z0-9]+", "_", name.lower())
    why = _clash(package)
    if why is None:
        return package, None
    return f"{package}_", f"{why}; the import name is {package + '_'!r}"


def default_prefix(name: str) -> str:
    """``atomiton-nodes-acme`` and ``acme-nodes`` give ``acme``: the node types' id prefix."""
    base = name.lower().replace("_", "-")
    for head in ("atomiton-nodes-", "atomiton-"):
        if base.startswith(head) and len(base) > len(head):
            base = base[len(head) :]
            break
    for tail in ("-nodes", "-plugin"):
        if base.endswith(tail) and len(base) > len(tail):
            base = base[: -len(tail)]
    return base


def _files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_files(entry, rel + "/"))
        else:
            found.append((rel, entry))
    return found


@dataclass(frozen=True, slots=True)
class Scaffold:
    """What ``scaffold`` wrote: the names it chose and the files."""

    name: str
    package: str
    prefix: str
    directory: Path
    files: list[Path]
    #: what the user should know: an import name changed, a module it may hide
    notes: list[str] = field(default_factory=list)


def scaffold(
    name: str, directory: Path, prefix: str | None = None, package: str | None = None
) -> Scaffold:
    """Write the package ``name`` into ``directory`` (which must be empty or absent);
    ``package``: its import name (default: made from ``name``, see :func:`import_name`)."""
    if not _NAME.fullmatch(name):
        raise click.BadParameter(
            f"{name!r} is not a valid distribution name for a node package; use letters, "
            "digits and single '-', '_' or '.' between them, starting with a letter (the "
            "import name is made from it, and a Python name cannot start with a digit), "
            "e.g. atomiton-nodes-acme",
            param_hint="NAME",
        )
    notes: list[str] = []
    if package is None:
        package, why = import_name(name)
        if why is not None:
            notes.append(f"{why} (choose another with --package)")
    else:
        if not _PACKAGE.fullmatch(package):
            raise click.BadParameter(
                f"{package!r} is not an import name; use lower-case letters, digits and '_', "
                "not starting with a digit (e.g. acme_nodes)",
                param_hint="--package",
            )
        why = _clash(package)
        if why is not None:
            raise click.BadParameter(f"{why}; choose another", param_hint="--package")
    notes.extend(_shadowed(package))
    prefix = prefix or default_prefix(name)
    if not _PREFIX.fullmatch(prefix):
        raise click.BadParameter(
            f"{prefix!r} cannot start a node type id; use letters, digits, '.', '_' and '-'",
            param_hint="--type-prefix",
        )
    if directory.exists() and any(directory.iterdir()):
        raise click.UsageError(f"{directory} exists and is not empty; choose another --directory")
    import datetime

    values = {
        "name": name,
        "package": package,
        "prefix": prefix,
        "entry_point": re.sub(r"[^a-z0-9_]+", "_", prefix.lower()),
        "core_version": __version__,
        "year": datetime.date.today().year,
    }
    from importlib import resources

    import jinja2  # 15 ms, so loaded by this command only

    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    written: list[Path] = []
    templates = resources.files("atomiton_core.cli").joinpath("templates", "plugin")
    for rel, source in _files(templates):
        parts = [p.replace("__package__", package) for p in rel.split("/")]
        parts = ["." + p[len("dot-") :] if p.startswith("dot-") else p for p in parts]
        target = directory.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.name.endswith(".tmpl"):
            target = target.with_name(target.name[: -len(".tmpl")])
            target.write_text(env.from_string(source.read_text("utf-8")).render(values), "utf-8")
        else:
            target.write_bytes(source.read_bytes())
        written.append(target)
    return Scaffold(name, package, prefix, directory, written, notes)


def _shadowed(package: str) -> list[str]:
    """A note when a module of that name is importable here already: installed, the new
    package would hide it, or be hidden by it."""
    from importlib.util import find_spec

    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    where = spec.origin or ", ".join(spec.submodule_search_locations or []) or "?"
    return [
        f"a module {package!r} is importable here already ({where}); installing this "
        "package beside it, one would hide the other (choose another with --package)"
    ]


@click.group()
def plugin() -> None:
    """Write and publish node packages."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the package (default: ./NAME).",
)
@click.option(
    "--type-prefix",
    "prefix",
    default=None,
    help="Prefix of the node type ids, e.g. 'acme' for acme.scale (default: from NAME).",
)
@click.option(
    "--package",
    default=None,
    metavar="IMPORT_NAME",
    help="The package's import name (default: from NAME, e.g. my_nodes for my-nodes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def new(
    name: str, directory: Path | None, prefix: str | None, package: str | None, as_json: bool
) -> None:
    """Create the node package NAME: pyproject, an example node, README, contract tests."""
    where = directory if directory is not None else Path(name)
    done = scaffold(name, where, prefix, package)
    for note in done.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        body = {
            "name": done.name,
            "package": done.package,
            "prefix": done.prefix,
            "directory": str(done.directory),
            "files": [p.relative_to(done.directory).as_posix() for p in done.files],
            "notes": done.notes,
        }
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(f"created {name} in {where} ({len(done.files)} files, import name {done.package})")
    click.echo("next:")
    click.echo(f"  cd {where}")
    click.echo("  pip install -e '.[test]'")
    click.echo("  pytest                 # the node contract and your own tests")
    click.echo("  atomiton nodes         # lists the example node")
