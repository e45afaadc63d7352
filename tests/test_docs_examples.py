"""Every command and Python example of the README, docs/ and the scaffold's README runs as pasted.

The fenced blocks of ``README.md``, ``docs/**/*.md`` and the README that ``atomiton plugin new``
writes are collected in order. A ``bash``/``sh``/``shell``/``console`` block runs in bash, a
``python`` block in a real interpreter (``atomiton`` and ``python`` on ``PATH`` from the test
environment), each in a fresh folder laid out like a checkout (a copy of ``examples/``) with its
own ``ATOMITON_STORAGE``. A ``yaml`` block that is a whole flow (``id:`` and ``nodes:``) must
pass ``atomiton validate``.

What a block shows is compared, ids, ports, times and runs of blanks set aside, and ``…`` in the
docs matching anything:

- in a ``console`` block, the lines after a ``$ command`` are its output, in order; a command
  must exit 0 unless the next one is ``echo $?``, which shows its code;
- elsewhere, ``# -> text`` after a line says what it prints, in order.

A comment ``<!-- docs-test: ... -->`` right before a block says more (several joined by ``;``):

- ``skip (reason)``: the block cannot run here; the test is skipped with the reason;
- ``continue``: the block goes on from the one before it, in its folder (and, for Python,
  after the earlier Python blocks of the chain, whose names it uses);
- ``file PATH``: the block is the file PATH (written into the folder; a Python one also runs);
- ``excerpt PATH``: the block's lines are lines of the repository's file PATH, in order
  (comments aside; the docs may leave lines out);
- ``pytest``: the block is a test module, run by pytest, which must pass;
- ``serve``: the block starts a server on port 8000: it is run on a free port instead, its
  printed lines compared, ``/api/health`` asked, and it is stopped with Ctrl-C;
- ``client``: the block talks to a server on ``http://127.0.0.1:8000`` with
  ``$ATOMITON_TOKEN``: a real ``atomiton serve`` on a free port answers instead;
- ``venv``: the chain runs in a fresh virtualenv layered on the test environment, so what it
  installs never reaches the test environment;
- ``scaffold-readme``: the chain goes on with the blocks of the README the chain's
  ``atomiton plugin new`` wrote;
- ``slow``: the test is marked slow.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
DOCS = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_gen" not in p.parts),
]
SHELL = {"bash", "sh", "shell"}
RUNNABLE = SHELL | {"console", "python"}
DIRECTIVES = {
    "skip",
    "continue",
    "file",
    "excerpt",
    "pytest",
    "serve",
    "client",
    "venv",
    "scaffold-readme",
    "slow",
}
TIMEOUT = 180

_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>```+|~~~+)(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
_SHOWS = re.compile(r"#\s*->\s?(?P<text>.*)$")
_SERVED = re.compile(r"(https?://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class Block:
    """A fenced block of a markdown file, with the directives of the marker before it."""

    file: str
    line: int
    lang: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUNNABLE or bool(self.directives.keys() - {"slow"})

    @property
    def is_flow(self) -> bool:
        return self.lang == "yaml" and bool(
            re.search(r"^id:", self.code, re.M) and re.search(r"^nodes:", self.code, re.M)
        )


def parse_directives(body: str, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    parts, depth, current = [], 0, ""
    for char in body:  # ';' separates directives, except inside a (reason)
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    for part in filter(None, (p.strip() for p in parts)):
        name, _, arg = part.partition(" ")
        assert name in DIRECTIVES, f"{where}: unknown docs-test directive {name!r} in {body!r}"
        arg = arg.strip()
        if arg.startswith("(") and arg.endswith(")"):
            arg = arg[1:-1].strip()
        found[name] = arg
    if "skip" in found:
        assert found["skip"], f"{where}: a skipped block must say why: skip (reason)"
    return found


def blocks_of(text: str, file: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        assert end < len(lines), f"{file}:{i + 1}: the block is not closed"
        body = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _MARKER.match(lines[before]) if before >= 0 else None
        where = f"{file}:{i + 1}"
        directives = parse_directives(marker["body"], where) if marker else {}
        blocks.append(Block(file, i + 1, m["lang"].lower(), body, directives))
        i = end + 1
    return blocks


def chains_of(blocks: list[Block]) -> list[list[Block]]:
    """The blocks that run, grouped: a block marked ``continue`` joins the chain before it."""
    chains: list[list[Block]] = []
    for block in blocks:
        if "continue" in block.directives:
            assert chains, f"{block.where}: 'continue' with no block before it"
            chains[-1].append(block)
        elif block.runs or block.is_flow:
            chains.append([block])
    return chains


def _doc_chains() -> list[list[Block]]:
    found: list[list[Block]] = []
    for path in DOCS:
        found.extend(chains_of(blocks_of(path.read_text(), path.relative_to(ROOT).as_posix())))
    return found


CHAINS = _doc_chains()


# -- comparing what a block shows with what it printed ---------------------------------------

_NORMAL = [
    (re.compile(r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?"), "<when>"),
    (re.compile(r"\b\d+(\.\d+)? ?(ms|s)\b"), "<time>"),
]


def normalise(text: str) -> str:
    for pattern, replacement in _NORMAL:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in re.split(r"\s*…\s*", normalise(expected))]
    return re.compile(".*?".join(parts))


def assert_shows(where: str, expected: list[str], printed: str) -> None:
    """Each expected line is found in ``printed``, in order (wrapping and blanks ignored)."""
    flat = normalise(printed)
    at = 0
    for line in expected:
        if not line.strip():
            continue
        found = _pattern(line).search(flat, at)
        assert found, (
            f"{where}: the docs show {line.strip()!r}, which is not in what it printed "
            f"(from where the lines before it were found):\n{printed}"
        )
        at = found.end()


def shown_by_comments(code: str) -> list[str]:
    return [m["text"] for line in code.splitlines() if (m := _SHOWS.search(line))]


@dataclass
class Command:
    text: str
    output: list[str]


def console_commands(code: str) -> list[Command]:
    commands: list[Command] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            text = line[2:]
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text += "\n" + lines[i]
            commands.append(Command(text, []))
        else:
            assert commands, f"console block starts without a '$ ' command: {line!r}"
            commands[-1].output.append(line)
        i += 1
    return commands


# -- where a chain runs ----------------------------------------------------------------------


@dataclass
class Session:
    """A user's terminal: a folder laid out like a checkout, its environment, its history."""

    home: Path
    cwd: Path
    env: dict[str, str]
    python_code: list[str] = field(default_factory=list)
    venv: bool = False

    @classmethod
    def fresh(cls, tmp: Path) -> Session:
        work = tmp / "checkout"
        work.mkdir(parents=True)
        shutil.copytree(ROOT / "examples", work / "examples")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ATOMITON_", "PYTEST_", "COV_")) and k != "PYTHONPATH"
        }
        env.update(
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            HOME=str(tmp / "home"),
            XDG_CONFIG_HOME=str(tmp / "config"),
            XDG_DATA_HOME=str(tmp / "data"),
            ATOMITON_STORAGE=str(tmp / "storage"),
            COLUMNS="400",
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        (tmp / "home").mkdir()
        return cls(home=tmp, cwd=work, env=env)

    def python(self) -> str:
        found = shutil.which("python", path=self.env["PATH"])
        assert found, self.env["PATH"]
        return found

    def run(self, args: list[str], where: str) -> subprocess.CompletedProcess[str]:
        """Run ``args`` here; stdout and stderr together, as a terminal shows them. Past the
        timeout the whole process group is killed, so no server a block starts outlives it."""
        with subprocess.Popen(
            args,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                out, _ = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                pytest.fail(f"{where}: still running after {TIMEOUT} s:\n{out}")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # what it left running in background
        return subprocess.CompletedProcess(args, proc.returncode, out)

    def bash(self, script: str, where: str) -> subprocess.CompletedProcess[str]:
        """Run ``script`` in bash; the folder it ends in is where the chain goes on."""
        pwd = self.home / f"pwd-{uuid.uuid4().hex}"
        done = self.run(["bash", "-c", f"trap 'pwd > {pwd}' EXIT\n{script}"], where)
        if pwd.exists():
            self.cwd = Path(pwd.read_text().strip())
        return done

    def layer_venv(self) -> None:
        """A virtualenv that sees the test environment's packages (a ``.pth``), first on PATH."""
        venv = self.home / "venv"
        made = subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)],
            capture_output=True,
            text=True,
        )
        assert made.returncode == 0, made.stderr
        python = venv / "bin" / "python"
        site = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        parent = sysconfig.get_path("purelib")
        Path(site, "_docs_test_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
        # the scripts pip would have put here, had it installed the packages into this venv
        for script, module in {
            "pip": "pip",
            "pytest": "pytest",
            "atomiton": "atomiton_core",
        }.items():
            path = venv / "bin" / script
            path.write_text(f'#!/bin/sh\nexec "{python}" -m {module} "$@"\n')
            path.chmod(0o755)
        self.env["PATH"] = f"{venv / 'bin'}{os.pathsep}{self.env['PATH']}"
        self.env["VIRTUAL_ENV"] = str(venv)
        self.venv = True


# -- running one block ------------------------------------------------------------------------


def run_block(session: Session, block: Block) -> None:
    d = block.directives
    if block.lang in RUNNABLE and re.search(r"\bpip install\b", block.code):
        assert session.venv, f"{block.where}: installs packages: its chain needs 'venv'"
    if "excerpt" in d:
        assert_excerpt(block, ROOT / d["excerpt"])
        return
    if "file" in d:
        target = session.cwd / d["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
    if block.is_flow:
        path = d.get("file") or f"docs-test-{block.line}.flow.yaml"
        if "file" not in d:
            (session.cwd / path).write_text(block.code)
        done = session.run(["atomiton", "validate", path], block.where)
        assert done.returncode == 0, f"{block.where}: the flow does not validate:\n{done.stdout}"
    elif block.lang == "python" and "pytest" in d:
        run_pytest_block(session, block)
    elif block.lang == "python" and "serve" in d:
        run_server_block(session, block, [session.python(), "-c", _serving(block.code)])
    elif block.lang == "python" and "client" in d:
        with atomiton_serve(session) as url:
            run_python_block(session, block, block.code.replace("http://127.0.0.1:8000", url))
    elif block.lang == "python":
        run_python_block(session, block, block.code)
    elif block.lang == "console" and "serve" in d:
        (command,) = console_commands(block.code)
        script = _serving(command.text)
        run_server_block(session, block, ["bash", "-c", f"exec {script}"], command.output)
    elif block.lang == "console":
        run_console_block(session, block)
    elif block.lang in SHELL:
        done = session.bash(f"set -eo pipefail\n{block.code}", block.where)
        assert done.returncode == 0, f"{block.where}: exit {done.returncode}:\n{done.stdout}"
        assert_shows(block.where, shown_by_comments(block.code), done.stdout)
        assert "Traceback" not in done.stdout, f"{block.where}:\n{done.stdout}"


def _lines(text: str) -> list[str]:
    """The lines of a file, comments (``#`` after a blank) and blank lines left out."""
    stripped = (re.sub(r"(^|\s+)#.*$", "", line).rstrip() for line in text.splitlines())
    return [line for line in stripped if line]


def assert_excerpt(block: Block, path: Path) -> None:
    """The block's lines are lines of the file, in order (the docs may leave some out)."""
    whole = _lines(path.read_text())
    at = 0
    for line in _lines(block.code):
        try:
            at = whole.index(line, at) + 1
        except ValueError:
            pytest.fail(f"{block.where}: {line.strip()!r} is not a line of {path.name} (in order)")


def run_python_block(session: Session, block: Block, code: str) -> None:
    mark = f"@@docs-test {uuid.uuid4().hex}"
    earlier = "\n".join(session.python_code)
    script = f"{earlier}\nprint({mark!r}, flush=True)\n{code}" if earlier else code
    done = session.run([session.python(), "-c", script], block.where)
    assert done.returncode == 0, f"{block.where}: exit {done.returncode}:\n{done.stdout}"
    printed = done.stdout.split(mark, 1)[-1]
    assert_shows(block.where, shown_by_comments(code), printed)
    session.python_code.append(code)


def run_pytest_block(session: Session, block: Block) -> None:
    name = re.sub(r"\W", "_", Path(block.file).stem)
    module = f"tests/test_docs_{name}_{block.line}.py"
    (session.cwd / "tests").mkdir(exist_ok=True)
    (session.cwd / module).write_text(block.code)
    done = session.run(
        [session.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", module], block.where
    )
    assert done.returncode == 0, f"{block.where}: pytest exit {done.returncode}:\n{done.stdout}"
    assert re.search(r"\b\d+ passed\b", done.stdout), done.stdout
    assert_shows(block.where, shown_by_comments(block.code), done.stdout)


def run_console_block(session: Session, block: Block) -> None:
    commands = console_commands(block.code)
    script = []
    marks = []
    for command in commands:
        mark = f"@@docs-test {uuid.uuid4().hex}"
        marks.append(mark)
        script.append(f"{command.text}\n__rc=$?\necho\necho {mark} $__rc\n(exit $__rc)")
    done = session.bash("\n".join(script), block.where)
    rest = done.stdout
    for i, (command, mark) in enumerate(zip(commands, marks, strict=True)):
        printed, found, rest = rest.partition(mark)
        assert found, (
            f"{block.where}: the block stopped before the end of {command.text!r}:\n{done.stdout}"
        )
        code, _, rest = rest.partition("\n")
        shown_code = i + 1 < len(commands) and commands[i + 1].text.strip() == "echo $?"
        assert code.strip() == "0" or shown_code, (
            f"{block.where}: {command.text!r} exited {code.strip()}:\n{printed}"
        )
        if "Traceback" not in "\n".join(command.output):
            assert "Traceback" not in printed, f"{block.where}: {command.text!r}:\n{printed}"
        assert_shows(f"{block.where} ({command.text})", command.output, printed)


def _serving(text: str) -> str:
    """The server's code or command, on a free port instead of 8000."""
    text = re.sub(r"\bport=8000\b", "port=0", text)
    text = re.sub(r"--port[ =]8000\b", "--port 0", text)
    if re.match(r"\s*atomiton serve\b", text) and "--port" not in text:
        text += " --port 0"
    return text


def run_server_block(
    session: Session, block: Block, args: list[str], shown: list[str] | None = None
) -> None:
    """Start the block's server, wait for its address, ask it, stop it with Ctrl-C."""
    with _started(session, args) as server:
        url = server.address()
        assert url, f"{block.where}: no address printed:\n{server.printed}"
        health = httpx.get(f"{url}/api/health", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
    printed = server.printed
    code = server.proc.returncode
    assert code == 0, f"{block.where}: exit {code} on Ctrl-C:\n{printed}"
    assert "Traceback" not in printed, f"{block.where}:\n{printed}"
    assert_shows(block.where, shown or [], printed)


@contextlib.contextmanager
def atomiton_serve(session: Session) -> Iterator[str]:
    """A real ``atomiton serve`` on a free port, with a fresh ``$ATOMITON_TOKEN``: its URL."""
    session.env["ATOMITON_TOKEN"] = uuid.uuid4().hex
    args = ["atomiton", "serve", "--port", "0", "--storage", str(session.home / "served")]
    with _started(session, args) as server:
        url = server.address()
        assert url, f"atomiton serve printed no address:\n{server.printed}"
        yield url


@contextlib.contextmanager
def _started(session: Session, args: list[str]) -> Iterator[Server]:
    """A server process, stopped with Ctrl-C (SIGINT to its process group) at the end."""
    proc = subprocess.Popen(
        args,
        cwd=session.cwd,
        env=session.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    server = Server(proc)
    reader = threading.Thread(target=server.read, daemon=True)
    reader.start()
    try:
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()


@dataclass
class Server:
    """A server process and what it has printed so far (read by a thread)."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    named: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if _SERVED.search(line):
                self.named.set()
        self.named.set()

    @property
    def printed(self) -> str:
        return "".join(self.lines)

    def address(self) -> str | None:
        """The address it printed first (waiting up to a minute for it)."""
        self.named.wait(60)
        found = _SERVED.search(self.printed)
        return found.group(1) if found else None


def _installed() -> set[str]:
    return {p.name for p in Path(sysconfig.get_path("purelib")).glob("*.dist-info")}


def run_chain(tmp_path: Path, chain: list[Block]) -> None:
    session = Session.fresh(tmp_path)
    if "venv" in chain[0].directives:
        session.layer_venv()
    before = _installed()
    try:
        for block in chain:
            run_block(session, block)
            if "scaffold-readme" in block.directives:
                readme = session.cwd / "README.md"
                for more in blocks_of(readme.read_text(), "scaffold README.md"):
                    if "skip" not in more.directives and (more.runs or more.is_flow):
                        run_block(session, more)
    finally:
        added = _installed() - before
        assert not added, f"{chain[0].where}: installed into the test environment: {added}"


# -- the tests --------------------------------------------------------------------------------


def _params() -> list[object]:
    params: list[object] = []
    for chain in CHAINS:
        first = chain[0]
        marks: list[pytest.MarkDecorator] = []
        if any("slow" in b.directives for b in chain):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(chain, id=first.where, marks=marks))
    return params


@pytest.mark.parametrize("chain", _params())
def test_example_runs_as_pasted(tmp_path: Path, chain: list[Block]) -> None:
    skipped = [b for b in chain if "skip" in b.directives]
    if skipped:
        assert len(chain) == 1, f"{chain[0].where}: a skipped block stands alone (no continue)"
        pytest.skip(f"{chain[0].where}: {skipped[0].directives['skip']}")
    run_chain(tmp_path, chain)


def test_every_block_of_commands_or_python_is_in_a_language_the_test_runs() -> None:
    """A ``py``, ``pycon`` or ``shell-session`` block would be left out silently."""
    aliases = {"py", "pycon", "python3", "zsh", "shell-session", "sh-session", "bash-session"}
    for path in DOCS:
        for block in blocks_of(path.read_text(), path.name):
            assert block.lang not in aliases, f"{block.where}: write it as python, bash or console"
    ran = [b for chain in CHAINS for b in chain]
    assert len(ran) >= 30, len(ran)
    skipped = [b.where for b in ran if "skip" in b.directives]
    assert len(skipped) <= 3, f"more blocks opt out than before: {skipped}; run a reduced form"


def test_the_scaffold_readme_flow_runs_on_the_scaffold_node(tmp_path: Path) -> None:
    """The README ``plugin new`` writes, rendered for another name: its flow runs its node."""
    session = Session.fresh(tmp_path)
    made = session.run(["atomiton", "plugin", "new", "atomiton-nodes-sample"], "plugin new")
    assert made.returncode == 0, made.stdout
    project = session.cwd / "atomiton-nodes-sample"
    blocks = blocks_of((project / "README.md").read_text(), "scaffold README.md")
    (flow,) = [b for b in blocks if b.is_flow]
    assert "sample.scale" in flow.code and flow.directives == {"file": "examples/scale.flow.yaml"}
    (session.cwd / "scale.flow.yaml").write_text(flow.code)
    script = (
        "from atomiton_core import create_conductor\n"
        "from atomiton_nodes_sample import plugin\n"
        "conductor = create_conductor('memory://sample', plugins=[plugin])\n"
        "result = conductor.run('scale.flow.yaml')\n"
        "print(result.status, result.outputs)\n"
    )
    session.env["PYTHONPATH"] = str(project / "src")
    done = session.run([session.python(), "-c", script], "scaffold README")
    assert done.returncode == 0, done.stdout
    assert_shows(
        "scaffold README",
        ["completed {'scale': {'values': [2.5, 6.25, 10.0], 'total': 18.75}}"],
        done.stdout,
    )


BROKEN = {
    "python prints otherwise": ("python", "print(1 + 1)  # -> 3\n", "the docs show '3'"),
    "python raises": ("python", "import nowhere_to_be_found\n", "exit 1"),
    "console prints otherwise": ("console", "$ echo hello\nhallo\n", "the docs show 'hallo'"),
    "console fails unshown": ("console", "$ false\n", "exited 1"),
    "shell fails": ("bash", "true\nfalse\necho never\n", "exit 1"),
    "flow does not validate": (
        "yaml",
        "id: f\nname: F\nnodes:\n  - {id: a, type: nowhere}\n",
        "does not validate",
    ),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_example_fails_the_test(tmp_path: Path, name: str) -> None:
    lang, code, message = BROKEN[name]
    with pytest.raises(AssertionError, match=re.escape(message)):
        run_block(Session.fresh(tmp_path), Block("broken.md", 1, lang, code))


def test_what_a_block_shows_is_compared_without_ids_times_or_wrapping() -> None:
    printed = (
        "completed in 12.3 ms (execution 9f71318b42d94524be6579f4524ec14d)\n  on\n 127.0.0.1:41159"
    )
    assert_shows("here", ["completed in 0.5 ms (execution …) on", "127.0.0.1:8000"], printed)
    with pytest.raises(AssertionError):
        assert_shows("here", ["127.0.0.1:8000", "completed"], printed)  # out of order
