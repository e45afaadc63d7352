"""A flow as a picture: boxes, ports and edges laid out in layers, for the page to draw as SVG.

The layering and the order of the nodes in each layer (crossings reduced, long edges routed
through dummy points) are python-igraph's Sugiyama layout (``Graph.layout_sugiyama``); this
module only gives its layers and orders sizes: columns as wide as their widest box, boxes
stacked in igraph's order without overlapping, edges from an output port to an input port
through igraph's control points.

A container (a node with ``nodes``/``edges`` of its own: group, loop, parallel) is a box
holding its children's layout: the children are laid out first, so the box knows its size.
Its ports sit on its border, each used from both sides: an edge inside the container whose
source is the container's id leaves from a port on its left border, one whose target is the
container's id arrives at a port on its right border. A collapsed container (``collapsed``:
template paths) is drawn as one box.

Paths are *template* paths, ``container/child``: a loop's child has one box however many
iterations ran (``tag/iteration 3/is-big`` is drawn on ``tag/is-big``).

igraph is imported when a graph is first laid out (it comes with the ``server`` extra).
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic_core

from atomiton_core.conductor.plan import flow_digest
from atomiton_core.errors import ConfigurationError, FlowLoadError, StorageError
from atomiton_core.flow.models import Edge, Flow, NodeSpec
from atomiton_core.nodes.definition import NodeType
from atomiton_core.storage.flows import FlowStorage

__all__ = ["flow_graph", "run_graph", "skeleton_flow"]

#: Box geometry, in SVG user units (pixels at 100 %).
NODE_MIN_W = 164.0
NODE_MAX_W = 240.0
HEADER_H = 40.0
PORT_ROW = 16.0
BOTTOM_PAD = 8.0
CONTAINER_HEADER_H = 40.0
CONTAINER_PAD = 16.0
#: Horizontal gap between layers, vertical gap between boxes of one layer.
LAYER_GAP = 44.0
ROW_GAP = 20.0
#: igraph's order in a layer, in units: a step of its x is this much of ours.
ORDER_UNIT = 60.0
#: How far an edge runs straight out of its port before it turns.
STUB = 12.0
MARGIN = 20.0
CHAR_W = 6.5


def _igraph() -> Any:
    try:
        return importlib.import_module("igraph")
    except ImportError as exc:
        raise ConfigurationError(
            "drawing a flow's graph needs python-igraph",
            hint='pip install "atomiton-core[server]"',
        ) from exc


@dataclass
class _Port:
    name: str
    #: Declared by the node type (False: a dynamic port only an edge names).
    declared: bool
    connected: bool
    x: float = 0.0
    y: float = 0.0

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "x": self.x,
            "y": self.y,
            "declared": self.declared,
            "connected": self.connected,
        }


@dataclass
class _Box:
    spec: NodeSpec
    path: str
    parent: str | None
    node_type: NodeType | None
    inputs: list[_Port]
    outputs: list[_Port]
    w: float = 0.0
    h: float = 0.0
    x: float = 0.0
    y: float = 0.0
    collapsed: bool = False
    #: A container's laid-out children (empty when collapsed or a leaf).
    inner: _Level | None = None
    hidden_ports: dict[str, int] = field(default_factory=dict)

    @property
    def container(self) -> bool:
        return self.spec.is_container

    def move(self, dx: float, dy: float) -> None:
        self.x += dx
        self.y += dy
        for port in (*self.inputs, *self.outputs):
            port.x += dx
            port.y += dy
        if self.inner is not None:
            self.inner.move(dx, dy)


@dataclass
class _Line:
    edge: Edge
    source: str
    target: str
    parent: str | None
    points: list[list[float]]
    #: Starts (ends) at a port of the container it is in: that point is added when the
    #: container is placed.
    from_owner: bool = False
    to_owner: bool = False


@dataclass
class _Level:
    """One graph's boxes and edges: the flow's top level, or a container's children."""

    boxes: list[_Box]
    lines: list[_Line]
    w: float = 0.0
    h: float = 0.0

    def move(self, dx: float, dy: float) -> None:
        for box in self.boxes:
            box.move(dx, dy)
        for line in self.lines:
            for point in line.points:
                point[0] += dx
                point[1] += dy


def _text_w(text: str, extra: float = 0.0) -> float:
    return len(text) * CHAR_W + extra


