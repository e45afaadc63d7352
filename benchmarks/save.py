"""Saving a flow: ``dumps_flow`` against PyYAML's C dumper of the same plain data, N = 10,000.

Two cases, both a chain of N nodes (``to_flow(SHAPES["chain"](n), "bench.async", "x")``):

- ``built``: the flow made in Python, no source text;
- ``edited``: that flow saved to a file with a few comments added, loaded, then changed a
  little (one node renamed, one parameter set, one edge's handle changed, one edge removed,
  one node and one edge added) - a fresh load for every repeat, the load not timed.

The reference is ``yaml.dump(plain, Dumper=yaml.CSafeDumper, sort_keys=False)`` of the data
the saver writes (``flow.to_data()``); ``dumps_flow`` is timed whole, getting that data
included. Both run in one process, alternating which goes first, repeated; the figures are
medians (and min-max) in ms, and the ratio ours / PyYAML of the same repeat (target: within
2x). Every saved text is loaded back and compared with the flow. The ruamel round-trip path
that saving used before is timed once per case, for scale.

    python -m benchmarks.save                    # N = 10,000, 7 repeats
    python -m benchmarks.save --n 200 --repeats 2
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from atomiton_core import Edge, Flow, NodeSpec, dumps_flow, load_flow, loads_flow, save_flow
from atomiton_core.flow import yaml_io
from benchmarks.graphs import SHAPES, to_flow
from benchmarks.isolation import run_main

CASES = ("built", "edited")


def built(n: int) -> Flow:
    return to_flow(SHAPES["chain"](n), "bench.async", "x")


def commented_file(n: int, folder: Path) -> Path:
    """The built flow saved, with a header comment and a comment above some nodes."""
    path = folder / "bench.flow.yaml"
    save_flow(built(n), path)
    lines = ["# a benchmark flow: a chain", *path.read_text().splitlines()]
    out = []
    for line in lines:
        if line.startswith("- id: n") and line.endswith("00"):
            out.append(f"# node {line.removeprefix('- id: ')}")
        out.append(line + ("  # the first" if line == "- id: n0" else ""))
    path.write_text("\n".join(out) + "\n")
    return path


def edit(flow: Flow) -> None:
    """A little change: what an editor session might do before saving."""
    n = len(flow.nodes)
    flow.nodes[n // 2].name = "renamed: the middle"
    node = flow.nodes[n // 3]
    node.parameters = {**node.parameters, "limit": 10}  # assigned: in place would not be saved
    flow.edges[n // 4].target_handle = "y"
    del flow.edges[n // 5]
    flow.nodes.append(NodeSpec(id="extra", type="bench.async", parameters={"note": "yes"}))
    flow.edges.append(Edge(source=f"n{n - 1}", target="extra", source_handle="out"))


def _ruamel_ms(flow: Flow) -> float:
    """The ruamel round-trip save (merge into the document, then emit), once."""
    t0 = time.perf_counter()
    buf = io.StringIO()
    yaml_io._yaml().dump(yaml_io._document_for(flow), buf)
    return (time.perf_counter() - t0) * 1000


def _timed(flow: Flow) -> tuple[float, str]:
    t0 = time.perf_counter()
    text = dumps_flow(flow)
    return (time.perf_counter() - t0) * 1000, text


def _pyyaml_ms(plain: Any) -> float:
    t0 = time.perf_counter()
    yaml.dump(plain, Dumper=yaml.CSafeDumper, sort_keys=False)
    return (time.perf_counter() - t0) * 1000


def _row(case: str, times: list[dict[str, float]], size: int, ruamel_ms: float) -> dict[str, Any]:
    ratios = [t["ours"] / t["pyyaml"] for t in times]
    return {
        "case": case,
        "ours_ms": statistics.median(t["ours"] for t in times),
        "ours_range": [min(t["ours"] for t in times), max(t["ours"] for t in times)],
        "pyyaml_ms": statistics.median(t["pyyaml"] for t in times),
        "pyyaml_range": [min(t["pyyaml"] for t in times), max(t["pyyaml"] for t in times)],
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "bytes": size,
        "ruamel_ms": ruamel_ms,
    }


async def measure(n: int = 10_000, repeats: int = 7) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "repeats": repeats, "rows": []}
    with tempfile.TemporaryDirectory(prefix="atomiton-bench-save-") as folder:
        path = commented_file(n, Path(folder))
        for case in CASES:
            times: list[dict[str, float]] = []
            size = 0
            for r in range(repeats + 1):  # the first is a warm-up
                if case == "built":
                    flow = built(n)
                else:
                    flow = load_flow(path)
                    edit(flow)
                plain = flow.to_data()
                pair: dict[str, float] = {}
                for who in ("ours", "pyyaml") if r % 2 == 0 else ("pyyaml", "ours"):
                    if who == "ours":
                        pair["ours"], text = _timed(flow)
                    else:
                        pair["pyyaml"] = _pyyaml_ms(plain)
                if loads_flow(text) != flow:
                    raise RuntimeError(f"{case}: the saved text does not load back equal")
                if case == "edited" and "# the first" not in text:
                    raise RuntimeError("edited: the comments of the file were lost")
                size = len(text.encode())
                if r:
                    times.append(pair)
            flow = built(n) if case == "built" else load_flow(path)
            if case == "edited":
                edit(flow)
            out["rows"].append(_row(case, times, size, _ruamel_ms(flow)))
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"N = {res['n']} (a chain), {res['repeats']} interleaved repeats, medians (min-max); "
        "ours: `dumps_flow(flow)`; PyYAML: `yaml.dump(flow.to_data(), Dumper=yaml.CSafeDumper, "
        "sort_keys=False)`; ruamel: the round-trip save used before, once",
        "",
        "| case | ours ms | PyYAML C ms | ours / PyYAML (min-max) | text | ruamel ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lo, hi = r["ratio_range"]
        olo, ohi = r["ours_range"]
        plo, phi = r["pyyaml_range"]
        lines.append(
            f"| {r['case']} | {r['ours_ms']:.0f} ({olo:.0f}-{ohi:.0f}) | "
            f"{r['pyyaml_ms']:.0f} ({plo:.0f}-{phi:.0f}) | {r['ratio']:.2f}x "
            f"({lo:.2f}-{hi:.2f}) | {r['bytes'] / 1e6:.2f} MB | {r['ruamel_ms']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    run_main(__doc__, 10_000, 7, "save", measure, markdown)


if __name__ == "__main__":
    main()
