"""Execution settings: the reserved parameters every node accepts, beside the flow model.

They sit in a node's ``parameters`` as in the original (``timeout: 5000``, ``retries: 2``), are
parsed once when a flow is planned and are all enforced by the conductor (``conductor/attempts``
for timeout, retries and backoff; the scheduler for ``enabled`` and ``continueOnFail``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["RESERVED_PARAMETERS", "ExecutionSettings"]

#: Parameter names every node accepts; a node type's own parameters may not use them.
RESERVED_PARAMETERS = frozenset({"enabled", "timeout", "retries", "retryDelay", "continueOnFail"})


class ExecutionSettings(BaseModel):
    """The reserved parameters every node accepts; all enforced by the conductor."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel, frozen=True)

    enabled: bool = True
    #: Per-attempt timeout in milliseconds.
    timeout: float | None = Field(None, gt=0)
    retries: int = Field(0, ge=0)
    #: Delay before the first retry in milliseconds; doubled for each further retry.
    retry_delay: float = Field(1000, ge=0)
    continue_on_fail: bool = False

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> ExecutionSettings:
        picked = {k: parameters[k] for k in RESERVED_PARAMETERS if k in parameters}
        if not picked:
            return _DEFAULT_SETTINGS
        return cls.model_validate(picked)


_DEFAULT_SETTINGS = ExecutionSettings()