class _Builder:
    def __init__(self, catalogue: Mapping[str, NodeType], collapsed: Collection[str]) -> None:
        self.catalogue = catalogue
        self.collapsed = frozenset(collapsed)
        self.problems: list[str] = []

    # -- ports -----------------------------------------------------------------------------
    def _ports(
        self,
        declared: Sequence[str],
        required: Collection[str],
        used: Sequence[str],
        *,
        keep_first: bool,
    ) -> tuple[list[_Port], int]:
        """The ports a box shows: declared ones that are connected or required (or, with
        ``keep_first`` and none connected, the first), then the undeclared ones edges use."""
        used_set = set(used)
        shown = [
            _Port(name, True, name in used_set)
            for name in declared
            if name in used_set or name in required
        ]
        if keep_first and not shown and declared:
            shown.append(_Port(declared[0], True, False))
        known = set(declared)
        extra: list[str] = []
        for name in used:
            if name not in known and name not in extra:
                extra.append(name)
        shown += [_Port(name, False, True) for name in extra]
        return shown, len(declared) - sum(p.declared for p in shown)

    def _box(
        self,
        spec: NodeSpec,
        path: str,
        parent: str | None,
        in_used: Sequence[str],
        out_used: Sequence[str],
    ) -> _Box:
        node_type = self.catalogue.get(spec.type)
        if node_type is None:
            self.problems.append(f"node {path!r}: unknown node type {spec.type!r}")
        inner_in: list[str] = []
        inner_out: list[str] = []
        if spec.is_container:
            for edge in spec.edges or ():
                if edge.source == spec.id:
                    inner_in.append(edge.source_handle)
                if edge.target == spec.id:
                    inner_out.append(edge.target_handle)
        declared_in = list(node_type.inputs) if node_type else []
        declared_out = list(node_type.outputs) if node_type else []
        required = set(node_type.required_inputs) if node_type else set()
        inputs, hidden_in = self._ports(
            declared_in, required, [*in_used, *inner_in], keep_first=False
        )
        outputs, hidden_out = self._ports(
            declared_out, (), [*inner_out, *out_used], keep_first=not spec.is_container
        )
        box = _Box(spec, path, parent, node_type, inputs, outputs)
        box.hidden_ports = {"inputs": hidden_in, "outputs": hidden_out}
        box.collapsed = spec.is_container and path in self.collapsed
        if spec.is_container and not box.collapsed:
            box.inner = self.level(spec.nodes or [], spec.edges or [], path, spec.id)
        self._size(box)
        return box

    def _size(self, box: _Box) -> None:
        spec = box.spec
        title = spec.name or spec.id
        rows = max(len(box.inputs), len(box.outputs), 1)
        labels = max((len(p.name) for p in (*box.inputs, *box.outputs)), default=0)
        # the title beside a count (x9), the type beside the state ("running 40%")
        wanted = max(_text_w(title, 48), _text_w(spec.type, 96))
        leaf_w = max(NODE_MIN_W, min(NODE_MAX_W, wanted))
        leaf_w = max(leaf_w, min(NODE_MAX_W, 2 * labels * CHAR_W + 40))
        if box.inner is None:
            box.w, box.h = leaf_w, HEADER_H + rows * PORT_ROW + BOTTOM_PAD
            return
        left = self._gutter(box.inputs)
        right = self._gutter(box.outputs)
        ports_h = CONTAINER_HEADER_H + rows * PORT_ROW + BOTTOM_PAD
        box.w = max(leaf_w, left + box.inner.w + right)
        box.h = max(ports_h, CONTAINER_HEADER_H + box.inner.h + CONTAINER_PAD)

    @staticmethod
    def _gutter(ports: Sequence[_Port]) -> float:
        if not ports:
            return CONTAINER_PAD
        return CONTAINER_PAD + min(96.0, max(_text_w(p.name) for p in ports)) + 8.0

    # -- placing ---------------------------------------------------------------------------
    def place(self, box: _Box, x: float, y: float) -> None:
        """Put ``box`` at (x, y): its ports on its sides, its children inside it."""
        box.x, box.y = x, y
        top = y + (CONTAINER_HEADER_H if box.inner is not None else HEADER_H)
        for i, port in enumerate(box.inputs):
            port.x, port.y = x, top + i * PORT_ROW + PORT_ROW / 2
        for i, port in enumerate(box.outputs):
            port.x, port.y = x + box.w, top + i * PORT_ROW + PORT_ROW / 2
        if box.inner is None:
            return
        left = self._gutter(box.inputs)
        right = self._gutter(box.outputs)
        room = box.w - left - right
        box.inner.move(x + left + (room - box.inner.w) / 2, y + CONTAINER_HEADER_H)
        for line in box.inner.lines:
            if line.from_owner:
                port = _find(box.inputs, line.edge.source_handle)
                line.points[:0] = [[port.x, port.y], [port.x + STUB, port.y]]
            if line.to_owner:
                port = _find(box.outputs, line.edge.target_handle)
                line.points += [[port.x - STUB, port.y], [port.x, port.y]]

    def level(
        self,
        specs: Sequence[NodeSpec],
        edges: Sequence[Edge],
        parent: str | None,
        owner: str | None,
    ) -> _Level:
        """Lay out one graph: its boxes (children first) at their places relative to (0, 0),
        then the edges between their ports."""
        unique: dict[str, NodeSpec] = {}
        for spec in specs:
            if spec.id in unique:
                where = f"{parent}/" if parent else ""
                self.problems.append(f"node {where}{spec.id}: a second node of that id; not drawn")
            else:
                unique[spec.id] = spec
        specs = list(unique.values())
        ids = list(unique)
        index = {node_id: i for i, node_id in enumerate(ids)}
        in_used: dict[str, list[str]] = {node_id: [] for node_id in ids}
        out_used: dict[str, list[str]] = {node_id: [] for node_id in ids}
        kept: list[Edge] = []
        for edge in edges:
            source_ok = edge.source in index or (owner is not None and edge.source == owner)
            target_ok = edge.target in index or (owner is not None and edge.target == owner)
            if not (source_ok and target_ok) or edge.source == edge.target:
                where = f"{parent}: " if parent else ""
                self.problems.append(
                    f"{where}edge {edge.source}.{edge.source_handle} -> "
                    f"{edge.target}.{edge.target_handle} joins no node it names; not drawn"
                )
                continue
            kept.append(edge)
            if edge.source in index:
                out_used[edge.source].append(edge.source_handle)
            if edge.target in index:
                in_used[edge.target].append(edge.target_handle)

        def child_path(node_id: str) -> str:
            return f"{parent}/{node_id}" if parent else node_id

        boxes = [
            self._box(s, child_path(s.id), parent, in_used[s.id], out_used[s.id]) for s in specs
        ]
        n = len(boxes)
        # The container's own ports as two more vertices: its inside's source and sink.
        from_owner = any(edge.source == owner for edge in kept)
        to_owner = any(edge.target == owner for edge in kept)
        source_v = n if from_owner else None
        sink_v = n + from_owner if to_owner else None
        graph_edges: list[tuple[int, int]] = []
        for edge in kept:
            s = source_v if edge.source == owner else index[edge.source]
            t = sink_v if edge.target == owner else index[edge.target]
            assert s is not None and t is not None
            graph_edges.append((s, t))
        vertices = n + from_owner + to_owner
        level = _Level(boxes, [])
        if not vertices:
            return level

        graph = _igraph().Graph(n=vertices, edges=graph_edges, directed=True)
        layout = graph.layout_sugiyama(hgap=1, vgap=1)
        #: Per vertex (boxes, then the container's source and sink): its layer and order.
        at = [(round(layer), float(order)) for order, layer in layout.coords]
        #: Per edge: the (layer, order) of each dummy point it passes through.
        bends = [
            sorted((round(layer), float(order)) for order, layer in points)
            for points in layout.edge_routing
        ]
        layers = max(layer for layer, _ in at) + 1
        widths = [0.0] * layers
        for v, box in enumerate(boxes):
            widths[at[v][0]] = max(widths[at[v][0]], box.w)
        column_x: list[float] = []
        x = 0.0
        for w in widths:
            column_x.append(x)
            x += w + (LAYER_GAP if w else LAYER_GAP / 2)
        level.w = x - (LAYER_GAP if widths[-1] else LAYER_GAP / 2)

        # Each layer top to bottom in igraph's order: a box (by index) or a dummy point
        # (edge, k), each at its order's place unless the one above reaches further.
        column: list[list[tuple[float, int | tuple[int, int]]]] = [[] for _ in range(layers)]
        for v in range(n):
            column[at[v][0]].append((at[v][1], v))
        for e, route in enumerate(bends):
            for k, (layer, order) in enumerate(route):
                column[layer].append((order, (e, k)))
        dummy_y: dict[tuple[int, int], float] = {}
        for layer, entries in enumerate(column):
            bottom: float | None = None
            for order, item in sorted(entries, key=lambda entry: entry[0]):
                wanted = order * ORDER_UNIT
                if isinstance(item, tuple):
                    y = wanted if bottom is None else max(wanted, bottom + ROW_GAP / 2)
                    dummy_y[item] = bottom = y
                else:
                    y = wanted if bottom is None else max(wanted, bottom + ROW_GAP)
                    self.place(boxes[item], column_x[layer], y)
                    bottom = y + boxes[item].h
        top = min([b.y for b in boxes] + list(dummy_y.values()), default=0.0)
        level.move(0.0, -top)
        level.h = max(
            [b.y + b.h for b in boxes] + [y - top + ROW_GAP / 2 for y in dummy_y.values()],
            default=0.0,
        )

        by_id = {b.spec.id: b for b in boxes}
        for e, edge in enumerate(kept):
            own_source, own_target = edge.source == owner, edge.target == owner
            points: list[list[float]] = []
            if not own_source:
                port = _find(by_id[edge.source].outputs, edge.source_handle)
                points += [[port.x, port.y], [port.x + STUB, port.y]]
            for k, (layer, _) in enumerate(bends[e]):
                y = dummy_y[(e, k)] - top
                points += [[column_x[layer], y], [column_x[layer] + widths[layer], y]]
            if not own_target:
                port = _find(by_id[edge.target].inputs, edge.target_handle)
                points += [[port.x - STUB, port.y], [port.x, port.y]]
            source = parent if own_source and parent else child_path(edge.source)
            target = parent if own_target and parent else child_path(edge.target)
            level.lines.append(_Line(edge, source, target, parent, points, own_source, own_target))
        return level


