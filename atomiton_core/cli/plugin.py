"""``atomiton plugin new``: scaffold a publishable node package from the templates in
``templates/plugin`` (``__package__`` in a path is the import name, ``dot-`` a leading dot,
``.tmpl`` files are rendered with Jinja2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atomiton_core.version import __version__

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["plugin", "scaffold"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*([._-][A-Za-z0-9]+)*$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


def scaffold(name: str, directory: Path, prefix: str | None = None) -> list[Path]:
    """Write the package ``name`` into ``directory`` (which must be empty or absent)."""
    if not _NAME.fullmatch(name):
        raise click.BadParameter(
            f"{name!r} is not a valid distribution name; use letters, digits and single "
            "'-', '_' or '.' between them, starting with a letter (e.g. atomiton-nodes-acme)",
            param_hint="NAME",
        )
    prefix = prefix or default_prefix(name)
    if not _PREFIX.fullmatch(prefix):
        raise click.BadParameter(
            f"{prefix!r} cannot start a node type id; use letters, digits, '.', '_' and '-'",
            param_hint="--type-prefix",
        )
    if directory.exists() and any(directory.iterdir()):
        raise click.UsageError(f"{directory} exists and is not empty; choose another --directory")
    package = re.sub(r"[^a-z0-9]+", "_", name.lower())
    values = {
        "name": name,
        "package": package,
        "prefix": prefix,
        "entry_point": re.sub(r"[^a-z0-9_]+", "_", prefix.lower()),
        "core_version": __version__,
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
    return written


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
def new(name: str, directory: Path | None, prefix: str | None) -> None:
    """Create the node package NAME: pyproject, an example node, README, contract tests."""
    where = directory if directory is not None else Path(name)
    written = scaffold(name, where, prefix)
    click.echo(f"created {name} in {where} ({len(written)} files)")
    click.echo("next:")
    click.echo(f"  cd {where}")
    click.echo("  pip install -e '.[test]'")
    click.echo("  pytest                 # the node contract and your own tests")
    click.echo("  atomiton nodes         # lists the example node")
