"""The visible text of a Dash component tree, as a test reads a page built on the server."""
from __future__ import annotations


def component_text(component) -> str:
    """Every string and number inside `component` (children, recursively), joined by spaces."""
    out: list[str] = []

    def walk(c) -> None:
        if isinstance(c, (str, int, float)):
            out.append(str(c))
        elif isinstance(c, (list, tuple)):
            for x in c:
                walk(x)
        elif c is not None:
            walk(getattr(c, "children", None))

    walk(component)
    return " ".join(out)
