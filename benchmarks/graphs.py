"""The three graph shapes, as predecessor lists in topological order, and their flows."""

from __future__ import annotations

import math
from collections.abc import Callable

from atomiton_core import Edge, Flow, NodeSpec

__all__ = ["SHAPES", "Graph", "chain", "fanout", "lattice", "to_flow"]

#: ``preds[i]`` lists the nodes node ``i`` depends on; every index is smaller than ``i``.
Graph = list[list[int]]


def chain(n: int) -> Graph:
    """A linear chain: each node depends on the one before it."""
    return [[]] + [[i - 1] for i in range(1, n)]


def fanout(n: int) -> Graph:
    """One source, ``n - 2`` independent nodes fed by it, one sink taking them all."""
    middle = range(1, n - 1)
    return [[]] + [[0] for _ in middle] + [list(middle)]


def lattice(n: int) -> Graph:
    """About sqrt(n) layers of sqrt(n) nodes; each node depends on two of the layer before."""
    layers = max(2, round(math.sqrt(n)))
    width = max(2, n // layers)
    preds: Graph = [[] for _ in range(width)]
    for layer in range(1, layers):
        base = (layer - 1) * width
        for j in range(width):
            preds.append([base + j, base + (j + 1) % width])
    return preds


SHAPES: dict[str, Callable[[int], Graph]] = {"chain": chain, "fanout": fanout, "lattice": lattice}


def to_flow(graph: Graph, node_type: str, flow_id: str) -> Flow:
    """The graph as a flow: node ``n{i}``, output port ``out`` to the multiple input ``x``."""
    nodes = [NodeSpec(id=f"n{i}", type=node_type) for i in range(len(graph))]
    edges = [
        Edge(source=f"n{p}", target=f"n{i}", source_handle="out", target_handle="x")
        for i, preds in enumerate(graph)
        for p in preds
    ]
    return Flow(id=flow_id, name=flow_id, nodes=nodes, edges=edges)
