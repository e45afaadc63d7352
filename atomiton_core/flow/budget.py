"""What a flow document may cost before it is turned into a flow: depth, values, aliases.

A YAML alias refers to a value defined once, so a file of a few hundred bytes can stand for
billions of values (an "alias bomb"), and a value can even contain itself. Readers keep
aliases as shared references, which is cheap; copying the document into plain data, checking
it against the models, saving it or sending it expands every one. :func:`check` walks the
document once, counting each shared value once but charging its expanded size wherever it is
used, and refuses it with a :class:`~atomiton_core.errors.FlowLoadError` naming the key path:

- nesting deeper than :data:`MAX_DEPTH` (Python's own recursion would fail first otherwise);
- a value that contains itself;
- more than :data:`MAX_VALUES` values once expanded, or aliases that add more than
  :data:`MAX_ALIAS_VALUES` values to what the text itself holds.

The walk is iterative, so its own depth is bounded by nothing but the budget.
"""

from __future__ import annotations

from typing import Any

from atomiton_core.errors import FlowLoadError

__all__ = ["MAX_ALIAS_VALUES", "MAX_DEPTH", "MAX_VALUES", "check"]

#: Containers within containers a flow document may nest.
MAX_DEPTH = 100
#: Values (scalars and containers) a flow document may hold once its aliases are expanded.
MAX_VALUES = 5_000_000
#: Values aliases may add beyond those written out in the text.
MAX_ALIAS_VALUES = 10_000


def check(data: Any, where: str = "<flow>") -> None:
    """Refuse a document that is too deep, contains itself, or expands too far."""
    sizes: dict[int, int] = {}  # id of a finished container -> its expanded size
    open_ids: set[int] = set()
    unique = 0
    # (container, iterator over its children, path, expanded size so far)
    root_size = _leaf_or_none(data)
    if root_size is not None:
        return
    stack: list[tuple[Any, Any, str, list[int]]] = [(data, _children(data), "", [1])]
    open_ids.add(id(data))
    unique += 1
    while stack:
        container, children, path, size = stack[-1]
        step = next(children, None)
        if step is None:
            stack.pop()
            open_ids.discard(id(container))
            sizes[id(container)] = size[0]
            if stack:
                stack[-1][3][0] += size[0]
            continue
        key, child = step
        if _leaf_or_none(child) is not None:
            size[0] += 1
            unique += 1
            continue
        here = f"{path}{key}" if path or not key.startswith(".") else key[1:]
        ident = id(child)
        if ident in open_ids:
            raise FlowLoadError(
                f"{where}: {here or '<root>'} contains itself (through a YAML alias)",
                hint="an alias (*name) may only refer to a value defined before it and outside it",
            )
        done = sizes.get(ident)
        if done is not None:  # an alias to a finished container: its expanded size counts
            size[0] += done
            total = sum(entry[3][0] for entry in stack)
            if total - unique > MAX_ALIAS_VALUES or total > MAX_VALUES:
                raise FlowLoadError(
                    f"{where}: {here}: YAML aliases expand the document to more than "
                    f"{min(total, MAX_VALUES):,} values",
                    hint="write the values out, or reuse them with a variable or a sub-flow "
                    "instead of aliases",
                )
            continue
        if len(stack) >= MAX_DEPTH:
            raise FlowLoadError(
                f"{where}: {here}: nested deeper than {MAX_DEPTH} levels",
                hint="flatten the data, or pass it in as an input instead of writing it "
                "into the flow",
            )
        unique += 1
        if unique > MAX_VALUES:
            raise FlowLoadError(f"{where}: more than {MAX_VALUES:,} values in one flow")
        open_ids.add(ident)
        stack.append((child, _children(child), here, [1]))


def _leaf_or_none(value: Any) -> int | None:
    return None if isinstance(value, dict | list | tuple) else 1


def _children(container: Any) -> Any:
    if isinstance(container, dict):
        return ((f".{k}" if isinstance(k, str) else f"[{k!r}]", v) for k, v in container.items())
    return ((f"[{i}]", v) for i, v in enumerate(container))
