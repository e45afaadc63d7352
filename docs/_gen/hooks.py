"""The site's generated reference: an mkdocs hook (``hooks:`` in ``mkdocs.yml``).

Every page under ``reference/`` but its index is written here at build time, from the code
the build runs with, so nothing in them is written twice and an installed plugin's node
types appear on the node catalogue page:

- ``reference/api/*``: the Python API, one ``:::`` block per public name (mkdocstrings
  renders them), grouped by the module each name comes from (``atomiton_core._ORIGIN``);
- ``reference/nodes.md``: every node type of the catalogue, from its parameter model's JSON
  schema and its ports, and the execution settings every node accepts;
- ``reference/flow-format.md`` (and ``flow.schema.json`` beside it): the flow file format,
  from the schema the package ships;
- ``reference/cli.md``: the command line, from click (mkdocs-click);
- ``reference/http-api.md`` (and ``openapi.json``): the server's routes, from its OpenAPI
  document (``atomiton_core.server.openapi``);
- ``reference/hooks.md``, ``reference/signals.md``, ``reference/errors.md``: the hookspecs,
  the signals (their ``doc=``) and the error codes.

It also turns the Sphinx roles of the docstrings (``:class:`~atomiton_core.Flow```) into
cross-references.
"""

from __future__ import annotations

import html
import importlib
import inspect
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

#: The façade's names by the page of the API reference they are on: the first matching
#: prefix of the module each comes from decides (``atomiton_core.conductor.plan`` → conductor).
API_PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "conductor": ("Conductor and results", ("conductor", "results")),
    "flows": ("Flows", ("flow",)),
    "nodes": ("Nodes and plugins", ("nodes", "hookspecs", "catalogue")),
    "storage": ("Storage, files and security", ("storage", "files", "security")),
    "errors": ("Errors", ("errors",)),
}
#: Public modules with a page of their own: every name of their ``__all__`` is on it.
API_MODULES: dict[str, tuple[str, str]] = {
    "atomiton_core.errors": ("errors", "Errors"),
    "atomiton_core.codec": ("codec", "codec: values across processes"),
    "atomiton_core.wire": ("wire", "wire: the JSON of everything"),
    "atomiton_core.testing": ("testing", "testing: the node author's kit"),
    "atomiton_core.server.client": ("client", "server.client: the Python client"),
    "atomiton_core.server.openapi": ("openapi", "server.openapi: the OpenAPI document"),
    "atomiton_core.schemas": ("schemas", "schemas: the shipped JSON Schemas"),
}
#: The modules whose public names the reference documents (and ``tests/test_docs_site.py``
#: holds to having docstrings): the façade, these, the hooks and the signals.
DOCUMENTED_MODULES = (
    "atomiton_core",
    *API_MODULES,
    "atomiton_core.hookspecs",
    "atomiton_core.signals",
)

_OPTIONS = "    options:\n      show_root_heading: true\n      heading_level: {level}\n"


# -- small Markdown helpers ----------------------------------------------------------------


def cell(text: Any) -> str:
    """Text fit for one cell of a Markdown table."""
    text = "" if text is None else str(text)
    return " ".join(text.split()).replace("|", "\\|") or " "


