"""The ``shell-command`` node: run one program with arguments, never through a shell.

Why each rule is there:

- ``program`` + ``args`` go straight to ``execve``: no shell parses them, so ``;``, ``|``,
  ``$(...)`` in a value are just characters. Only ``args`` items and ``stdin`` containing
  ``{{`` are rendered, through the sandboxed Jinja2 templates of the core.
- The program runs as the leader of a new session (its own process group). When the node is
  timed out or cancelled, the whole group gets SIGTERM, then SIGKILL after
  ``killGracePeriod``; children it spawned go too. The node then re-raises, so the conductor
  reports TIMEOUT or CANCELLED.
- stdout and stderr are read concurrently and kept up to ``maxOutputBytes`` each; the rest
  is read and thrown away so the program never blocks on a full pipe.
- Loader and interpreter injection variables are scrubbed from the environment (see
  :data:`SCRUBBED_ENVIRONMENT`).
- ``ctx.security.allowed_programs`` (conductor-wide) restricts which programs may run. Each
  entry is found on the conductor's own PATH and compared by real path, never through the
  node's ``environment``; an entry with arguments (``git log *``) holds the command line to
  that pattern (allowing a program with any arguments allows all it can do: ``git -c
  alias.x=!cmd`` runs a command); and the node's ``environment`` may only set the variables
  of the conductor config ``allowedEnvironment`` (``GIT_CONFIG_*`` would reconfigure git).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import fnmatch
import json
import math
import os
import shlex
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from atomiton_core import ExecutionError, NodeContext, Parameters, node
from atomiton_core.nodes.definition import accepts_original_names
from pydantic import Field, field_validator

__all__ = ["SCRUBBED_ENVIRONMENT", "SCRUBBED_PREFIXES", "ShellCommandParams", "shell_command"]

#: Variables a flow may set in ``environment`` when the conductor has allowedPrograms (the
#: conductor config key ``allowedEnvironment`` replaces the list).
DEFAULT_ALLOWED_ENVIRONMENT = frozenset({"LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "NO_COLOR"})

#: Variables that make the dynamic loader or an interpreter run code the flow did not name.
#: They are removed from the inherited environment and refused in ``environment``.
SCRUBBED_ENVIRONMENT = frozenset(
    {
        # glibc / musl dynamic loader (GLIBC_TUNABLES: CVE-2023-4911) and iconv modules
        "GLIBC_TUNABLES",
        "GCONV_PATH",
        # shells: startup files and exported functions
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "PS4",
        # interpreters that load code from the environment
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
    }
)
#: Every variable starting with one of these is scrubbed too: ``LD_PRELOAD``,
#: ``LD_LIBRARY_PATH``, ``LD_AUDIT``... (Linux), ``DYLD_INSERT_LIBRARIES``... (macOS) and
#: bash's exported functions (``BASH_FUNC_name%%``).
SCRUBBED_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_")

_CHUNK = 64 * 1024
_TAIL = 2000
#: Output encodings that turn bytes into text without a codec (the original's, besides utf8).
_BINARY_TEXT = ("base64", "hex")
#: The shells the original's ``shell`` parameter could name that run here.
_SHELLS = ("bash", "sh", "zsh")


def is_scrubbed(name: str) -> bool:
    return name in SCRUBBED_ENVIRONMENT or name.startswith(SCRUBBED_PREFIXES)


class ShellCommandParams(Parameters):
    """The original's names are accepted too (its ``shell-command`` definitions):
    ``throwOnError``, ``maxBuffer``, ``env``, ``inheritStdio``, and its older ``command``
    (a shell command line) with ``shell``, which run as ``program: <shell>, args: [-c, line]``.
    """

    original_names: ClassVar[Mapping[str, str]] = {
        "command": "program",
        "shell": "program",
        "env": "environment",
        "inheritStdio": "captureOutput",
        "throwOnError": "failOnNonZeroExit",
        "maxBuffer": "maxOutputBytes",
    }
    _original = accepts_original_names()

    @classmethod
    def from_original(cls, data: dict[str, Any]) -> dict[str, Any]:
        _shell_line(data)
        env = data.pop("env", None)
        if env is not None:  # the original merged both; its `environment` wins
            own = data.get("environment", data.get("environment_", {}))
            data["environment"] = {**env, **own} if isinstance(own, dict) else own
        if "inheritStdio" in data:
            inherit = data.pop("inheritStdio")
            capture = next(
                (data[k] for k in ("captureOutput", "capture_output") if k in data), None
            )
            if isinstance(inherit, bool):
                if capture is not None and capture == inherit:
                    raise ValueError(
                        "'inheritStdio' (the original's) and 'captureOutput' disagree: give one"
                    )
                data["captureOutput"] = not inherit
        return super().from_original(data)

    program: str = Field(
        min_length=1,
        description="The program to run: a name looked up on PATH, or a path. Never a shell "
        "command line; put each argument in `args`",
    )
    args: list[str] = Field(
        default_factory=list,
        description="Arguments, passed as they are (no shell); items containing {{ }} are "
        "templates over `input` and the variables",
    )
    working_directory: str | None = Field(None, description="Directory to run in")
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Variables set over the inherited environment (loader and interpreter "
        "injection variables are refused)",
    )
    inherit_environment: bool = Field(
        True, description="Start from this process's environment (scrubbed); false: only PATH"
    )
    stdin: str | None = Field(
        None, description="Text fed to the program's standard input (a template if it has {{ }})"
    )
    capture_output: bool = Field(
        True, description="Collect stdout/stderr; false: they go to this process's own"
    )
    encoding: str | None = Field(
        "utf-8",
        description="Decode stdout/stderr with it (invalid bytes replaced); base64 / hex: the "
        "bytes as base64 / hex text; binary or null: bytes",
    )
    max_output_bytes: int = Field(
        10 * 1024 * 1024,
        ge=0,
        le=100 * 1024 * 1024,
        description="Keep at most this many bytes of stdout and of stderr; the rest is "
        "discarded and `truncated` is set",
    )
    kill_grace_period: float = Field(
        2000, ge=0, description="ms between `killSignal` and SIGKILL when the node is stopped"
    )
    kill_signal: str = Field(
        "SIGTERM",
        description="The signal the program's process group gets first when the node is "
        "stopped (SIGTERM, SIGINT, SIGHUP...); SIGKILL follows after killGracePeriod",
    )
    cpu_time_limit: int | None = Field(
        None, gt=0, description="CPU seconds the program may use (RLIMIT_CPU)"
    )
    fail_on_non_zero_exit: bool = Field(
        True, description="A non-zero exit fails the node; false: it is just a result"
    )

    @field_validator("args", mode="before")
    @classmethod
    def _json_args(cls, value: Any) -> Any:
        """The original also took ``args`` as a JSON array in a string."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(f"args {value!r} is not a JSON array of strings") from None
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None or value.lower() in ("binary", "buffer"):
            return None
        if value.lower() in _BINARY_TEXT:
            return value.lower()
        try:
            info = codecs.lookup(value)
        except LookupError:
            info = None
        if info is None or not getattr(info, "_is_text_encoding", True):
            raise ValueError(
                f"unknown encoding {value!r}; use e.g. utf-8, ascii, latin-1, base64, hex or binary"
            )
        return value

    @field_validator("kill_signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        name = value.upper() if value.upper().startswith("SIG") else f"SIG{value.upper()}"
        if name not in signal.Signals.__members__:
            raise ValueError(f"{value!r} is not a signal name, such as SIGTERM or SIGINT")
        return name

    @field_validator("environment")
    @classmethod
    def _no_injection(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(name for name in value if is_scrubbed(name))
        if bad:
            raise ValueError(
                f"environment variable(s) {bad} are not allowed: they make the loader or an "
                "interpreter run code the flow does not name (see SCRUBBED_ENVIRONMENT)"
            )
        return value

    @property
    def text_codec(self) -> str:
        """The codec for text going in (stdin) and for error messages."""
        enc = self.encoding
        return "utf-8" if enc is None or enc in _BINARY_TEXT else enc


def _shell_line(data: dict[str, Any]) -> None:
    """The original's ``command`` (a shell command line, its ``args`` joined after it as its
    ``spawn(..., {shell: true})`` did) becomes ``program: <shell>, args: [-c, line]``."""
    command = data.pop("command", None)
    shell = data.pop("shell", None)
    if command is None:
        if shell is not None:
            raise ValueError(
                "'shell' goes with the original's 'command'; 'program' runs without a shell"
            )
        return
    if "program" in data:
        raise ValueError("give 'program' (with 'args') or the original's 'command', not both")
    if not isinstance(command, str) or not command.strip():
        raise ValueError("'command' must be a shell command line, such as 'ls -la'")
    shell = shell if shell is not None else "bash"
    if shell not in _SHELLS:
        raise ValueError(f"shell {shell!r} does not run here; the shells are: {', '.join(_SHELLS)}")
    args = data.pop("args", [])
    if isinstance(args, str):
        args = json.loads(args) if args.lstrip().startswith("[") else [args]
    line = " ".join([command, *(str(a) for a in args)])
    if "{{" in line or "{%" in line:
        raise ValueError(
            "a shell command line cannot hold templates: the shell would parse the values "
            "they give; use 'program' with 'args', one templated value per argument"
        )
    data["program"] = shell
    data["args"] = ["-c", line]


def _environment(params: ShellCommandParams) -> dict[str, str]:
    if params.inherit_environment:
        env = {k: v for k, v in os.environ.items() if not is_scrubbed(k)}
    else:
        env = {"PATH": os.environ.get("PATH", os.defpath)}
    env.update(params.environment)
    return env


def _resolve(ctx: NodeContext, program: str, env: Mapping[str, str], cwd: str | None) -> str:
    """The absolute path of the program. Under an allow-list it is found on the conductor's
    own PATH, never the node's ``environment``, so a flow cannot put its own program first."""
    has_dir = os.sep in program or (os.altsep is not None and os.altsep in program)
    allowed = ctx.security.allowed_programs
    search = os.environ.get("PATH", os.defpath) if allowed is not None else env.get("PATH")
    if has_dir:
        path = os.path.abspath(os.path.join(cwd, program) if cwd else program)
        found = path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(program, path=search or os.defpath)
    if allowed is not None and found is None:
        raise _not_allowed(ctx, program, allowed)
    if found is None:
        where = "" if has_dir else f" on PATH={search or os.defpath!r}"
        raise ExecutionError(
            f"program {program!r} was not found{where} or is not executable",
            node_id=ctx.node_id,
            hint="give an absolute path, or set PATH in 'environment'",
        )
    return found


def _not_allowed(ctx: NodeContext, program: str, allowed: tuple[str, ...]) -> ExecutionError:
    return ExecutionError(
        f"program {program!r} is not in the conductor's allowedPrograms {sorted(allowed)}",
        node_id=ctx.node_id,
        hint="add its name or absolute path to the conductor's allowed_programs "
        "(create_conductor(security=Security(allowed_programs=[...]))), or use an "
        "allowed program",
    )


def _check_allowed(ctx: NodeContext, program: str, found: str, args: list[str]) -> None:
    """Under an allow-list: some entry names this program (by the real path it has on the
    conductor's PATH), and, when every such entry has arguments (``git log *``), the command
    line matches one of them."""
    allowed = ctx.security.allowed_programs
    if allowed is None:
        return
    real = os.path.realpath(found)
    patterns: list[list[str]] = []
    for entry in allowed:
        words = shlex.split(entry)
        if not words:
            continue
        name = words[0]
        target = name if os.sep in name else shutil.which(name, path=os.environ.get("PATH"))
        if target is not None and os.path.realpath(target) == real:
            patterns.append(words[1:])
    if not patterns:
        raise _not_allowed(ctx, program, allowed)
    if any(not p for p in patterns):
        return  # the program is allowed with any arguments
    line = shlex.join(args)
    if any(fnmatch.fnmatchcase(line, " ".join(p)) for p in patterns):
        return
    raise ExecutionError(
        f"the arguments {line!r} of {program!r} are not allowed by the conductor's "
        f"allowedPrograms {sorted(allowed)}",
        node_id=ctx.node_id,
        hint="allowedPrograms entries with arguments (e.g. 'git log *') hold the command line "
        "to that pattern",
    )


def _check_environment(ctx: NodeContext, params: ShellCommandParams) -> None:
    """Under an allow-list the flow's ``environment`` may only set the variables the
    conductor allows: variables such as ``GIT_CONFIG_*`` turn an allowed program into any."""
    if ctx.security.allowed_programs is None:
        return
    permitted = set(ctx.config.get("allowedEnvironment", DEFAULT_ALLOWED_ENVIRONMENT))
    extra = sorted(set(params.environment) - permitted)
    if extra:
        raise ExecutionError(
            f"environment variable(s) {extra} may not be set under allowedPrograms",
            node_id=ctx.node_id,
            hint="the conductor config 'allowedEnvironment' lists the variables flows may "
            f"set (default: {sorted(DEFAULT_ALLOWED_ENVIRONMENT)})",
        )


def _limits(ctx: NodeContext, params: ShellCommandParams) -> Callable[[], None] | None:
    """The program's rlimits: ``cpuTimeLimit`` or the execution setting ``cpuLimit``
    (seconds, the smaller wins), and ``memoryLimit`` (megabytes of address space)."""
    settings = ctx.settings
    cpus = [c for c in (params.cpu_time_limit, settings.cpu_limit) if c is not None]
    cpu = math.ceil(min(cpus)) if cpus else None
    memory = int(settings.memory_limit * 1024 * 1024) if settings.memory_limit else None
    if cpu is None and memory is None:
        return None
    import resource

    def apply() -> None:  # runs in the child between fork and exec: syscalls only
        if cpu is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return apply


def _stdin_bytes(
    ctx: NodeContext, params: ShellCommandParams, input: Any, port: Any
) -> bytes | None:
    value: Any = port if port is not None else params.stdin
    if value is None:
        return None
    if isinstance(value, str) and port is None:
        value = ctx.render(value, input=input)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if not isinstance(value, str):
        value = json.dumps(value, default=str)
    text: str = value
    try:
        return text.encode(params.text_codec)
    except UnicodeEncodeError as exc:
        raise ExecutionError(
            f"stdin cannot be encoded as {params.encoding}: {exc}",
            node_id=ctx.node_id,
            hint="set 'encoding', or send bytes to the stdin port",
        ) from None


class _Capped:
    """Reads a stream to its end, keeping the first ``cap`` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated = True


async def _feed(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if proc.stdin is None:
        return
    try:
        if data:
            proc.stdin.write(data)
            await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the program exited or closed stdin without reading it all: its choice
    finally:
        proc.stdin.close()


#: How often a running program's descendants are looked at (to kill them all at the end).
_WATCH_S = 0.05
#: How long output may stay open after the program exited, held by a child it left behind.
_LEFT_BEHIND_GRACE_S = 0.2


class _Family:
    """The processes a program started, looked at while it runs, so that those which left
    its process group (``setsid``, ``setpgid``, a shell's ``set -m`` jobs) are killed too.
    A process is known by its pid and start time, so a reused pid is never killed."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: dict[int, float] = {}

    def look(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(child.pid, child.create_time())

    def kill(self) -> None:
        import psutil

        for pid, started in self.seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == started:
                    proc.kill()


def _kill_pipe_holders(proc: asyncio.subprocess.Process) -> None:
    """Kill every process that holds the write end of the program's output pipes: what it
    left behind, wherever it went (Linux: ``/proc/<pid>/fd``)."""
    transport: Any = getattr(proc, "_transport", None)
    inodes: set[int] = set()
    for fd in (1, 2):
        pipe = transport.get_pipe_transport(fd) if transport is not None else None
        handle = pipe.get_extra_info("pipe") if pipe is not None else None
        if handle is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                inodes.add(os.fstat(handle.fileno()).st_ino)
    if not inodes or not os.path.isdir("/proc"):
        return
    wanted = {f"pipe:[{inode}]" for inode in inodes}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            for link in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{link}") in wanted:
                        os.kill(int(entry), signal.SIGKILL)
                        break


async def _ended(
    proc: asyncio.subprocess.Process,
    family: _Family,
    out: _Capped,
    err: _Capped,
    pumps: asyncio.Future[Any],
) -> int:
    """The program's exit code, once what it left behind holding its pipes is killed."""
    if not pumps.done():
        _signal_group(proc.pid, signal.SIGKILL)
        family.kill()
        _kill_pipe_holders(proc)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(pumps), 5)
    if pumps.done() and not pumps.cancelled() and pumps.exception() is not None:
        raise pumps.exception()  # type: ignore[misc]
    return await proc.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False if no process of the group is left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """True while a process of the group is alive; zombies do not count.

    Orphans are reparented to PID 1, which does not reap them in every container: the
    signal-0 probe alone would see their zombies as alive, so on Linux ``/proc`` decides.
    """
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


async def _terminate(
    proc: asyncio.subprocess.Process, grace_s: float, first: int = signal.SIGTERM
) -> None:
    """Signal the program's process group (``first``), SIGKILL what is left after ``grace_s``."""
    pgid = proc.pid
    try:
        if _signal_group(pgid, first):
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _group_alive(pgid):
                await asyncio.sleep(0.02)
    finally:
        _signal_group(pgid, signal.SIGKILL)
        if proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            # reap the leader; bounded, it was just SIGKILLed
            await asyncio.wait_for(asyncio.shield(proc.wait()), 5)


async def _finish_pipes(proc: asyncio.subprocess.Process, out: _Capped, err: _Capped) -> None:
    """Read the pipes to EOF after a kill, so their transports close (no leaked fds)."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        async with asyncio.timeout(1):
            await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))


def _decode(data: bytes | bytearray, encoding: str | None) -> str | bytes:
    if encoding is None:
        return bytes(data)
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    if encoding == "hex":
        return bytes(data).hex()
    return data.decode(encoding, errors="replace")


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


@node(
    "shell-command",
    params=ShellCommandParams,
    outputs={
        "output": dict,
        "stdout": str | bytes,
        "stderr": str | bytes,
        "exitCode": int,
    },
    name="Shell Command",
    category="system",
    icon="terminal",
    description="Run a program with arguments (no shell), with output caps, resource limits "
    "and the whole process group killed on timeout or cancel",
    own_limits=("cpuLimit", "memoryLimit"),
    # the original's default (definitions/shell-command: timeout 30000 ms); a flow's own wins
    settings={"timeout": 30_000},
)
async def shell_command(
    ctx: NodeContext, params: ShellCommandParams, input: Any = None, stdin: Any = None
) -> dict[str, Any]:
    cwd = params.working_directory
    if cwd is not None:
        cwd = str(ctx.render(cwd, input=input))
        if not os.path.isdir(cwd):
            raise ExecutionError(
                f"workingDirectory {cwd!r} is not a directory",
                node_id=ctx.node_id,
            )
    _check_environment(ctx, params)
    env = _environment(params)
    program = _resolve(ctx, params.program, env, cwd)
    args = [str(ctx.render(a, input=input)) if "{{" in a else a for a in params.args]
    _check_allowed(ctx, params.program, program, args)
    data = _stdin_bytes(ctx, params, input, stdin)
    capture = asyncio.subprocess.PIPE if params.capture_output else None
    out, err = _Capped(params.max_output_bytes), _Capped(params.max_output_bytes)
    t0 = time.perf_counter()
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            *args,
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            stdout=capture,
            stderr=capture,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_limits(ctx, params),
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or variable
        raise ExecutionError(
            f"cannot start {program!r}: {getattr(exc, 'strerror', None) or exc}",
            node_id=ctx.node_id,
        ) from exc
    ctx.logger.debug("started %s (pid %d)", program, proc.pid)
    family = _Family(proc.pid)
    pumps = asyncio.ensure_future(
        asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr), _feed(proc, data))
    )
    # how the pumps ended is looked at below when it matters; never "not retrieved"
    pumps.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        while True:
            done, _ = await asyncio.wait({pumps}, timeout=_WATCH_S)
            if done:
                break
            family.look()
            if proc.returncode is not None:
                # the program is done, but something it started holds its output open: give
                # it a moment, then it goes (the pipes end when it does)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pumps), _LEFT_BEHIND_GRACE_S)
                break
        code = await _ended(proc, family, out, err, pumps)
    except BaseException:  # timeout or cancel reach us as CancelledError
        pumps.cancel()
        await _terminate(proc, params.kill_grace_period / 1000, signal.Signals[params.kill_signal])
        family.kill()
        await _finish_pipes(proc, out, err)
        raise
    # the program is done; whatever it left running in its group (or outside it) goes with it
    _signal_group(proc.pid, signal.SIGKILL)
    family.kill()
    duration = (time.perf_counter() - t0) * 1000
    timed_out = code == -signal.SIGXCPU and (
        params.cpu_time_limit is not None or ctx.settings.cpu_limit is not None
    )
    tail = bytes(err.data[-_TAIL:])
    # one copy each, straight from the buffers, which then go: output is held once
    stdout, stderr = _decode(out.data, params.encoding), _decode(err.data, params.encoding)
    out.data, err.data = bytearray(), bytearray()
    result = {
        "stdout": stdout,
        "stderr": stderr,
        "exitCode": code,
        "duration": duration,
        "timedOut": timed_out,
        "truncated": out.truncated or err.truncated,
    }
    if code != 0 and params.fail_on_non_zero_exit:
        raise _failure(ctx, params, code, tail, timed_out, result)
    return {"output": result, "stdout": stdout, "stderr": stderr, "exitCode": code}


def _failure(
    ctx: NodeContext,
    params: ShellCommandParams,
    code: int,
    stderr: bytes,
    timed_out: bool,
    result: dict[str, Any],
) -> ExecutionError:
    if code < 0:
        how = f"was killed by {_signal_name(code)}"
        if timed_out:
            limits = [
                f"{name} of {value:g} s"
                for name, value in (
                    ("cpuTimeLimit", params.cpu_time_limit),
                    ("cpuLimit", ctx.settings.cpu_limit),
                )
                if value is not None
            ]
            how += f" ({' / '.join(limits)} exceeded)"
    else:
        how = f"exited with code {code}"
    tail = stderr[-_TAIL:].decode(params.text_codec, errors="replace").strip()
    message = f"program {params.program!r} {how}"
    message += f"; stderr ends with:\n{tail}" if tail else "; stderr was empty"
    return ExecutionError(
        message,
        node_id=ctx.node_id,
        hint="set failOnNonZeroExit: false to receive non-zero exits as results",
        retryable=True,  # a program may fail for a passing reason; `retries` decides
        exit_code=code,
        result=result,
    )
