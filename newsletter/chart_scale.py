"""Numbers for charts: "nice" tick values and short, readable figures.

Kept apart from the drawing (newsletter/charts.py) because these are pure arithmetic with their own
tests: ticks fall on 1, 2, 2.5 or 5 times a power of ten, integer data never gets fractional ticks,
and a figure is written the same way on an axis, above a bar and in the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)


def is_number(value: object) -> bool:
    """A figure a chart can draw: a finite int or float (bool, NaN and infinities are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def nice_step(raw: float, *, integers: bool) -> float:
    """The smallest step of 1, 2, 2.5 or 5 times a power of ten that is at least `raw`."""
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in STEPS:
        step = factor * magnitude
        if integers and step < 1:
            continue
        if integers and not float(step).is_integer():
            continue
        if step >= raw * (1 - 1e-9):
            return step
    return 10 * magnitude


def nice_ticks(low: float, high: float, *, integers: bool = False, count: int = 5) -> list[float]:
    """About `count` evenly spaced ticks covering [low, high], on nice values. Zero-width data
    (all values equal, or all zero) still gets an axis: [0, 1] around zero, a step around others."""
    if high < low:
        low, high = high, low
    if high == low:
        if high == 0:
            high = 1.0
        elif high > 0:
            low = min(low, 0.0)
        else:
            high = max(high, 0.0)
    step = nice_step((high - low) / max(count - 1, 1), integers=integers)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    ticks = []
    n = 0
    while True:
        value = first + n * step
        if value > last + step * 1e-9:
            break
        ticks.append(round(value, 10) + 0.0)  # + 0.0: never a "-0"
        n += 1
    return ticks


def decimals_of(values: Sequence[float]) -> int:
    """How many decimals show these figures exactly enough: none for integers, at most two."""
    places = 0
    for value in values:
        if not float(value).is_integer():
            text = f"{value:.2f}".rstrip("0")
            places = max(places, len(text.split(".")[1]) if "." in text else 0)
    return min(places, 2)


def full_figure(value: float | int | None, unit: str = "", decimals: int | None = None) -> str:
    """A figure in full, with thousands separators: 1,234,567 or 12.5%. None (missing) is a dash."""
    if value is None or not is_number(value):
        return "—"
    places = decimals_of([value]) if decimals is None else decimals
    text = f"{value:,.{places}f}"
    return text + _unit(unit)


def short_figure(value: float, unit: str = "") -> str:
    """A figure for an axis or a bar's end, short enough to fit: 950, 1.5k, 250k, 1.2M."""
    magnitude = abs(value)
    for limit, divisor, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if magnitude >= limit:
            scaled = value / divisor
            text = f"{scaled:.1f}".removesuffix(".0") if abs(scaled) < 100 else f"{scaled:.0f}"
            if text.lstrip("-") == "1000" and suffix != "B":  # 999,999 reads 1M, not 1000k
                text, suffix = text.replace("1000", "1"), {"k": "M", "M": "B"}[suffix]
            return text + suffix + _unit(unit)
    if float(value).is_integer():
        return f"{int(value):,}" + _unit(unit)
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text + _unit(unit)


def _unit(unit: str) -> str:
    if not unit:
        return ""
    return unit if unit in {"%", "‰"} else f" {unit}"


def tick_labels(ticks: Sequence[float], unit: str = "") -> list[str]:
    """Labels for an axis's ticks, each different from its neighbours: ticks 995,000 to 1,015,000
    read 995k, 1,000k ... rather than five times "1M": the short forms when they differ, else the
    largest unit whose labels need at most one decimal."""
    labels = [short_figure(t, unit) for t in ticks]
    if len(set(labels)) == len(labels):
        return labels
    step = abs(ticks[1] - ticks[0])
    top = max(abs(t) for t in ticks)
    for limit, divisor, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k"), (0, 1, "")):
        if top < limit:
            continue
        places = _places(step / divisor)
        if places <= 1 or not suffix:
            return [
                f"{t / divisor:,.{places}f}{suffix}{_unit(unit)}" if t else f"0{_unit(unit)}" for t in ticks
            ]
    return labels  # pragma: no cover (the last row always answers)


def _places(step: float) -> int:
    """Decimals that tell ticks `step` apart: 0 for 5, 1 for 0.5, 2 for 0.25."""
    for places in range(0, 7):
        if abs(round(step, places) - step) < step * 1e-6:
            return places
    return 6


# Advance widths as a share of the font size, generous (DejaVu Sans, the widest common default), so
# that a label cut to fit does fit whichever sans-serif font the page uses.
_NARROW = set("iIjl.,:;!|'`()[]{} /\\-")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float) -> float:
    """About how wide `text` is at `size`, in the same units."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 0.36
        elif char in _WIDE:
            width += 0.92
        elif char.isupper() or char.isdigit():
            width += 0.7
        else:
            width += 0.62
    return width * size


def cut_to_width(text: str, width: float, size: float) -> str:
    """`text`, or its start and an ellipsis, within `width` at `size`."""
    if text_width(text, size) <= width:
        return text
    room = width - text_width("…", size)
    kept = ""
    for char in text:
        if text_width(kept + char, size) > room:
            break
        kept += char
    return kept.rstrip() + "…"
