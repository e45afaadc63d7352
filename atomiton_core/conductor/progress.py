"""Progress: how far a run is, from finished nodes and the fractions running nodes report.

Each graph level counts its finished nodes and keeps the reported fraction of each running
one; a container's children fill the container's own fraction over the ``span`` they were
given, so nested loops report smoothly. The run's overall progress only ever goes up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atomiton_core.conductor.scheduler import GraphRun

__all__ = ["GraphProgress", "overall"]


class GraphProgress:
    """The progress part of a :class:`~atomiton_core.conductor.scheduler.GraphRun`."""

    __slots__ = ("finished", "frac", "frac_sum", "n", "parent", "parent_index", "span")

    n: int
    finished: int
    #: Reported fractions of running nodes, and their sum.
    frac: dict[int, float]
    frac_sum: float
    #: The part of the parent node's progress this graph accounts for (None: none).
    span: tuple[float, float] | None
    #: The graph and node index this graph runs the children of (None: the top level).
    parent: GraphRun | None
    parent_index: int

    def set_fraction(self, i: int, fraction: float) -> None:
        old = self.frac.get(i, 0.0)
        if fraction > old:
            self.frac[i] = fraction
            self.frac_sum += fraction - old
            if self.span is not None and self.parent is not None:
                self.propagate()

    def node_finished(self, i: int) -> None:
        self.finished += 1
        frac = self.frac
        if frac and i in frac:
            self.frac_sum -= frac.pop(i)

    def fraction(self) -> float:
        return (self.finished + self.frac_sum) / self.n if self.n else 1.0

    def propagate(self) -> None:
        parent = self.parent
        span = self.span
        if parent is not None and span is not None:
            start, end = span
            parent.set_fraction(self.parent_index, start + (end - start) * self.fraction())


def overall(top: GraphProgress | None, last: float) -> float:
    """The run's progress now: never below ``last``, never above 1."""
    if top is not None and top.n:
        value = (top.finished + top.frac_sum) / top.n
        if value > last:
            return min(value, 1.0)
    return last