def _find(ports: Sequence[_Port], name: str) -> _Port:
    for port in ports:
        if port.name == name:
            return port
    raise AssertionError(f"port {name!r} is not among {[p.name for p in ports]}")


def _walk(level: _Level) -> tuple[list[_Box], list[_Line]]:
    boxes: list[_Box] = []
    lines: list[_Line] = []
    stack = [level]
    while stack:
        current = stack.pop(0)
        boxes += current.boxes
        lines += current.lines
        stack += [b.inner for b in current.boxes if b.inner is not None]
    return boxes, lines


def _edge_id(edge: Edge) -> str:
    return edge.id or f"{edge.source}.{edge.source_handle}->{edge.target}.{edge.target_handle}"


def flow_graph(
    flow: Flow,
    catalogue: Mapping[str, NodeType],
    *,
    collapsed: Collection[str] = (),
) -> dict[str, Any]:
    """The flow's layout as JSON data: ``nodes`` (every box, a container before its
    children, with its ports), ``edges`` (polylines from port to port), ``width``/``height``.

    ``catalogue`` gives the node types' ports and names; ``collapsed``: template paths of
    containers drawn as one box. A node of a type the catalogue lacks is drawn with the
    ports its edges name, and listed in ``problems``.
    """
    builder = _Builder(catalogue, collapsed)
    root = builder.level(flow.nodes, flow.edges, None, None)
    root.move(MARGIN, MARGIN)
    boxes, lines = _walk(root)
    pinned = set(flow.pins)
    nodes = []
    for box in boxes:
        spec, node_type = box.spec, box.node_type
        nodes.append(
            {
                "path": box.path,
                "id": spec.id,
                "type": spec.type,
                "name": spec.name,
                "typeName": node_type.name if node_type else None,
                "category": node_type.category if node_type else None,
                "parent": box.parent,
                "x": box.x,
                "y": box.y,
                "w": box.w,
                "h": box.h,
                "container": box.container,
                "collapsed": box.collapsed,
                "children": len(spec.nodes or ()),
                "inputs": [p.data() for p in box.inputs],
                "outputs": [p.data() for p in box.outputs],
                "hiddenPorts": box.hidden_ports,
                "parameters": pydantic_core.to_jsonable_python(spec.parameters, fallback=str),
                "pinned": box.parent is None and spec.id in pinned,
                "known": node_type is not None,
            }
        )
    edges = [
        {
            "id": _edge_id(line.edge),
            "source": line.source,
            "sourceHandle": line.edge.source_handle,
            "target": line.target,
            "targetHandle": line.edge.target_handle,
            "parent": line.parent,
            "points": line.points,
        }
        for line in lines
    ]
    return {
        "flowId": flow.id,
        "name": flow.name,
        "width": root.w + 2 * MARGIN,
        "height": root.h + 2 * MARGIN,
        "nodes": nodes,
        "edges": edges,
        "problems": builder.problems,
    }


