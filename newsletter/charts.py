"""Charts drawn on the server as inline SVG: no script, no network, the same bytes for the same data.

`bar_chart` and `line_chart` return a `<figure class="chart">` (as `markupsafe.Markup`, ready for a
Jinja template) holding a visible caption, the SVG (`role="img"`, named by its `<title>`, summed up by
its `<desc>`), a legend, and a real `<table>` of every figure for screen readers (visually hidden by
the `chart-sr-only` class on the block around it). Long labels are cut to fit in the drawing and
given whole in the table and in a tooltip.

Colours are roles, not values: an element of series role R has the class `chart-R`, and
`CHART_CSS` (for the page's stylesheet) gives each role a colour through a CSS custom property, one
set for light and one for dark pages. Every role colour keeps 3:1 against the page backgrounds the
apps use (`LIGHT_BACKGROUNDS`, `DARK_BACKGROUNDS`) and every text colour 4.5:1; tests check it. Series
are told apart by more than colour: lines are dashed differently, bars keep the legend's order.

Everything from the store (comparison titles, URLs) is escaped; the output is well-formed XML.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from newsletter.chart_svg import Drawing, dash_attribute

ROLES = ("human", "machine", "primary", "secondary", "good", "bad", "neutral")

# (light, dark) per custom property. Roles first, then the drawing's own inks.
PALETTE: dict[str, tuple[str, str]] = {
    "human": ("#1d4ed8", "#60a5fa"),
    "machine": ("#b45309", "#fbbf24"),
    "primary": ("#4338ca", "#a5b4fc"),
    "secondary": ("#0f766e", "#2dd4bf"),
    "good": ("#15803d", "#4ade80"),
    "bad": ("#b91c1c", "#f87171"),
    "neutral": ("#6b7280", "#9ca3af"),
    "text": ("#111827", "#f3f4f6"),
    "muted": ("#4b5563", "#cbd5e1"),
    "axis": ("#6b7280", "#9ca3af"),
    "grid": ("#e5e7eb", "#374151"),
}
TEXT_INKS = ("text", "muted")
LIGHT_BACKGROUNDS = ("#ffffff", "#f3f4f6")  # the apps' cards and pages
DARK_BACKGROUNDS = ("#1f2937", "#111827", "#0b1120")

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Series:
    """One named row of figures, one per label; `role` picks its colour (see ROLES)."""

    name: str
    values: Sequence[float | int]
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"series role must be one of {', '.join(ROLES)}, not {self.role!r}")
        object.__setattr__(self, "values", tuple(self.values))


def _css() -> str:
    def props(scheme: int) -> str:
        return " ".join(f"--chart-{name}:{colours[scheme]};" for name, colours in PALETTE.items())

    roles = "\n".join(
        f".chart .chart-{role}{{fill:var(--chart-{role});}}"
        f" .chart .chart-line.chart-{role}{{stroke:var(--chart-{role});fill:none;}}"
        f" .chart .chart-swatch.chart-{role}{{background:var(--chart-{role});}}"
        for role in ROLES
    )
    return f"""
:root {{ {props(0)} }}
@media (prefers-color-scheme: dark) {{ :root {{ {props(1)} }} }}
.chart {{ margin: 1rem 0 1.5rem; }}
.chart figcaption {{ font-weight: 700; margin: 0 0 .5rem; color: var(--chart-text); }}
.chart svg.chart-svg {{ display: block; width: 100%; height: auto; max-width: 52rem; }}
.chart text {{ font-family: inherit; fill: var(--chart-text); }}
.chart text.chart-tick {{ fill: var(--chart-muted); }}
.chart .chart-gridline {{ stroke: var(--chart-grid); }}
.chart .chart-axisline {{ stroke: var(--chart-axis); }}
.chart .chart-line {{ stroke-width: 2.5; stroke-linejoin: round; stroke-linecap: round; }}
{roles}
.chart-legend {{ list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; padding: 0;
  margin: .5rem 0 0; color: var(--chart-text); font-size: .9rem; }}
.chart-swatch {{ display: inline-block; width: .85em; height: .85em; border-radius: 2px;
  margin-right: .4em; vertical-align: -.05em; }}
