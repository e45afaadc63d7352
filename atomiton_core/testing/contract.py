"""The node contract, checked property-based: ``check_node`` and :class:`ContractViolation`.

For any valid parameters and input values a node must

- ``declared-outputs``: return a dict of declared output ports only, every port declared with
  ``Port(required=True)`` present, each value an instance of the port's declared type;
- ``atomiton-errors``: fail only with an :class:`~atomiton_core.AtomitonError` (a bare
  exception is wrapped by the conductor into an ``ExecutionError``; that is a violation);
- ``inputs-not-mutated``: leave its input values as it found them;
- ``pure-deterministic``: give equal outputs for equal parameters and inputs, if declared
  ``pure=True``;
- ``timeout``: stop within a margin of its ``timeout`` parameter, and of a cancellation.

Type checks cover plain classes (``int``, ``str``, ``list``, a class of your own), their
unions (``int | None``), ``Annotated`` and the origin of generics (``list[int]`` is checked
as ``list``, its items are not); ``Any``, ``Literal``, type variables, protocols and
unresolved forward references are not checked. ``int`` passes for ``float`` (and ``int`` or
``float`` for ``complex``), as in type checkers.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure

from atomiton_core.errors import (
    AtomitonError,
    FlowValidationError,
    NodeTimeout,
    OutputContractError,
)
from atomiton_core.nodes.definition import NodeType, type_name
from atomiton_core.storage.flows import FlowStorage
from atomiton_core.testing.runner import (
    Children,
    NodeRunner,
    _no_running_loop,
    is_wrapped_exception,
)
from atomiton_core.testing.strategies import inputs_for, params_for

__all__ = ["RULES", "ContractViolation", "check_node"]

DECLARED_OUTPUTS = "declared-outputs"
ATOMITON_ERRORS = "atomiton-errors"
INPUTS_NOT_MUTATED = "inputs-not-mutated"
PURE_DETERMINISTIC = "pure-deterministic"
TIMEOUT = "timeout"

#: Every rule, in the order they are checked.
RULES: tuple[str, ...] = (
    DECLARED_OUTPUTS,
    ATOMITON_ERRORS,
    INPUTS_NOT_MUTATED,
    PURE_DETERMINISTIC,
    TIMEOUT,
)

_HINTS = {
    DECLARED_OUTPUTS: "return a dict whose keys are among the ports in @node(outputs=...), with "
    "values of the declared types, or declare the port",
    ATOMITON_ERRORS: "catch the exception and raise an AtomitonError subclass (e.g. "
    "ExecutionError(..., hint=...)) that says what was wrong with the input or parameters",
    INPUTS_NOT_MUTATED: "copy an input before changing it; other nodes may read the same value",
    PURE_DETERMINISTIC: "remove the source of randomness or time, or drop pure=True",
    TIMEOUT: "await, or check ctx.cancelled / ctx.stop_event in loops of sync nodes, so the "
    "conductor can stop the node",
}


class ContractViolation(AssertionError):
    """A node broke a rule of the node contract; the message names the type, rule and example."""

    def __init__(
        self,
        node_type: str,
        rule: str,
        problem: str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.node_type = node_type
        self.rule = rule
        self.problem = problem
        self.params = dict(params or {})
        self.inputs = dict(inputs or {})
        super().__init__(
            f"node type {node_type!r} broke the rule {rule!r}: {problem}\n"
            f"  params: {_short(self.params)}\n"
            f"  inputs: {_short(self.inputs)}\n"
            f"  hint: {_HINTS.get(rule, '')}"
        )


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- comparing and type checks ---------------------------------------------------------------
def same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN and a dict's key order does not matter."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return bool(a == b) if _numbers(a, b) else False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))


def checkable_classes(tp: Any) -> tuple[type, ...] | None:
    """The classes a value of type ``tp`` may be an instance of, or None if not checkable."""
    if tp is Any or tp is object:
        return None
    if tp is None or tp is type(None):
        return (type(None),)
    if tp is float:
        return (float, int)
    if tp is complex:
        return (complex, float, int)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return checkable_classes(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        found: list[type] = []
        for arg in typing.get_args(tp):
            classes = checkable_classes(arg)
            if classes is None:
                return None
            found.extend(classes)
        return tuple(found)
    if origin is not None:
        return (origin,) if isinstance(origin, type) else None
    if isinstance(tp, type) and not getattr(tp, "_is_protocol", False):
        return (tp,)
    return None


def _output_problems(nt: NodeType, out: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if nt.dynamic_outputs:
        return problems
    for name, port in nt.outputs.items():
        if name not in out:
            if port.required:
                problems.append(f"required output port {name!r} is missing")
            continue
        classes = checkable_classes(port.type)
        if classes is not None and not isinstance(out[name], classes):
            problems.append(
                f"output port {name!r} is declared {type_name(port.type)} but the node "
                f"returned {type(out[name]).__name__}: {_short(out[name], 80)}"
            )
    return problems


# -- one example -----------------------------------------------------------------------------
class _Outcome:
    __slots__ = ("error", "outputs", "seconds")

    def __init__(
        self, outputs: dict[str, Any] | None, error: AtomitonError | None, seconds: float
    ) -> None:
        self.outputs = outputs
        self.error = error
        self.seconds = seconds

    def describe(self) -> str:
        if self.error is not None:
            return f"{type(self.error).__name__}({self.error.code}): {self.error.message}"
        return f"outputs {_short(self.outputs, 120)}"

    def same_as(self, other: _Outcome) -> bool:
        if self.error is not None or other.error is not None:
            return (
                self.error is not None
                and other.error is not None
                and type(self.error) is type(other.error)
                and self.error.code == other.error.code
            )
        return same(self.outputs, other.outputs)


class _Checker:
    def __init__(
        self,
        runner: NodeRunner,
        nt: NodeType,
        rules: frozenset[str],
        timeout: float,
        margin: float,
        children: Children | None,
    ) -> None:
        self.runner = runner
        self.nt = nt
        self.rules = rules
        self.timeout = timeout
        self.margin = margin
        self.children = children

    def violation(
        self, rule: str, problem: str, params: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> ContractViolation:
        return ContractViolation(self.nt.id, rule, problem, params=params, inputs=inputs)

    async def once(self, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> _Outcome:
        t0 = time.perf_counter()
        try:
            out = await self.runner.arun(self.nt, params, inputs, children=self.children)
        except FlowValidationError:
            raise  # not an example of the node: see _example
        except AtomitonError as exc:
            return _Outcome(None, exc, time.perf_counter() - t0)
        return _Outcome(out, None, time.perf_counter() - t0)

    async def example(self, params: dict[str, Any], inputs: dict[str, Any]) -> None:
        rules = self.rules
        try:
            before = copy.deepcopy(inputs)
        except Exception:  # values that cannot be copied cannot be compared either
            before = None
        shown = before if before is not None else inputs

        def fresh() -> dict[str, Any]:
            return copy.deepcopy(before) if before is not None else inputs

        if TIMEOUT in rules:
            await self.check_timeout(params, fresh(), shown)
            await self.check_cancel(params, fresh(), shown)
        if not rules - {TIMEOUT}:
            return
        first = await self.once(params, inputs)
        if DECLARED_OUTPUTS in rules:
            self.check_outputs(first, params, shown)
        if ATOMITON_ERRORS in rules:
            self.check_error(first, params, shown)
        if INPUTS_NOT_MUTATED in rules and before is not None and not same(inputs, before):
            raise self.violation(
                INPUTS_NOT_MUTATED,
                f"it changed its input values; after the run they are {_short(inputs, 200)}",
                params,
                before,
            )
        if PURE_DETERMINISTIC in rules and self.nt.pure and before is not None:
            second = await self.once(params, fresh())
            if not first.same_as(second):
                raise self.violation(
                    PURE_DETERMINISTIC,
                    f"it is declared pure=True but two runs differ: first "
                    f"{first.describe()}, then {second.describe()}",
                    params,
                    shown,
                )

    def check_outputs(
        self, outcome: _Outcome, params: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> None:
        err = outcome.error
        if isinstance(err, OutputContractError):
            raise self.violation(DECLARED_OUTPUTS, err.message, params, inputs)
        if outcome.outputs is not None:
            problems = _output_problems(self.nt, outcome.outputs)
            if problems:
                raise self.violation(DECLARED_OUTPUTS, "; ".join(problems), params, inputs)

    def check_error(
        self, outcome: _Outcome, params: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> None:
        err = outcome.error
        if err is not None and is_wrapped_exception(err):
            cause = err.__cause__
            if cause is not None:
                detail = f"{type(cause).__name__}: {cause}"
            else:  # the conductor kept only the name of the exception
                detail = f"{err.context.get('exception_type')} ({err.message})"
            raise self.violation(
                ATOMITON_ERRORS,
                f"it raised {detail} (not an AtomitonError; the conductor wrapped it into an "
                "ExecutionError)",
                params,
                inputs,
            )

    def _with_timeout(self, params: Mapping[str, Any]) -> dict[str, Any]:
        timed = dict(params)
        timed["timeout"] = self.timeout * 1000
        timed["retries"] = 0
        return timed

    async def check_timeout(
        self, params: Mapping[str, Any], inputs: Mapping[str, Any], shown: Mapping[str, Any]
    ) -> None:
        outcome = await self.once(self._with_timeout(params), inputs)
        limit = self.timeout + self.margin
        if outcome.seconds > limit:
            ended = "timed out" if isinstance(outcome.error, NodeTimeout) else "ended"
            raise self.violation(
                TIMEOUT,
                f"run with timeout={self.timeout * 1000:g} ms, it {ended} only after "
                f"{outcome.seconds:.2f} s (allowed: {limit:.2f} s)",
                params,
                shown,
            )

    async def check_cancel(
        self, params: Mapping[str, Any], inputs: Mapping[str, Any], shown: Mapping[str, Any]
    ) -> None:
        execution = self.runner.start(self.nt, params, inputs, children=self.children)
        done = asyncio.ensure_future(execution.result())
        finished, _ = await asyncio.wait({done}, timeout=self.timeout)
        if finished:
            return
        execution.cancel()
        finished, _ = await asyncio.wait({done}, timeout=self.margin)
        if not finished:
            done.cancel()
            raise self.violation(
                TIMEOUT,
                f"cancelled after {self.timeout:g} s, it was still running {self.margin:g} s later",
                params,
                shown,
            )


def check_node(
    node_type: NodeType | str,
    *,
    params: st.SearchStrategy[dict[str, Any]] | None = None,
    inputs: st.SearchStrategy[dict[str, Any]] | None = None,
    input_strategies: Mapping[str, st.SearchStrategy[Any]] | None = None,
    children: Children | None = None,
    rules: Iterable[str] = RULES,
    max_examples: int = 25,
    timeout: float = 0.5,
    margin: float = 1.0,
    plugins: Iterable[Any] = (),
    autoload: bool | None = None,
    catalogue: Mapping[str, NodeType] | None = None,
    config: Mapping[str, Any] | None = None,
    storage: FlowStorage | None = None,
    hypothesis_settings: settings | None = None,
) -> None:
    """Check the node contract (see this module's doc) for generated parameters and inputs.

    ``params`` and ``inputs`` override the derived strategies (:func:`params_for`,
    :func:`inputs_for`); ``input_strategies`` overrides single ports (by port or type name).
    ``rules`` selects the rules to check (default: all, see :data:`RULES`);
    ``hypothesis_settings`` replaces the default settings (``max_examples``, no deadline).
    ``timeout`` (seconds) is the ``timeout`` parameter used by the timeout rule and how long
    it waits before cancelling; a run must end within ``margin`` seconds of either. Runs go
    through the real conductor (see :func:`run_node`; ``plugins``, ``autoload``,
    ``catalogue``, ``config``, ``storage`` as there). Raises :class:`ContractViolation` for
    hypothesis's minimal counterexample.

    A sync blocking node runs in a worker thread, which Python cannot interrupt: the conductor
    still reports the timeout in time, but the thread runs on until the function returns
    (for a sync node that loops, check ``ctx.cancelled``).
    """
    _no_running_loop("check_node()", "a sync test, or a worker thread")
    wanted = frozenset(rules)
    unknown = wanted - set(RULES)
    if unknown:
        raise ValueError(f"unknown rule(s) {sorted(unknown)}; the rules are {list(RULES)}")
    if autoload is None and isinstance(node_type, NodeType) and not plugins:
        autoload = False
    extra = [node_type] if isinstance(node_type, NodeType) else []
    runner = NodeRunner(
        extra,
        plugins=plugins,
        autoload=autoload,
        catalogue=catalogue,
        config=config,
        storage=storage,
    )
    try:
        nt = runner.resolve(node_type)
        params_strategy = params if params is not None else params_for(nt)
        inputs_strategy = (
            inputs
            if inputs is not None
            else inputs_for(
                nt,
                strategies=input_strategies,
                plugin_manager=runner.catalogue.plugin_manager,
            )
        )
        checker = _Checker(runner, nt, wanted - {TIMEOUT}, timeout, margin, children)
        chosen = hypothesis_settings or settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        )
        name = f"check_node[{nt.id}]"
        if checker.rules:

            @chosen
            @given(params=params_strategy, inputs=inputs_strategy)
            def contract(params: dict[str, Any], inputs: dict[str, Any]) -> None:
                _example(checker, params, inputs)

            contract.__name__ = contract.__qualname__ = name
            contract()
        if TIMEOUT in wanted:
            timer = _Checker(runner, nt, frozenset({TIMEOUT}), timeout, margin, children)

            # each slow example costs seconds: a few, and no shrinking
            @settings(
                chosen,
                max_examples=min(chosen.max_examples, 5),
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
            )
            @given(params=params_strategy, inputs=inputs_strategy)
            def timing(params: dict[str, Any], inputs: dict[str, Any]) -> None:
                _example(timer, params, inputs)

            timing.__name__ = timing.__qualname__ = name
            try:
                timing()
            except FlakyFailure as exc:  # slow once, fast on the replay: still a violation
                raise _first_violation(exc) from exc
    finally:
        runner.close()


def _example(checker: _Checker, params: dict[str, Any], inputs: dict[str, Any]) -> None:
    """One drawn example. Parameters and inputs that validation refuses (a value neither
    set nor connected, say) never reach the node: hypothesis draws others (and says so, with
    a failed health check, if it can find too few valid ones)."""
    try:
        asyncio.run(checker.example(params, inputs))
    except FlowValidationError:
        reject()


def _first_violation(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, ContractViolation):
            exc.add_note("timing-dependent: hypothesis could not reproduce it on every run")
            return exc
        if isinstance(exc, BaseExceptionGroup):
            return _first_violation(exc)
    return group