def code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def table(head: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def first_line(doc: str | None) -> str:
    doc = inspect.cleandoc(doc or "")
    return " ".join(doc.split("\n\n", 1)[0].split())


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# -- the Python API ------------------------------------------------------------------------


def _page_of(origin: str) -> str:
    short = origin.removeprefix("atomiton_core.")
    for page, (_, prefixes) in API_PAGES.items():
        if any(short == p or short.startswith(p + ".") for p in prefixes):
            return page
    return "more"


def api_pages() -> dict[str, str]:
    """The Python API reference: an index of the façade, a page per group of its names, a
    page per public module."""
    import atomiton_core

    origins: Mapping[str, str] = atomiton_core._ORIGIN
    pages: dict[str, list[str]] = defaultdict(list)
    where: dict[str, str] = {}
    for name in sorted(atomiton_core.__all__, key=str.lower):
        origin = origins[name]
        if origin == f"atomiton_core.{name}":  # a module: on its own page
            page = API_MODULES.get(origin, (name, ""))[0]
            where[name] = f"{page}.md"
            continue
        if name == "__version__":
            where[name] = "index.md#atomiton_core.__version__"
            continue
        page = "errors" if origin == "atomiton_core.errors" else _page_of(origin)
        where[name] = f"{page}.md#{origin if page == 'errors' else 'atomiton_core'}.{name}"
        if page != "errors":  # the errors page renders the whole module
            pages[page].append(name)
    out: dict[str, str] = {}
    titles = {page: title for page, (title, _) in API_PAGES.items()} | {"more": "More"}
    for page, names in pages.items():
        body = [f"# {titles[page]}\n"]
        body.append(
            "Every name here is imported from `atomiton_core` (`from atomiton_core import "
            f"{names[0]}`).\n"
        )
        for name in names:
            body.append(f"::: atomiton_core.{name}\n" + _OPTIONS.format(level=2))
        out[f"reference/api/{page}.md"] = "\n".join(body)
    for module, (page, title) in API_MODULES.items():
        out[f"reference/api/{page}.md"] = (
            f"# {title}\n\n::: {module}\n"
            + _OPTIONS.format(level=2).replace(
                "show_root_heading: true", "show_root_heading: false"
            )
            + "      show_submodules: false\n"
        )
    signals_module = importlib.import_module("atomiton_core.signals")
    rows = []
    for name in sorted(atomiton_core.__all__, key=str.lower):
        target = where[name]
        value = getattr(atomiton_core, name)
        doc = value.__doc__ if not isinstance(value, str) else _version_doc()
        if name == "signals":
            target, doc = "../signals.md", signals_module.__doc__
        rows.append((f"[`{name}`]({target})", first_line(doc)))
    out["reference/api/index.md"] = (
        "# Python API\n\n"
        "The public API is what `atomiton_core.__all__` lists; everything else is "
        "implementation. Each name links to its reference.\n\n"
        + table(["name", "what for"], rows)
        + "\n## The version\n\n::: atomiton_core.__version__\n"
        + _OPTIONS.format(level=3)
    )
    return out


def _version_doc() -> str:
    import griffe

    module = griffe.load(
        "atomiton_core.version", extensions=griffe.load_extensions("griffe_sphinx")
    )
    member = module["__version__"]
    return member.docstring.value if member.docstring else ""


# -- node types ----------------------------------------------------------------------------


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_type(schema: Mapping[str, Any], anchor: Callable[[str], str] | None = None) -> str:
    """A short name for the type a JSON schema allows (``integer``, ``string | null``...)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{anchor(name)})" if anchor else name
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(schema_type(s, anchor) for s in schema[key])
    if "const" in schema:
        return code(schema["const"])
    kind = schema.get("type")
    if kind == ["string", "number"]:
        return "string"  # the flow models read a number there as text
    if isinstance(kind, list):
        return " | ".join(kind)
    if kind == "array":
        items = schema.get("items")
        return f"array of {schema_type(items, anchor)}" if items else "array"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"object of {schema_type(extra, anchor)}"
        return "object"
    return kind or "any"


_BOUNDS = {
    "minimum": "≥ {}",
    "exclusiveMinimum": "> {}",
    "maximum": "≤ {}",
    "exclusiveMaximum": "< {}",
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
    "pattern": "matches `{}`",
    "format": "format {}",
}


def schema_bounds(schema: Mapping[str, Any]) -> str:
    """What a JSON schema allows beyond its type: bounds, allowed values, format."""
    found: list[str] = []
    parts = [schema, *schema.get("anyOf", ()), *schema.get("oneOf", ())]
    for part in parts:
        if "enum" in part:
            found.append("one of " + ", ".join(code(v) for v in part["enum"]))
        for key, text in _BOUNDS.items():
            if key in part:
                found.append(text.format(part[key]))
        if part.get("secret"):
            found.append("secret: masked in results and logs")
    return "; ".join(dict.fromkeys(found))


def _default(name: str, prop: Mapping[str, Any], required: Iterable[str]) -> str:
    if name in required:
        return "required"
    if "default" in prop:
        return code(prop["default"])
    return "—"


def properties_table(schema: Mapping[str, Any], anchor: Callable[[str], str] | None) -> str:
    props: Mapping[str, Any] = schema.get("properties", {})
    required = schema.get("required", [])
    rows = [
        (
            f"`{name}`",
            schema_type(prop, anchor),
            _default(name, prop, required),
            schema_bounds(prop),
            prop.get("description", ""),
        )
        for name, prop in props.items()
    ]
    return table(["name", "type", "default", "allowed", "description"], rows)


def _ports(ports: list[dict[str, Any]], inputs: bool) -> str:
    if not ports:
        return "none\n"
    head = ["port", "type", "required", "several edges", "description"]
    rows = [
        (
            f"`{p['name']}`",
            p["type"],
            ("yes" if p["required"] else "no") if inputs else "—",
            ("yes, a list in edge order" if p["multiple"] else "no") if inputs else "—",
            p.get("description", ""),
        )
        for p in ports
    ]
    return table(head, rows)


def node_type_section(data: Mapping[str, Any]) -> str:
    """One node type's section: what it does, its ports, its parameters."""
    type_id = data["id"]
    lines = [f"### `{type_id}` {{ #{slug('node-' + type_id)} }}\n"]
    lines.append(f"**{data['name']}**: {data['description'] or '(no description)'}\n")
    facts = [f"category `{data['category']}`", f"version {data['version']}"]
    for flag, text in [
        ("pure", "pure (same inputs, same outputs)"),
        ("container", "a container (runs child nodes)"),
        ("dynamicInputs", "takes any input port"),
        ("dynamicOutputs", "output ports defined by the flow"),
    ]:
        if data.get(flag):
            facts.append(text)
    if data.get("defaultSettings"):
        facts.append("default settings " + code(data["defaultSettings"]))
    if data.get("ownLimits"):
        facts.append("applies " + ", ".join(f"`{x}`" for x in data["ownLimits"]) + " itself")
    lines.append(", ".join(facts) + ".\n")
    if data.get("childSources"):
        sources = ", ".join(f"`{s}`" for s in data["childSources"])
        lines.append(f"Its children read {sources} from it.\n")
    lines.append("**Inputs**\n\n" + _ports(data["inputs"], inputs=True))
    lines.append("**Outputs**\n\n" + _ports(data["outputs"], inputs=False))
    schema = data["parameters"]

    def anchor(name: str) -> str:
        return slug(f"node-{type_id}-{name}")

    lines.append("**Parameters**\n")
    if schema.get("description"):
        lines.append(inspect.cleandoc(schema["description"]) + "\n")
    if schema.get("properties"):
        lines.append(properties_table(schema, anchor))
    else:
        lines.append("none but the [execution settings](#execution-settings)\n")
    for name, sub in schema.get("$defs", {}).items():
        lines.append(f'<a id="{anchor(name)}"></a>**{name}** (in `{type_id}`)\n')
        if sub.get("description"):
            lines.append(inspect.cleandoc(sub["description"]) + "\n")
        lines.append(properties_table(sub, anchor))
    return "\n".join(lines)


def nodes_page() -> str:
    from atomiton_core import Catalogue, wire
    from atomiton_core.flow.settings import ExecutionSettings

    catalogue = Catalogue.load()
    by_dist: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for type_id in sorted(catalogue):
        data = wire.dump(catalogue[type_id])
        by_dist[data.get("distribution") or "unregistered"].append(data)
    order = sorted(by_dist, key=lambda d: (d != "atomiton-core", d))
    out = [
        "# Node types\n",
        "Every node type installed where this site was built, from each type's own "
        "declaration: its ports and the JSON schema of its parameters (the schema "
        "`atomiton nodes --json` and `GET /api/nodes` give editors). Install a node package "
        "and build the site again: its types appear here. `atomiton nodes` lists the "
        "types installed where you are.\n",
        "Parameters are camelCase in flow files. Every parameter also takes a template "
        '(`"{{ n }}"`), rendered over the flow\'s variables when the run starts.\n',
    ]
    rows = [
        (
            f"[`{d['id']}`](#{slug('node-' + d['id'])})",
            d["name"],
            dist,
            d["category"],
            d["description"],
        )
        for dist in order
        for d in by_dist[dist]
    ]
    out.append(table(["type", "name", "package", "category", "what it does"], rows))
    for dist in order:
        out.append(f"## {dist}\n")
        out.extend(node_type_section(d) for d in by_dist[dist])
    settings = _described(ExecutionSettings)
    out.append("## Execution settings\n")
    out.append(
        first_line(ExecutionSettings.__doc__)
        + ". Every node takes them among its `parameters`, beside its type's own; a type may "
        "give its own defaults (shown above as its default settings), and the flow's value "
        "wins.\n"
    )
    out.append(properties_table(settings, None))
    return "\n".join(out)


def _described(model: Any) -> dict[str, Any]:
    from atomiton_core.schemas import described_schema

    return described_schema(model)


# -- the flow format -----------------------------------------------------------------------


def flow_format_page(schema: Mapping[str, Any]) -> str:
    def anchor(name: str) -> str:
        return slug(f"flow-{name}")

    out = [
        "# Flow file format\n",
        "A flow file (`*.flow.yaml`, or the same keys as JSON) holds the keys below. This "
        "page is generated from [`flow.schema.json`](flow.schema.json), the JSON Schema the "
        "package ships as `atomiton_core/schemas/flow.schema.json`, which is itself "
        "generated from the flow models (`atomiton_core.Flow` and the models it holds). "
        "[Validate flow files in an editor](../editor.md) says how to use it.\n",
        "Keys the models do not know are kept as they are (editor data such as `position`); "
        "the schema allows them. Where text goes, a number is read as text (`version: 1.0` "
        'is `"1.0"`). The schema checks a file\'s shape; what depends on the '
        "installed node types (their parameters, ports, edges, cycles) is checked by "
        "`atomiton validate`. A node's `parameters` are its type's, listed on the "
        "[node types](nodes.md) page, and the execution settings every node accepts.\n",
    ]
    out.append(f"## Flow {{ #{anchor('Flow')} }}\n")
    if schema.get("description"):
        out.append(inspect.cleandoc(schema["description"]) + "\n")
    out.append(properties_table(schema, anchor))
    for name, sub in sorted(schema.get("$defs", {}).items()):
        out.append(f"## {name} {{ #{anchor(name)} }}\n")
        if sub.get("description"):
            out.append(inspect.cleandoc(sub["description"]) + "\n")
        extra = sub.get("additionalProperties")
        if extra is True:
            out.append("Other keys: allowed, kept as they are.\n")
        out.append(properties_table(sub, anchor))
    return "\n".join(out)


# -- the command line ----------------------------------------------------------------------


def cli_page() -> str:
    return (
        "# Command line\n\n"
        "`atomiton` (or `python -m atomiton_core`), generated from the click commands "
        "themselves: what `--help` says, command by command. Exit codes: 0 done, 1 the run "
        "failed or was cancelled, 2 a usage error, 3 the flow is invalid or cannot be read.\n\n"
        "::: mkdocs-click\n"
        "    :module: atomiton_core.cli\n"
        "    :command: main\n"
        "    :prog_name: atomiton\n"
        "    :depth: 1\n"
        "    :style: table\n"
        "    :list_subcommands: true\n"
    )


# -- the HTTP API --------------------------------------------------------------------------


def served_document() -> dict[str, Any]:
    """The OpenAPI document of the app ``atomiton serve`` runs (a conductor on in-memory
    storage, its triggers off)."""
    from atomiton_core import create_conductor
    from atomiton_core.server.app import create_app
    from atomiton_core.server.openapi import openapi_document

    conductor = create_conductor("memory://atomiton-openapi")
    try:
        return openapi_document(create_app(conductor, token="openapi", triggers=False))
    finally:
        conductor.close()


def http_page(document: Mapping[str, Any]) -> str:
    info = document["info"]
    out = [
        "# HTTP API\n",
        f"{info['title']} {info['version']}, OpenAPI {document['openapi']}: "
        "[`openapi.json`](openapi.json). The document is built from the app's own routes "
        "and their docstrings (`atomiton_core.server.openapi`); a running server answers "
        "it too. [Serving and the client](../server.md) says how to run one and what each "
        "body holds.\n",
        info["description"],
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for path, item in document["paths"].items():
        for method, op in item.items():
            by_tag[op["tags"][0]].append((method, path, op))
    rows = [
        (
            f"[`{m.upper()} {p}`](#{_op_anchor(m, p)})"
            + (" (WebSocket)" if op.get("x-websocket") else ""),
            "none" if op.get("security") == [] else "token",
            op["summary"],
        )
        for ops in by_tag.values()
        for m, p, op in ops
    ]
    out.append(table(["route", "needs", "what"], rows))
    for tag, ops in by_tag.items():
        out.append(f"## {tag}\n")
        for method, path, op in ops:
            kind = " (WebSocket)" if op.get("x-websocket") else ""
            out.append(f"### `{method.upper()} {path}`{kind} {{ #{_op_anchor(method, path)} }}\n")
            out.append(op.get("description", op["summary"]).replace("\n\n", "\n\n") + "\n")
            params = op.get("parameters", [])
            if params:
                out.append(
                    table(
                        ["parameter", "in", "type", "required"],
                        (
                            (
                                f"`{p['name']}`",
                                p["in"],
                                p["schema"]["type"],
                                "yes" if p["required"] else "no",
                            )
                            for p in params
                        ),
                    )
                )
            if op.get("security") == []:
                out.append("No token needed.\n")
    out.append("## Try it\n")
    out.append('<swagger-ui src="openapi.json"/>\n')
    return "\n".join(out)


def _op_anchor(method: str, path: str) -> str:
    return slug(f"{method}-{path}") or "root"


# -- hooks, signals, errors ----------------------------------------------------------------


def hooks_page() -> str:
    from atomiton_core import hookspecs

    hooks = sorted(
        (
            (name, fn)
            for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "atomiton_spec")
        ),
        key=lambda item: item[1].__code__.co_firstlineno,
    )
    lifecycle = set(hookspecs.LIFECYCLE_HOOKS)
    rows = []
    for name, fn in hooks:
        spec = fn.atomiton_spec
        flags = [f for f in ("firstresult", "historic") if spec.get(f)]
        args = ", ".join(f"`{a}`" for a in inspect.signature(fn).parameters)
        when = "during runs" if name in lifecycle else "outside runs"
        rows.append(
            (
                f"[`{name}`](#atomiton_core.hookspecs.{name})",
                when + (f" ({', '.join(flags)})" if flags else ""),
                args or "none",
                first_line(fn.__doc__),
            )
        )
    members = "\n".join(
        f"        - {n}"
        for n in ["hookimpl", "hookspec", "LIFECYCLE_HOOKS", *(n for n, _ in hooks)]
    )
    return (
        "# Hooks\n\n"
        "The plugin hooks, from `atomiton_core/hookspecs.py`: each hook's docstring is its "
        "manual. An implementation is a function of the same name marked `@hookimpl`, taking "
        "any subset of the arguments. [Writing node packages](../node-authors.md) shows one "
        "end to end.\n\n"
        + table(["hook", "called", "arguments", "what for"], rows)
        + "\n::: atomiton_core.hookspecs\n"
        + _OPTIONS.format(level=2).replace("show_root_heading: true", "show_root_heading: false")
        + "      members_order: source\n      members:\n"
        + members
        + "\n"
    )


def signals_page() -> str:
    from blinker import NamedSignal

    from atomiton_core import signals

    rows = []
    others = []
    order = {signal.name: i for i, signal in enumerate(signals.ALL_SIGNALS)}
    names = sorted(
        signals.__all__,
        key=lambda n: order.get(getattr(getattr(signals, n), "name", None), len(order)),
    )
    for name in names:
        value = getattr(signals, name)
        if isinstance(value, NamedSignal):
            rows.append(
                (f'<span id="signal-{name}"></span>`{name}`', f"`{value.name}`", value.__doc__)
            )
        else:
            others.append(name)
    members = "\n".join(f"        - {n}" for n in others)
    return (
        "# Signals\n\n"
        "Every signal of `atomiton_core.signals`, with its own `doc=`. Its name is the "
        "`type` of the event's JSON (`wire.dump(event)`, what the server streams). "
        "[Concepts](../concepts.md#signals) says how to connect a receiver.\n\n"
        + table(["signal", "event type", "when, and what the event holds"], rows)
        + "\n## The module\n\n::: atomiton_core.signals\n"
        + _OPTIONS.format(level=3).replace("show_root_heading: true", "show_root_heading: false")
        + "      members:\n"
        + members
        + "\n"
    )


def errors_page() -> str:
    from atomiton_core.errors import ERROR_CLASSES

    rows = []
    for error_code, cls in sorted(ERROR_CLASSES.items()):
        module = cls.__module__
        ident = f"{module}.{cls.__qualname__}"
        link = (
            f"[`{cls.__name__}`](api/errors.md#{ident})"
            if module == "atomiton_core.errors"
            else f"`{ident}`"
        )
        retry = "yes" if getattr(cls, "retryable_default", False) is True else " "
        rows.append((f"`{error_code}`", link, cls.http_status, retry, first_line(cls.__doc__)))
    return (
        "# Error codes\n\n"
        "Every error code the installed packages define, the class that owns it and the "
        "HTTP status the server answers it with (`atomiton_core.errors.ERROR_CLASSES`). A "
        "problem found by validation has a code of its own (`UNKNOWN_PARAMETER`...), listed "
        "in [the user guide](../user-guide.md#validation).\n\n"
        + table(["code", "class", "HTTP", "retried by default", "what"], rows)
    )


# -- mkdocs hooks --------------------------------------------------------------------------


def generated() -> dict[str, str | bytes]:
    """Every generated file of the site, by its path under ``docs/``."""
    from atomiton_core.schemas import load_flow_schema

    schema = load_flow_schema()
    document = served_document()
    files: dict[str, str | bytes] = {
        **api_pages(),
        "reference/nodes.md": nodes_page(),
        "reference/flow-format.md": flow_format_page(schema),
        "reference/flow.schema.json": json.dumps(schema, indent=2) + "\n",
        "reference/cli.md": cli_page(),
        "reference/http-api.md": http_page(document),
        "reference/openapi.json": json.dumps(document, indent=2) + "\n",
        "reference/hooks.md": hooks_page(),
        "reference/signals.md": signals_page(),
        "reference/errors.md": errors_page(),
    }
    return files


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages to the site's files."""
    for path, content in generated().items():
        files.append(File.generated(config, path, content=content))
    return files


_ROLE = re.compile(r":(?:class|func|meth|data|attr|mod|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")


def _cross_reference(match: re.Match[str]) -> str:
    short, target, call = match.groups()
    shown = target.rsplit(".", 1)[-1] if short else target
    ident = html.escape(target, quote=True)
    return f'<autoref identifier="{ident}" optional><code>{shown}{call or ""}</code></autoref>'


def on_page_content(html_text: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Sphinx roles of docstrings (``:class:`X```) as cross-references; ``::`` as ``:``."""
    html_text = _ROLE.sub(_cross_reference, html_text)
    return html_text.replace("::</p>", ":</p>")