.chart-key {{ margin-right: .4em; vertical-align: middle; }}
.chart-sr-only {{ position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap; border: 0; }}
"""


CHART_CSS: str = _css()


# --- the public charts -----------------------------------------------------------------------------


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    stacked: bool = False,
    horizontal: bool | None = None,
    label_heading: str = "Item",
    chart_id: str | None = None,
) -> Markup:
    """Bars per label, side by side (or `stacked`). `horizontal` None chooses: labels longer than a
    week's name, or many of them, read better as rows. Bars always start at zero."""
    labels = _check(labels, series)
    cid = _chart_id("bar", title, labels, series, unit, stacked, chart_id)
    if horizontal is None:
        horizontal = len(labels) > 16 or max((len(label) for label in labels), default=0) > 16
    drawing = Drawing(cid, title, labels, series, unit, stacked)
    if drawing.empty:
        svg = drawing.nothing()
    else:
        svg = drawing.horizontal_bars() if horizontal else drawing.vertical_bars()
    return _figure(drawing, svg, label_heading, line=False)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    label_heading: str = "Item",
    chart_id: str | None = None,
) -> Markup:
    """A line per series over the labels (usually weeks), a marker on each point and the last
    figure written at the line's end. The axis starts at zero unless the figures all sit far from it
    (a list of a million readers that moves by a few hundred a week)."""
    labels = _check(labels, series)
    cid = _chart_id("line", title, labels, series, unit, False, chart_id)
    drawing = Drawing(cid, title, labels, series, unit, stacked=False)
    svg = drawing.nothing() if drawing.empty else drawing.lines()
    return _figure(drawing, svg, label_heading, line=True)


def _check(labels: Sequence[str], series: Sequence[Series]) -> list[str]:
    labels = [str(label) for label in labels]
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(
                f"series {one.name!r} has {len(one.values)} values for {len(labels)} labels; "
                "give one value per label"
            )
    return labels


def _chart_id(kind, title, labels, series, unit, stacked, chart_id: str | None) -> str:
    """Stable across runs (a hash of what is drawn), different for different charts on one page."""
    if chart_id is not None:
        if not _ID.match(chart_id):
            raise ValueError("chart_id must be a letter then letters, digits, '-' or '_' (at most 64)")
        return chart_id
    material = repr((kind, title, labels, [(s.name, s.values, s.role) for s in series], unit, stacked))
    return "chart-" + hashlib.sha256(material.encode()).hexdigest()[:12]


# --- the figure around a drawing -------------------------------------------------------------------


def _figure(drawing: Drawing, svg: str, label_heading: str, *, line: bool) -> Markup:
    legend = "".join(_legend_item(j, one, line) for j, one in enumerate(drawing.series))
    return Markup(  # noqa: S704  (every value in it went through escape)
        f'<figure class="chart" id="{drawing.cid}">'
        f'<figcaption id="{drawing.cid}-caption">{escape(drawing.title)}</figcaption>{svg}'
        + (f'<ul class="chart-legend" aria-hidden="true">{legend}</ul>' if drawing.series else "")
        + _table(drawing, label_heading)
        + "</figure>"
    )


def _legend_item(place: int, one: Series, line: bool) -> str:
    if line:
        key = (
            '<svg class="chart-key" width="28" height="10" viewBox="0 0 28 10" aria-hidden="true">'
            f'<path d="M2 5L26 5" class="chart-line chart-{one.role}"{dash_attribute(place)}/></svg>'
        )
    else:
        key = f'<span class="chart-swatch chart-{one.role}"></span>'
    return f"<li>{key}{escape(one.name)}</li>"


def _table(drawing: Drawing, label_heading: str) -> str:
    """Every figure, in full, with every label whole: what a screen reader reads instead."""
    heads = "".join(f'<th scope="col">{escape(one.name)}</th>' for one in drawing.series)
    if drawing.stacked:
        heads += '<th scope="col">Total</th>'
    totals = drawing.totals()
    rows = []
    for i, label in enumerate(drawing.labels):
        cells = [row[i] for row in drawing.values] + ([totals[i]] if drawing.stacked else [])
        figures = "".join(f"<td>{escape(drawing.figure(value))}</td>" for value in cells)
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{figures}</tr>')
    if not rows:
        span = len(drawing.series) + 1 + (1 if drawing.stacked else 0)
        rows.append(f'<tr><td colspan="{span}">No data yet</td></tr>')
    return (
        f'<div class="chart-sr-only"><table class="chart-table"><caption>{escape(drawing.title)}</caption>'
        f'<thead><tr><th scope="col">{escape(label_heading)}</th>{heads}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