def skeleton_flow(flow_id: str, nodes: Mapping[str, Mapping[str, Any]]) -> Flow:
    """A flow made from a run record's nodes alone (path -> entry with ``nodeId`` and
    ``nodeType``), for a run whose flow is not stored: its nodes, nested as their paths
    say, without edges. A child's parent is the longest prefix of its path that is itself
    a node (``tag/iteration 3/is-big`` is in ``tag``)."""
    top: list[NodeSpec] = []
    by_template: dict[str, NodeSpec] = {}
    template_of: dict[str, str] = {}
    for path in sorted(nodes, key=lambda p: p.count("/")):
        entry = nodes[path]
        parts = path.split("/")
        node_id = str(entry.get("nodeId") or parts[-1])
        parent = next(
            (
                prefix
                for k in range(len(parts) - 1, 0, -1)
                if (prefix := "/".join(parts[:k])) in template_of
            ),
            None,
        )
        template = f"{template_of[parent]}/{node_id}" if parent is not None else node_id
        template_of[path] = template
        if template in by_template:
            continue  # another iteration of a child already seen
        spec = by_template[template] = NodeSpec(
            id=node_id, type=str(entry.get("nodeType") or "unknown")
        )
        if parent is None:
            top.append(spec)
            continue
        owner = by_template[template_of[parent]]
        owner.nodes = [*(owner.nodes or []), spec]
        owner.edges = owner.edges or []
    return Flow(id=flow_id, name=flow_id, nodes=top)


