"""The drawing behind newsletter/charts.py: where each bar, line, tick and label goes, as SVG text.

Geometry only: the figure around it (caption, legend, table), the colours (CSS classes per role) and
the public functions live in charts.py. Coordinates are user units of a 640-wide view box that the
page scales to its column; text sizes are in the same units. Every string from outside goes
through `escape`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from markupsafe import escape

from newsletter.chart_scale import (
    cut_to_width,
    decimals_of,
    full_figure,
    is_number,
    nice_ticks,
    short_figure,
    text_width,
    tick_labels,
)

if TYPE_CHECKING:
    from newsletter.charts import Series

WIDTH = 640
FONT = 13
SMALL = 12
DASHES = ("", "6 4", "2 3", "10 3 2 3")  # a line's dash pattern by its place, so colour is not alone
Scale = Callable[[float], float]


def fmt(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def dash_attribute(place: int) -> str:
    dash = DASHES[place % len(DASHES)]
    return f' stroke-dasharray="{dash}"' if dash else ""


def text(x: float, y: float, content: str, *, cls: str = "", anchor: str = "middle", size=FONT, full=""):
    """A <text> element; `full` (the uncut label) becomes its tooltip."""
    tip = f"<title>{escape(full)}</title>" if full and full != content else ""
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{fmt(x)}" y="{fmt(y)}" text-anchor="{anchor}" font-size="{size}"{klass}>'
        f"{tip}{escape(content)}</text>"
    )


def line(x1: float, y1: float, x2: float, y2: float, cls: str, width: float = 1) -> str:
    return (
        f'<line x1="{fmt(x1)}" y1="{fmt(y1)}" x2="{fmt(x2)}" y2="{fmt(y2)}" class="{cls}" '
        f'stroke-width="{fmt(width)}"/>'
    )


def scale(low: float, high: float, start: float, end: float) -> Scale:
    """Map [low, high] onto [start, end] linearly."""
    span = (high - low) or 1.0
    return lambda value: start + (value - low) / span * (end - start)


class Drawing:
    """The figures of one chart (missing or non-finite values as None) and the arithmetic that
    places them. Each drawing method returns a whole <svg> element."""

    def __init__(self, cid: str, title: str, labels: list[str], series: Sequence[Series], unit, stacked):
        self.cid, self.title, self.labels, self.series = cid, title, labels, list(series)
        self.unit, self.stacked = unit, stacked
        self.values = [[v if is_number(v) else None for v in s.values] for s in self.series]
        found = [v for row in self.values for v in row if v is not None]
        self.empty = not labels or not self.series or not found
        self.integers = all(float(v).is_integer() for v in found)
        self.decimals = decimals_of(found)

    def columns(self) -> list[tuple[float | None, ...]]:
        """The figures label by label (one per series)."""
        return list(zip(*self.values, strict=True))

    def totals(self) -> list[float | None]:
        """Per label, the sum of its figures (None where it has none)."""
        return [sum(found) if (found := [v for v in c if v is not None]) else None for c in self.columns()]

    def figure(self, value: float | None) -> str:
        return full_figure(value, self.unit, self.decimals)

    # the frame

    def svg(self, height: float, body: list[str], summary: str) -> str:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img" '
            f'viewBox="0 0 {WIDTH} {fmt(height)}" width="{WIDTH}" height="{fmt(height)}" '
            f'aria-labelledby="{self.cid}-title" aria-describedby="{self.cid}-desc">'
            f'<title id="{self.cid}-title">{escape(self.title)}</title>'
            f'<desc id="{self.cid}-desc">{escape(summary)}</desc>' + "".join(body) + "</svg>"
        )

    def nothing(self) -> str:
        body = [
            line(40, 100, WIDTH - 16, 100, "chart-axisline"),
            text(WIDTH / 2, 70, "No data yet", cls="chart-tick"),
        ]
        return self.svg(120, body, "No data yet.")

    def summary(self, kind: str) -> str:
        found = (
            (v, one.name, self.labels[i])
            for one, row in zip(self.series, self.values, strict=True)
            for i, v in enumerate(row)
            if v is not None
        )
        value, name, label = max(found, key=lambda item: item[0])
        names = ", ".join(one.name for one in self.series)
        return (
            f"{kind} of {names} for {len(self.labels)} item(s). Highest: {name}, {self.figure(value)} "
            f"({label}). Every figure is in the table that follows."
        )

    def ticks(self, *, zero: bool) -> list[float]:
        """Nice ticks over the figures (stacks: their sums). Bars always include zero; lines only
        when the figures come near it."""
        if self.stacked:
            columns = self.columns()
            found = [sum(v for v in c if v is not None and v > 0) for c in columns]
            found += [sum(v for v in c if v is not None and v < 0) for c in columns]
        else:
            found = [v for row in self.values for v in row if v is not None]
        low, high = min(found), max(found)
        if zero or low <= 0 or (high - low) > high / 3:
            low, high = min(low, 0.0), max(high, 0.0)
        return nice_ticks(low, high, integers=self.integers)

    def y_axis(self, ticks: list[float], y: Scale, left: float, right: float) -> list[str]:
        parts = []
        for tick, label in zip(ticks, tick_labels(ticks, self.unit), strict=True):
            parts.append(line(left, y(tick), right, y(tick), "chart-gridline"))
            parts.append(text(left - 6, y(tick) + 4, label, cls="chart-tick", anchor="end", size=SMALL))
        return parts

    def y_axis_width(self, ticks: list[float]) -> float:
        return max(text_width(label, SMALL) for label in tick_labels(ticks, self.unit)) + 14

    def x_labels(self, first_centre: float, slot: float, y: float) -> list[str]:
        """One label per slot, or every second (third...) one where they would collide."""
        wanted = min(max(text_width(label, SMALL) for label in self.labels), 9 * SMALL) + 10
        every = max(1, math.ceil(wanted / slot)) if slot > 0 else 1
        room = (slot * every if slot > 0 else WIDTH) - 10
        return [
            text(
                first_centre + i * slot,
                y,
                cut_to_width(label, room, SMALL),
                cls="chart-tick",
                size=SMALL,
                full=label,
            )
            for i, label in enumerate(self.labels)
            if i % every == 0
        ]

    def bar(self, x: float, y: float, width: float, height: float, one: Series, label: str, value) -> str:
        tip = f"{label} · {one.name}: {self.figure(value)}"
        return (
            f'<rect x="{fmt(x)}" y="{fmt(y)}" width="{fmt(max(width, 0))}" height="{fmt(max(height, 0))}" '
            f'class="chart-bar chart-{one.role}"><title>{escape(tip)}</title></rect>'
        )

    # vertical bars: few, short labels (weeks)

    def vertical_bars(self) -> str:
        ticks = self.ticks(zero=True)
        left, right, top, plot_h = self.y_axis_width(ticks), 12.0, 24.0, 210.0
        y = scale(ticks[0], ticks[-1], top + plot_h, top)
        body = self.y_axis(ticks, y, left, WIDTH - right)
        group = (WIDTH - left - right) / len(self.labels)
        inner = group * (0.72 if len(self.series) > 1 or self.stacked else 0.6)
        bar_w = inner if self.stacked else inner / len(self.series)
        totals = self.totals()
        for i, label in enumerate(self.labels):
            x0 = left + i * group + (group - inner) / 2
            if self.stacked:
                body += self.stack(
                    i, label, lambda a, b, x0=x0: (x0, y(b), bar_w, y(a) - y(b)), vertical=True
                )
                total = totals[i]
                tops = [y(sum(v for v in self.columns()[i] if v is not None and v > 0))]
                if total is not None and text_width(short_figure(total, self.unit), SMALL) <= group - 2:
                    body.append(text(x0 + bar_w / 2, tops[0] - 5, short_figure(total, self.unit), size=SMALL))
                continue
            for j, one in enumerate(self.series):
                value = self.values[j][i]
                if value is None:
                    continue
                x = x0 + j * bar_w
                y_top, y_bottom = sorted((y(value), y(0)))
                body.append(self.bar(x + 0.5, y_top, bar_w - 1, y_bottom - y_top, one, label, value))
                figure = short_figure(value, self.unit)
                if text_width(figure, SMALL) <= bar_w:
                    at = y_top - 5 if value >= 0 else y_bottom + SMALL + 2
                    body.append(text(x + bar_w / 2, at, figure, size=SMALL))
        body.append(line(left, y(0), WIDTH - right, y(0), "chart-axisline", 1.5))
        body += self.x_labels(left + group / 2, group, top + plot_h + 20)
        return self.svg(top + plot_h + 34, body, self.summary("Bar chart"))

    def stack(self, i: int, label: str, place, *, vertical: bool) -> list[str]:
        """The segments of label i's stack, positives up (right) from zero, negatives down (left);
        `place(start, end)` gives a segment's x, y, width, height. A seam of one unit between two."""
        parts, up, down = [], 0.0, 0.0
        for j, one in enumerate(self.series):
            value = self.values[j][i]
            if not value:
                continue
            start = up if value > 0 else down
            end = start + value
            up, down = (end, down) if value > 0 else (up, end)
            x, y, width, height = place(min(start, end), max(start, end))
            if vertical and height > 2:
                y, height = y + 1, height - 1
            elif not vertical and width > 2:
                width -= 1
            parts.append(self.bar(x, y, width, height, one, label, value))
        return parts

    # horizontal bars: long labels (titles, URLs) or many of them

    def horizontal_bars(self) -> str:
        ticks = self.ticks(zero=True)
        ends = [v for row in self.values for v in row if v is not None]
        ends += [t for t in self.totals() if t is not None] if self.stacked else []
        label_w = min(max(text_width(label, FONT) for label in self.labels) + 14, WIDTH * 0.42)
        right = max(max(text_width(short_figure(v, self.unit), SMALL) for v in ends) + 10, 24.0)
        top, bar_h = 8.0, 16.0 if self.stacked or len(self.series) == 1 else 12.0
        rows = 1 if self.stacked else len(self.series)
        row_h = rows * (bar_h + 2) + 10
        plot_h = row_h * len(self.labels)
        x = scale(ticks[0], ticks[-1], label_w, WIDTH - right)
        body = []
        for tick, label in zip(ticks, tick_labels(ticks, self.unit), strict=True):
            body.append(line(x(tick), top, x(tick), top + plot_h, "chart-gridline"))
            body.append(text(x(tick), top + plot_h + 16, label, cls="chart-tick", size=SMALL))
        totals = self.totals()
        for i, label in enumerate(self.labels):
            row_y = top + i * row_h + 5
            shown = cut_to_width(label, label_w - 14, FONT)
            body.append(text(label_w - 8, row_y + (row_h - 10) / 2 + 4.5, shown, anchor="end", full=label))
            if self.stacked:
                body += self.stack(
                    i, label, lambda a, b, r=row_y: (x(a), r, x(b) - x(a), bar_h), vertical=False
                )
                if totals[i] is not None:
                    end = x(sum(v for v in self.columns()[i] if v is not None and v > 0))
                    figure = short_figure(totals[i], self.unit)
                    body.append(text(end + 4, row_y + bar_h / 2 + 4, figure, anchor="start", size=SMALL))
                continue
            for j, one in enumerate(self.series):
                value = self.values[j][i]
                if value is None:
                    continue
                bar_y = row_y + j * (bar_h + 2)
                x_left, x_right = sorted((x(0), x(value)))
                body.append(self.bar(x_left, bar_y, x_right - x_left, bar_h, one, label, value))
                end, anchor = (x_right + 4, "start") if value >= 0 else (x_left - 4, "end")
                figure = short_figure(value, self.unit)
                body.append(text(end, bar_y + bar_h / 2 + 4, figure, anchor=anchor, size=SMALL))
        body.append(line(x(0), top, x(0), top + plot_h, "chart-axisline", 1.5))
        return self.svg(top + plot_h + 26, body, self.summary("Bar chart"))

    # lines: a series over time

    def lines(self) -> str:
        ticks = self.ticks(zero=False)
        ends = [next((v for v in reversed(row) if v is not None), None) for row in self.values]
        end_w = max(text_width(self.end_label(v), SMALL) for v in ends if v is not None) + 14
        left, right, top, plot_h = self.y_axis_width(ticks), max(end_w, 30.0), 16.0, 210.0
        y = scale(ticks[0], ticks[-1], top + plot_h, top)
        body = self.y_axis(ticks, y, left, WIDTH - right)
        n, pad = len(self.labels), 12.0
        step = (WIDTH - left - right - 2 * pad) / (n - 1) if n > 1 else 0.0
        xs = [left + pad + i * step for i in range(n)] if n > 1 else [(left + WIDTH - right) / 2]
        end_labels = []
        for j, one in enumerate(self.series):
            row = self.values[j]
            path, pen_down = [], False
            for i, value in enumerate(row):  # a missing figure breaks the line
                if value is None:
                    pen_down = False
                    continue
                path.append(f"{'L' if pen_down else 'M'}{fmt(xs[i])} {fmt(y(value))}")
                pen_down = True
            body.append(
                f'<path d="{" ".join(path)}" class="chart-line chart-{one.role}"{dash_attribute(j)}/>'
            )
            for i, value in enumerate(row):
                if value is not None and n <= 60:
                    tip = f"{self.labels[i]} · {one.name}: {self.figure(value)}"
                    body.append(
                        f'<circle cx="{fmt(xs[i])}" cy="{fmt(y(value))}" r="3.5" '
                        f'class="chart-point chart-{one.role}"><title>{escape(tip)}</title></circle>'
                    )
            last = max((i for i, v in enumerate(row) if v is not None), default=None)
            if last is not None:
                end_labels.append([y(row[last]) + 4, xs[last] + 8, self.end_label(row[last])])
        end_labels.sort()
        for above, below in itertools.pairwise(end_labels):  # end labels never overlap
            below[0] = max(below[0], above[0] + SMALL + 2)
        body += [text(x, at, label, anchor="start", size=SMALL) for at, x, label in end_labels]
        body.append(line(left, top + plot_h, WIDTH - right, top + plot_h, "chart-axisline", 1.5))
        body += self.x_labels(xs[0], step or WIDTH, top + plot_h + 20)
        return self.svg(top + plot_h + 34, body, self.summary("Line chart"))

    def end_label(self, value: float) -> str:
        """The last figure of a line in full when it is short enough (1,014,500), else short."""
        full = self.figure(value)
        return full if len(full) <= 10 else short_figure(value, self.unit)
