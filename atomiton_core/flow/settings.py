"""Execution settings: the reserved parameters every node accepts, beside the flow model.

They sit in a node's ``parameters`` as in the original (``timeout: 5000``, ``retries: 2``), are
parsed once when a flow is planned and are all enforced by the conductor (``conductor/attempts``
for timeout, retries and backoff; the scheduler for ``enabled`` and ``continueOnFail``;
``conductor/isolation`` for ``isolation`` and the limits of an isolated node; the scheduler and
``storage/cache`` for ``cache`` and ``cacheTtl``).

A node type may declare its own defaults for them (``@node(..., settings={"timeout": 5000})``);
a flow's value wins over the type's default.
"""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "ANNOTATIONS",
    "DEFAULT_SETTINGS",
    "LIMITS",
    "RESERVED_PARAMETERS",
    "ExecutionSettings",
    "Isolation",
    "Placement",
    "own_parameters",
]

#: Which of the conductor's executors runs a node: ``auto`` (blocking sync nodes on the
#: conductor's executor, a Dask cluster if it has one; the rest in its process), ``local``
#: (always in the conductor's process), ``dask`` (on the cluster, when the conductor has one).
Placement = Literal["auto", "local", "dask"]

#: Where a node's body runs: ``none`` (the conductor's loop or a thread, as its type says),
#: ``process`` (a worker process of the conductor's pool, killed on timeout or cancel).
Isolation = Literal["none", "process"]

#: Parameter names every node accepts; a node type's own parameters may not use them.
RESERVED_PARAMETERS = frozenset(
    {
        "enabled",
        "timeout",
        "retries",
        "retryDelay",
        "continueOnFail",
        "isolation",
        "cpuLimit",
        "memoryLimit",
        "processLimit",
        "cache",
        "cacheTtl",
        "executor",
        "resources",
    }
)
#: Parameters every node accepts that only annotate it (the original's common fields): kept
#: in the flow for editors and reports, never given to a node, unless its type declares a
#: parameter of that name itself (see :func:`own_parameters`).
ANNOTATIONS = frozenset({"label", "description"})


def own_parameters(
    parameters: Mapping[str, Any], model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """A node's parameters less the execution settings, and less the annotations unless its
    type's parameter ``model`` declares a parameter of that name."""
    declared: Container[str] = () if model is None else _annotations_declared(model)
    return {
        k: v
        for k, v in parameters.items()
        if k not in RESERVED_PARAMETERS and (k not in ANNOTATIONS or k in declared)
    }


class ExecutionSettings(BaseModel):
    """The reserved parameters every node accepts; all enforced by the conductor."""

    model_config = ConfigDict(
        populate_by_name=True, alias_generator=to_camel, frozen=True, extra="forbid"
    )

    enabled: bool = True
    #: Per-attempt timeout in milliseconds.
    timeout: float | None = Field(None, gt=0)
    retries: int = Field(0, ge=0)
    #: Delay before the first retry in milliseconds; doubled for each further retry.
    retry_delay: float = Field(1000, ge=0)
    continue_on_fail: bool = False
    #: ``process`` runs the node in a worker process (the limits below need it).
    isolation: Isolation = "none"
    #: Seconds of CPU an isolated attempt may use (the worker is killed beyond it).
    cpu_limit: float | None = Field(None, gt=0)
    #: Megabytes of memory an isolated attempt may add to its worker (allocation fails beyond).
    memory_limit: float | None = Field(None, gt=0)
    #: Processes an isolated attempt may start; ``0``: none.
    process_limit: int | None = Field(None, ge=0)
    #: Reuse the outputs of an earlier run of the same node on the same inputs (the
    #: conductor's cache in storage) instead of running it.
    cache: bool = False
    #: Seconds a cache entry stays good (None: until it is cleared).
    cache_ttl: float | None = Field(None, gt=0)
    #: Which executor runs the node (see :data:`Placement`).
    executor: Placement = "auto"
    #: Abstract resources a Dask task of this node needs (``{"GPU": 1}``): only workers that
    #: offer them run it (Dask's worker resources).
    resources: dict[str, float] | None = None

    @property
    def isolated(self) -> bool:
        return self.isolation == "process"

    def limits_without_isolation(self, own: frozenset[str] = frozenset()) -> list[str]:
        """The limits set (flow-file names) that only an isolated node can be held to: those
        of a node that is not isolated, less the ones its type enforces itself (``own``)."""
        if self.isolated:
            return []
        return [
            alias
            for name, alias in LIMITS.items()
            if getattr(self, name) is not None and alias not in own
        ]

    @classmethod
    def from_parameters(
        cls, parameters: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
    ) -> ExecutionSettings:
        """The settings among a node's ``parameters``, over its type's ``defaults``."""
        picked = {k: parameters[k] for k in RESERVED_PARAMETERS if k in parameters}
        if defaults:
            picked = {**defaults, **picked}
        if not picked:
            return DEFAULT_SETTINGS
        return cls.model_validate(picked)


@functools.cache
def _annotations_declared(model: type[BaseModel]) -> frozenset[str]:
    names = set(model.model_fields)
    names.update(info.alias for info in model.model_fields.values() if info.alias)
    return ANNOTATIONS & names


#: The limits, by field name and by their name in flow files.
LIMITS = {"cpu_limit": "cpuLimit", "memory_limit": "memoryLimit", "process_limit": "processLimit"}
#: The settings of a node that sets none (shared: settings are frozen).
DEFAULT_SETTINGS = ExecutionSettings()
