"""Start-up cost: the CPU time (user + sys) and wall time of a fresh process that runs
``python -c "import atomiton_core"``, ``atomiton --help``, and, as the baseline, the
interpreter alone (``python -c "pass"``). Target: each of the first two <= 150 ms CPU.

Every measurement is a new process (started with ``posix_spawn``, its CPU read from
``os.wait4``'s resource usage); the commands are interleaved, in a rotating order, and repeated;
the figures are the median and the min-max. Each command runs once first so the bytecode
caches are written before anything is timed.

Also: each module an ``atomiton`` entry point names (the node plugins) is imported alone in
a fresh process, which reports its CPU time and which of the node types' heavy libraries
(httpx, Pillow, openpyxl, python-calamine) it loaded: none should be, they load when a node
of theirs runs.

    python -m benchmarks.startup                   # 21 repeats
    python -m benchmarks.startup --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
TARGET_CPU_MS = 150.0

#: What a node type may need when it runs, never when its plugin is registered.
NODE_LIBRARIES = ("httpx", "PIL", "openpyxl", "python_calamine")

#: Run in a child: import one module, print its CPU time and the node libraries it loaded.
_PROBE = """\
import importlib, json, resource, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t = cpu()
importlib.import_module(sys.argv[1])
took = (cpu() - t) * 1000
print(json.dumps({"cpu_ms": took, "loaded": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def commands() -> dict[str, list[str]]:
    """The measured commands, each as the argv of a new process."""
    script = Path(sys.executable).with_name("atomiton")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "atomiton_core.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import atomiton_core": [sys.executable, "-c", "import atomiton_core"],
        "atomiton --help": [*cli, "--help"],
    }


def run_once(argv: list[str]) -> tuple[float, float]:
    """(CPU ms, wall ms) of one process running ``argv``, its output discarded."""
    devnull = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=devnull)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}")
    return (usage.ru_utime + usage.ru_stime) * 1000, wall


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def plugin_modules() -> dict[str, str]:
    """Entry point name -> module, for every entry point of the group ``atomiton``."""
    return {ep.name: ep.module for ep in entry_points(group="atomiton")}


def probe_import(module: str) -> dict[str, Any]:
    """Import ``module`` alone in a fresh interpreter: its CPU ms and the node libraries loaded."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *NODE_LIBRARIES],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(repeats: int = 21) -> dict[str, Any]:
    cmds = commands()
    for argv in cmds.values():
        run_once(argv)  # warm: bytecode caches written, files in the page cache
    names = list(cmds)
    samples: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "wall": []} for n in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            cpu, wall = run_once(cmds[name])
            samples[name]["cpu"].append(cpu)
            samples[name]["wall"].append(wall)
    rows = [
        {
            "command": name,
            "argv": cmds[name],
            "cpu_ms": _stats(samples[name]["cpu"]),
            "wall_ms": _stats(samples[name]["wall"]),
        }
        for name in names
    ]
    plugins = []
    for ep_name, module in sorted(plugin_modules().items()):
        probe = probe_import(module)
        plugins.append({"entry_point": ep_name, "module": module, **probe})
    return {
        "repeats": repeats,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "target_cpu_ms": TARGET_CPU_MS,
        "rows": rows,
        "plugins": plugins,
    }


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"{res['repeats']} interleaved repeats, each a fresh process, medians (min-max); "
        f"Python {res['python']}, {res['cpus']} CPUs; target <= {res['target_cpu_ms']:g} ms CPU",
        "",
        "| command | CPU ms (user+sys) | wall ms |",
        "|---|---|---|",
    ]
    for r in res["rows"]:
        c, w = r["cpu_ms"], r["wall_ms"]
        lines.append(
            f"| `{r['command']}` | {c['median']:.0f} ({c['min']:.0f}-{c['max']:.0f}) | "
            f"{w['median']:.0f} ({w['min']:.0f}-{w['max']:.0f}) |"
        )
    lines += [
        "",
        "Each entry point module of the group `atomiton` imported alone in a fresh process "
        "(CPU of the import, the interpreter's start-up not counted):",
        "",
        "| entry point | module | CPU ms | node libraries loaded |",
        "|---|---|---|---|",
    ]
    for p in res["plugins"]:
        lines.append(
            f"| {p['entry_point']} | `{p['module']}` | {p['cpu_ms']:.0f} | "
            f"{', '.join(p['loaded']) or 'none'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--tag", default="startup")
    args = parser.parse_args()
    res = measure(args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
