"""Step-through debugging, fault injection and slow motion for one run.

A run started with any of ``breakpoints``, ``step``, ``inject`` or ``slow_mo`` (see
:meth:`~atomiton_core.conductor.conductor.Conductor.start`) has a :class:`Debugger`; a run
without one pays a single attribute test per node.

- **Breakpoints** name nodes by id or by path (``loop-1/resize``, ``group/*`` with shell-style
  wildcards). The run pauses *before* such a node runs, its inputs resolved and shown
  (:attr:`Debugger.paused`, the ``node.paused`` signal). While a run is paused no other node
  starts either (those that become ready wait behind it); nodes already running run to their
  end. :meth:`~Debugger.step` lets the first waiting node run and pauses again before the
  next one; :meth:`~Debugger.cont` lets every node run on to the next breakpoint;
  :meth:`~Debugger.abort` cancels the run. A paused node waits on a future of the event loop:
  it holds no thread, and the flow's timeout and its containers' timeouts stop while it is
  paused (each keeps the time it had left), so nothing times out because someone looked.
- **Fault injection** (``inject={"node": "error" | "timeout" | "delay:MS"}``), as the
  original's ``simulateError`` / ``simulateLongRunning``: each attempt of that node fails with
  an injected error, times out, or starts ``MS`` later (the delay counts towards the node's
  own timeout). Retries apply as to a real failure. The node's result (and its record) says
  what was injected (``NodeResult.injected``).
- **Slow motion** (``slow_mo=MS``, the original's ``slowMo``): every node starts ``MS``
  milliseconds after it is ready, so a run can be followed by eye.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from atomiton_core import signals
from atomiton_core.conductor.events import emit_node
from atomiton_core.errors import ConfigurationError, InjectedFault, NodeTimeout

if TYPE_CHECKING:
    from atomiton_core.conductor.plan import PlannedNode
    from atomiton_core.conductor.run import Run
    from atomiton_core.conductor.scheduler import GraphRun
    from atomiton_core.flow.models import Flow, NodeSpec
    from atomiton_core.results import NodeResult

__all__ = [
    "DebugOptions",
    "Debugger",
    "Injection",
    "PausedNode",
    "check_names",
    "parse_injections",
]

_perf = time.perf_counter
_now = time.time


@dataclass(frozen=True, slots=True)
class Injection:
    """What is injected into a node: ``error``, ``timeout`` or ``delay`` (``delay_ms``)."""

    kind: str
    delay_ms: float = 0.0

    def __str__(self) -> str:
        return f"delay:{self.delay_ms:g}" if self.kind == "delay" else self.kind

    @classmethod
    def parse(cls, text: str, node: str = "?") -> Injection:
        """``error``, ``timeout`` or ``delay:MS``; anything else is a ConfigurationError
        naming the node and the text."""
        value = str(text).strip()
        if value in ("error", "timeout"):
            return cls(value)
        kind, _, ms = value.partition(":")
        if kind == "delay":
            try:
                delay = float(ms)
            except ValueError:
                delay = -1.0
            if delay >= 0 and delay == delay and delay != float("inf"):
                return cls("delay", delay)
        raise ConfigurationError(
            f"cannot inject {value!r} into node {node!r}",
            hint="inject error, timeout or delay:MS (milliseconds, e.g. delay:500)",
        )

    async def apply(self, pn: PlannedNode, timeout_s: float | None) -> float | None:
        """Before an attempt: fail it, time it out, or wait; the node's timeout that is
        left (None: none)."""
        if self.kind == "error":
            raise InjectedFault(
                f"{pn.type_id} failed: an error was injected into node {pn.id!r}",
                node_id=pn.id,
                hint="the run was started with inject (--inject); run it without to see "
                "the node's own behaviour",
            )
        limit = timeout_s if timeout_s is not None else None
        if self.kind == "timeout" or (limit is not None and self.delay_ms / 1000 >= limit):
            if self.kind == "delay" and limit is not None:
                await asyncio.sleep(limit)
            after = f" after {limit * 1000:g} ms" if limit is not None else ""
            raise NodeTimeout(
                f"{pn.type_id} timed out{after} (injected: {self})",
                node_id=pn.id,
                hint="the run was started with inject (--inject); raise the node's 'timeout' "
                "if the delay is what it should bear"
                if self.kind == "delay"
                else "the run was started with inject (--inject); run it without to see the "
                "node's own behaviour",
            )
        await asyncio.sleep(self.delay_ms / 1000)
        return None if limit is None else limit - self.delay_ms / 1000


def parse_injections(spec: Mapping[str, str] | Iterable[str] | None) -> dict[str, Injection]:
    """``{"node": "error"}`` or ``["node=delay:500", ...]`` (the CLI's form) by node."""
    if not spec:
        return {}
    pairs: Iterable[tuple[str, str]]
    if isinstance(spec, Mapping):
        pairs = ((str(k), str(v)) for k, v in spec.items())
    else:
        listed = []
        for item in spec:
            node, sep, what = str(item).partition("=")
            if not sep or not node.strip():
                raise ConfigurationError(
                    f"cannot read the injection {item!r}",
                    hint="write NODE=error, NODE=timeout or NODE=delay:MS",
                )
            listed.append((node.strip(), what))
        pairs = listed
    return {node: Injection.parse(what, node) for node, what in pairs}


@dataclass(frozen=True, slots=True)
class DebugOptions:
    """What a run is started with to be debugged (see the module's notes)."""

    breakpoints: frozenset[str] = frozenset()
    injections: Mapping[str, Injection] = field(default_factory=dict)
    slow_mo_ms: float = 0.0
    #: Pause before the first node (step through from the start).
    step: bool = False

    @classmethod
    def of(
        cls,
        breakpoints: Iterable[str] | None = None,
        inject: Mapping[str, str] | Iterable[str] | None = None,
        slow_mo: float | None = None,
        step: bool = False,
    ) -> DebugOptions | None:
        """The options from what ``start`` takes; None when nothing is asked for."""
        if isinstance(breakpoints, str):
            breakpoints = [breakpoints]
        points = frozenset(str(b) for b in breakpoints or ())
        injections = parse_injections(inject)
        if slow_mo is not None and (not slow_mo >= 0 or slow_mo == float("inf")):
            raise ConfigurationError(
                f"slow_mo={slow_mo!r} is not a delay", hint="give milliseconds, 0 or more"
            )
        if not points and not injections and not slow_mo and not step:
            return None
        return cls(points, injections, float(slow_mo or 0.0), step)

    def check(self, flow: Flow) -> None:
        """Every breakpoint and injection names a node of the flow."""
        check_names(flow, "breakpoint", self.breakpoints)
        check_names(flow, "injection", self.injections)


def check_names(flow: Flow, what: str, names: Iterable[str]) -> None:
    """Each name is a node of ``flow``: its id, or a path whose parts are node ids
    (wildcards and a container's items are taken as they are); else a ConfigurationError
    naming it and the closest id."""
    known = _ids(flow.nodes)
    for name in names:
        parts = [p for p in name.split("/") if not p.startswith("iteration ")]
        if any(ch in name for ch in "*?[") or all(p in known for p in parts):
            continue
        close = difflib.get_close_matches(parts[-1], sorted(known), n=1)
        raise ConfigurationError(
            f"{what} {name!r} names no node of flow {flow.id!r}",
            hint=f"did you mean {close[0]!r}?"
            if close
            else "give a node id (or a path such as group/child)",
        )


def _ids(nodes: Iterable[NodeSpec]) -> set[str]:
    found: set[str] = set()
    for spec in nodes:
        found.add(spec.id)
        if spec.nodes:
            found |= _ids(spec.nodes)
    return found


@dataclass(frozen=True, slots=True)
class PausedNode:
    """A node the run paused before: who it is, its resolved inputs, why it paused."""

    node_id: str
    node_type: str
    path: str
    #: The inputs it will be called with (secrets masked).
    inputs: dict[str, Any]
    #: ``breakpoint``, or ``step`` (the run was being stepped through).
    reason: str
    #: When it paused (epoch seconds).
    since: float


@dataclass(slots=True)
class _Hold:
    paused: PausedNode
    gate: asyncio.Future[None]


@dataclass(slots=True)
class Debugger:
    """A run's breakpoints, injections and slow motion, and the nodes it holds paused."""

    run: Run
    breakpoints: set[str] = field(default_factory=set)
    injections: dict[str, Injection] = field(default_factory=dict)
    slow_mo_ms: float = 0.0
    #: Paused: every node that gets to start waits (a breakpoint was hit, or stepping).
    halted: bool = False
    _held: deque[_Hold] = field(default_factory=deque)
    _waiters: list[asyncio.Future[PausedNode | None]] = field(default_factory=list)
    #: Timeout scopes of the flow and of running containers: stopped while the run is paused.
    scopes: set[asyncio.Timeout] = field(default_factory=set)
    _paused_since: float | None = None
    #: Each timeout stopped while the run is paused, and the seconds it had left.
    _frozen: dict[asyncio.Timeout, float] = field(default_factory=dict)

    # -- what the scheduler asks -------------------------------------------------------
    def injection(self, pn: PlannedNode, path: str) -> Injection | None:
        found = self.injections.get(path)
        if found is None and "/" not in path:
            return self.injections.get(pn.id)
        if found is None:
            found = self.injections.get(pn.id)
        return found

    def _hits(self, pn: PlannedNode, path: str) -> bool:
        for bp in self.breakpoints:
            if bp == pn.id or bp == path or fnmatch.fnmatchcase(path, bp):
                return True
        return False

    async def before(self, graph: GraphRun, pn: PlannedNode, res: NodeResult, kwargs: Any) -> None:
        """Before a node starts: slow motion, then a pause while the run is halted or at
        a breakpoint. Raises CancelledError if the run is aborted meanwhile."""
        if self.slow_mo_ms:
            await asyncio.sleep(self.slow_mo_ms / 1000)
        reason = "step" if self.halted else "breakpoint" if self._hits(pn, res.path) else None
        if reason is None:
            return
        self.halted = True
        run = self.run
        shown = run.redactor.value(kwargs) if run.redactor.values else kwargs
        paused = PausedNode(pn.id, pn.type_id, res.path, dict(shown), reason, _now())
        hold = _Hold(paused, run.loop.create_future())
        self._held.append(hold)
        if self._paused_since is None:
            self._paused_since = _perf()
            self._freeze()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(paused)
        if signals.node_paused.receivers:
            emit_node(
                run,
                signals.node_paused,
                "node.paused",
                pn,
                res,
                inputs=paused.inputs,
                message=reason,  # breakpoint or step, as a skip says its reason
            )
        try:
            await hold.gate
        finally:
            if hold in self._held:  # cancelled while paused (the run's cancel, an abort)
                self._held.remove(hold)
                self._moved_on()

    # -- what the user asks ------------------------------------------------------------
    def set_breakpoints(self, names: Iterable[str]) -> None:
        """Replace the breakpoints (each checked to name a node of the flow); a node that
        is paused now stays paused."""
        points = {str(n) for n in names}
        check_names(self.run.plan.flow, "breakpoint", points)
        self.breakpoints = points

    @property
    def paused(self) -> tuple[PausedNode, ...]:
        """The nodes waiting to start, the first one first (``step`` lets it run)."""
        return tuple(h.paused for h in self._held)

    async def wait_paused(self) -> PausedNode | None:
        """The first paused node once the run pauses (at once if it is paused now); None
        when the run ends without pausing."""
        if self._held:
            return self._held[0].paused
        if self.run.result.status.value != "running":
            return None
        waiter: asyncio.Future[PausedNode | None] = self.run.loop.create_future()
        self._waiters.append(waiter)
        return await waiter

    def step(self) -> PausedNode | None:
        """Let the first paused node run, and pause before the next one that would start;
        the node let go, or None if none was paused."""
        if not self._held:
            self.halted = True  # pause before the next node
            return None
        hold = self._held.popleft()
        self.halted = True
        self._moved_on()
        if not hold.gate.done():
            hold.gate.set_result(None)
        return hold.paused

    def cont(self) -> int:
        """Let every paused node run on, to the next breakpoint; how many were paused."""
        self.halted = False
        released = 0
        while self._held:
            hold = self._held.popleft()
            if not hold.gate.done():
                hold.gate.set_result(None)
                released += 1
        self._moved_on()
        return released

    def abort(self) -> bool:
        """Cancel the run (its result says ``cancelled``: aborted in the debugger)."""
        self.halted = False
        run = self.run
        run.abort_reason = "aborted in the debugger"
        run.cancel_requested = True
        run.stop_event.set()
        task = run.task
        return task is not None and task.cancel()

    def ended(self) -> None:
        """The run is over: whoever waits for a pause hears None."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _freeze(self) -> None:
        """The run pauses: the timeouts running (the flow's, its containers') stop, each
        keeping the time it has left."""
        now = self.run.loop.time()
        for scope in self.scopes:
            when = scope.when()
            if when is not None and not scope.expired():
                self._frozen[scope] = max(0.0, when - now)
                scope.reschedule(None)

    def _moved_on(self) -> None:
        """A paused node was let go: when none is left, the timeouts go on with the time
        each had left when the run paused."""
        if self._held or self._paused_since is None:
            return
        self._paused_since = None
        now = self.run.loop.time()
        frozen, self._frozen = self._frozen, {}
        for scope, left in frozen.items():
            if not scope.expired():
                scope.reschedule(now + left)