def run_graph(
    storage: FlowStorage,
    execution_id: str,
    catalogue: Mapping[str, NodeType],
    *,
    collapsed: Collection[str] = (),
) -> dict[str, Any]:
    """The layout of the flow a stored run ran, plus ``executionId``, ``exact`` and
    ``source``.

    The flow a run ran is kept with the runs by its content digest (``source: "run"``,
    exact). For a run recorded before that: when the stored flow of its id still has the
    run's digest the graph is exact (``source: "stored flow"``); when it changed
    since, it is the flow as it is now (``exact: false``); when no flow of that id is stored
    (the run was given its flow inline), the nodes come from the run's record, without
    edges (``source: "run record"``). RunNotFound when there is no such run.
    """
    record = storage.record(execution_id)
    flow: Flow | None = None
    digest = record.data.get("flowHash")
    if isinstance(digest, str):
        flow = storage.run_flow(digest)  # the flow as it ran, kept with the runs
    if flow is not None:
        graph = flow_graph(flow, catalogue, collapsed=collapsed)
        graph["source"] = "run"
        graph["exact"] = True
        graph["executionId"] = execution_id
        return graph
    try:
        flow = storage.load(record.flow_id)
    except (StorageError, FlowLoadError):  # not stored, unreadable, or an id it cannot store
        flow = None
    if flow is not None:
        graph = flow_graph(flow, catalogue, collapsed=collapsed)
        exact = flow_digest(flow) == record.data.get("flowHash")
        graph["source"] = "stored flow"
        graph["exact"] = exact
        if not exact:
            graph["problems"].append(
                f"flow {flow.id!r} has changed since this run: the graph is the flow as it is now"
            )
    else:
        graph = flow_graph(
            skeleton_flow(record.flow_id, record.nodes), catalogue, collapsed=collapsed
        )
        graph["source"] = "run record"
        graph["exact"] = False
        graph["problems"].append(
            f"flow {record.flow_id!r} is not in storage: its nodes are the run's, its edges unknown"
        )
    graph["executionId"] = execution_id
    return graph
