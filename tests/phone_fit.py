"""On a phone: the page does not scroll sideways and no table is cut off inside its box (a table that stacks on a
phone, dashboard.components.tables.STACK, fits its box; one that does not would scroll inside it, its last columns
out of sight). Shared by the browser tests of the pages with such tables."""
from __future__ import annotations

_MEASURE = """
(selector) => {
  const tables = [...document.querySelectorAll(selector)].filter((t) => t.offsetParent !== null);
  return {page: document.documentElement.scrollWidth, screen: document.documentElement.clientWidth,
          tables: tables.length,
          cut: tables.map((t) => ({table: (t.closest('[id]') || {}).id || t.className, box: t.parentElement.clientWidth,
                                   content: t.parentElement.scrollWidth, stacked: getComputedStyle(t).display}))
                     .filter((m) => m.content > m.box + 1)};
}
"""


def phone_problems(page, label: str, selector: str = "table") -> list[str]:
    """What does not fit: the page wider than the screen, a table (of `selector`) wider than its box. Also refuses
    a page without any such table shown (the check would prove nothing)."""
    m = page.evaluate(_MEASURE, selector)
    out = [] if m["tables"] else [f"{label}: no table {selector!r} shown"]
    if m["page"] > m["screen"]:
        out.append(f"{label}: the page is {m['page']} px wide on a {m['screen']} px screen")
    out += [f"{label}: {c['table']} shows {c['box']} px of its {c['content']} px (display {c['stacked']})"
            for c in m["cut"]]
    return out
