"""Tables that fit a phone. A table with the STACK class (assets/wattline.css) shows, on a screen narrower than
576 px, each row as a block and each cell as a line "column label ... value", the label taken from the cell's
data-label; its header row is left out. Wider screens and print show the table as it is. Used where a table of
many columns cannot fit 390 px (the settlement's handover sheet, the work-order statistics tables, a control
batch's meters, the line loss rows, an instrument's registers, a work order's card and materials)."""
from __future__ import annotations

from dash import html

STACK = "table-stack"


def labelled_cells(header: list[str], values: list) -> list[html.Td]:
    """One row's cells, each carrying its column's label (shown beside the value when the table stacks). A value
    that is a cell already (html.Td, with its own class or attributes) gets the label and is kept as it is."""
    return [_labelled(h, v) for h, v in zip(header, values, strict=True)]


def _labelled(label: str, value) -> html.Td:
    if isinstance(value, html.Td):
        setattr(value, "data-label", label)
        return value
    return html.Td(value, **{"data-label": label})
