"""The server-drawn charts: bars and points where the figures put them, every figure in the table,
nice ticks, hostile labels kept as text, empty and odd data drawn without failing, colours that keep
their contrast in light and dark."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest

from newsletter.chart_scale import cut_to_width, full_figure, nice_ticks, text_width, tick_labels
from newsletter.charts import (
    CHART_CSS,
    DARK_BACKGROUNDS,
    LIGHT_BACKGROUNDS,
    PALETTE,
    ROLES,
    TEXT_INKS,
    Series,
    bar_chart,
    line_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "</svg><script>alert(\"x\")</script><b onmouseover='x'>&amp;"


def parse(markup) -> ET.Element:
    """The figure as XML: it must be well-formed, whatever its labels held."""
    return ET.fromstring(str(markup))  # noqa: S314  (our own output)


def svg_of(figure: ET.Element) -> ET.Element:
    return figure.find(f"{SVG}svg")


def bars(figure: ET.Element) -> list[ET.Element]:
    return [rect for rect in svg_of(figure).iter(f"{SVG}rect") if "chart-bar" in rect.get("class", "")]


def table_cells(figure: ET.Element) -> list[list[str]]:
    table = figure.find("div/table")
    return [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]


def shown(element: ET.Element) -> str:
    """The visible text of an SVG <text> (its <title> child is the tooltip)."""
    return (element.text or "") + "".join(child.tail or "" for child in element)


def role_of(element: ET.Element) -> str:
    return next(c.removeprefix("chart-") for c in element.get("class").split() if c[6:] in ROLES)


def test_vertical_bars_are_as_tall_as_their_figures_and_the_table_holds_each_one():
    weeks = [f"2026-W{n}" for n in range(40, 46)]
    signups, leaves = [120, 0, 75, 300, 250, 7], [20, 25, 15, 40, 0, 3]
    figure = parse(
        bar_chart(
            "Signups and leaves",
            weeks,
            [Series("Signups", signups, "primary"), Series("Leaves", leaves, "bad")],
            label_heading="Week",
        )
    )
    drawn = bars(figure)
    assert len(drawn) == 12
    heights = [float(rect.get("height")) for rect in drawn]
    figures = [value for pair in zip(signups, leaves, strict=True) for value in pair]  # week by week
    per_unit = heights[figures.index(300)] / 300
    for height, value in zip(heights, figures, strict=True):
        assert height == pytest.approx(value * per_unit, abs=0.02)
    bottoms = {round(float(r.get("y")) + float(r.get("height")), 1) for r in drawn}
    assert len(bottoms) == 1  # one baseline
    assert [role_of(rect) for rect in drawn[:2]] == ["primary", "bad"]
    rows = table_cells(figure)
    assert rows[0] == ["Week", "Signups", "Leaves"]
    assert rows[1:] == [[w, str(s), str(v)] for w, s, v in zip(weeks, signups, leaves, strict=True)]
    assert "".join(figure.find("figcaption").itertext()) == "Signups and leaves"


def test_horizontal_bars_for_long_labels_are_as_wide_as_their_figures():
    titles = ["Claude Haiku Open Weights vs Gemini 2.5 Flash Lite", "Cursor vs Windsurf", "A vs B"]
    human, machine = [1234, 560, 33], [4000, 1200, 0]
    figure = parse(
        bar_chart(
            "Clicks per comparison",
            titles,
            [Series("Human", human, "human"), Series("Machine", machine, "machine")],
        )
    )
    drawn = bars(figure)
    widths = [float(rect.get("width")) for rect in drawn]
    figures = [v for pair in zip(human, machine, strict=True) for v in pair]
    per_unit = widths[figures.index(4000)] / 4000
    for width, value in zip(widths, figures, strict=True):
        assert width == pytest.approx(value * per_unit, abs=0.02)
    assert len({rect.get("x") for rect in drawn}) == 1  # every bar starts at zero
    texts = [shown(t) for t in svg_of(figure).iter(f"{SVG}text")]
    assert not any(t.startswith("Claude Haiku Open Weights vs Gemini 2.5 Flash Lite") for t in texts)
    cut = next(t for t in svg_of(figure).iter(f"{SVG}text") if shown(t).startswith("Claude"))
    assert shown(cut).endswith("…") and cut.find(f"{SVG}title").text == titles[0]  # whole in the tooltip
    assert [row[0] for row in table_cells(figure)[1:]] == titles  # and whole in the table
    assert table_cells(figure)[1] == [titles[0], "1,234", "4,000"]


def test_stacked_bars_add_up_and_the_table_has_the_totals():
    figure = parse(
        bar_chart(
            "Votes",
            ["Haiku", "Flash Lite"],
            [Series("Ship", [41, 12], "good"), Series("Skip", [9, 30], "bad")],
            stacked=True,
        )
    )
    drawn = bars(figure)
    heights = [float(r.get("height")) + 1 for r in drawn]  # each segment gives a unit to its seam
    per_unit = (heights[0] + heights[1]) / 50
    assert heights[2] + heights[3] == pytest.approx(42 * per_unit, abs=0.05)
    assert heights[0] == pytest.approx(41 * per_unit, abs=0.05)
    assert table_cells(figure) == [
        ["Item", "Ship", "Skip", "Total"],
        ["Haiku", "41", "9", "50"],
        ["Flash Lite", "12", "30", "42"],
    ]


def test_line_points_sit_at_their_figures_and_a_gap_breaks_the_line():
    weeks = ["W1", "W2", "W3", "W4", "W5"]
    values = [1_000_000, 1_002_500, None, 1_001_000, 1_006_000]
    figure = parse(
        line_chart("List size", weeks, [Series("Readers", values, "primary")], label_heading="Week")
    )
    points = list(svg_of(figure).iter(f"{SVG}circle"))
    assert len(points) == 4
    ys = [float(p.get("cy")) for p in points]
    shown = [v for v in values if v is not None]
    per_unit = (ys[0] - ys[-1]) / (shown[-1] - shown[0])
    for y, value in zip(ys, shown, strict=True):
        assert ys[0] - y == pytest.approx((value - shown[0]) * per_unit, abs=0.02)
    path = next(svg_of(figure).iter(f"{SVG}path"))
    assert path.get("d").count("M") == 2  # the missing week breaks it
    ticks = [t.text for t in svg_of(figure).iter(f"{SVG}text") if "chart-tick" in (t.get("class") or "")]
    assert "1,000k" in ticks or "1M" in ticks
    assert len({t for t in ticks if t[0].isdigit()}) == len([t for t in ticks if t[0].isdigit()])
    assert table_cells(figure)[1:] == [
        ["W1", "1,000,000"],
        ["W2", "1,002,500"],
        ["W3", "—"],
        ["W4", "1,001,000"],
        ["W5", "1,006,000"],
    ]


def test_a_percentage_line_keeps_its_decimals_and_unit_in_the_table():
    figure = parse(line_chart("Rate", ["a", "b"], [Series("Human", [12.5, 3.25], "human")], unit="%"))
    assert table_cells(figure)[1:] == [["a", "12.50%"], ["b", "3.25%"]]
    assert any((t.text or "").endswith("%") for t in svg_of(figure).iter(f"{SVG}text"))


@pytest.mark.parametrize("make", [bar_chart, line_chart])
def test_hostile_labels_and_names_stay_text(make):
    markup = str(
        make(
            HOSTILE,
            [HOSTILE, "https://x.example/?a=1&b=<2>"],
            [Series(HOSTILE, [1, 2], "human")],
            label_heading=HOSTILE,
        )
    )
    figure = parse(markup)  # well-formed: nothing closed the svg or opened a script
    assert not [el for el in figure.iter() if el.tag.split("}")[-1] in {"script", "b"}]
    assert "<script" not in markup and "onmouseover='" not in markup
    assert HOSTILE in "".join(figure.find("figcaption").itertext())
    assert HOSTILE in [row[0] for row in table_cells(figure)]
    assert "https://x.example/?a=1&b=<2>" in [row[0] for row in table_cells(figure)]
    assert svg_of(figure).find(f"{SVG}title").text == HOSTILE


@pytest.mark.parametrize(
    ("labels", "series"),
    [
        ([], []),
        (["a", "b"], []),
        ([], [Series("Human", [], "human")]),
        (["a", "b"], [Series("Human", [math.nan, None], "human")]),  # type: ignore[list-item]
    ],
)
@pytest.mark.parametrize("make", [bar_chart, line_chart])
def test_no_data_draws_an_empty_chart_that_says_so(make, labels, series):
    figure = parse(make("Bounces", labels, series))
    texts = ["".join(t.itertext()) for t in svg_of(figure).iter(f"{SVG}text")]
    assert "No data yet" in texts
    assert svg_of(figure).find(f"{SVG}desc").text == "No data yet."
    assert not bars(figure)
    rows = table_cells(figure)
    assert rows[0][0] == "Item" and len(rows) >= 2


def test_zeros_and_a_single_point_still_get_an_axis():
    zeros = parse(bar_chart("Complaints", ["W1", "W2"], [Series("Complaints", [0, 0], "bad")]))
    assert [float(r.get("height")) for r in bars(zeros)] == [0, 0]
    ticks = [t.text for t in svg_of(zeros).iter(f"{SVG}text") if "chart-tick" in (t.get("class") or "")]
    assert ticks[:2] == ["0", "1"]
    one = parse(line_chart("List size", ["W1"], [Series("Readers", [5], "primary")]))
    (point,) = svg_of(one).iter(f"{SVG}circle")
    assert 100 < float(point.get("cx")) < 600
    assert table_cells(one)[1] == ["W1", "5"]


def test_output_is_deterministic_and_ids_differ_between_charts():
    make = lambda title: bar_chart(title, ["a"], [Series("Human", [3], "human")])  # noqa: E731
    assert make("One") == make("One")
    page = (
        "<div>"
        + "".join(str(make(t)) for t in ("One", "Two", "Three"))
        + str(line_chart("One", ["a"], [Series("Human", [3], "human")]))
        + "</div>"
    )
    ids = [el.get("id") for el in parse(page).iter() if el.get("id")]
    assert len(ids) == len(set(ids)) == 4 * 4  # figure, caption, title and desc of four charts
    figure = parse(make("One"))
    svg = svg_of(figure)
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == svg.find(f"{SVG}title").get("id")
    assert svg.get("aria-describedby") == svg.find(f"{SVG}desc").get("id")
    assert parse(bar_chart("x", ["a"], [Series("H", [1], "human")], chart_id="clicks"))[0].get("id") == (
        "clicks-caption"
    )
    with pytest.raises(ValueError, match="chart_id"):
        bar_chart("x", ["a"], [Series("H", [1], "human")], chart_id='a" onload="x')


def test_bad_calls_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="role"):
        Series("x", [1], "purple")
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        bar_chart("x", ["a", "b", "c"], [Series("Human", [1, 2], "human")])


@pytest.mark.parametrize(
    ("low", "high", "integers"),
    [
        (0, 3, True),
        (0, 7, True),
        (0, 1_000_000, True),
        (0, 0.37, False),
        (995_000, 1_015_000, True),
        (-5, 10, True),
        (0, 12_345, True),
        (0, 1, True),
        (0, 0, True),
        (3, 3, False),
        (0, 9.99, False),
    ],
)
def test_ticks_are_nice_cover_the_data_and_integers_stay_whole(low, high, integers):
    ticks = nice_ticks(low, high, integers=integers)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 8
    step = ticks[1] - ticks[0]
    assert all(b - a == pytest.approx(step) for a, b in itertools.pairwise(ticks))
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in {1, 2, 2.5, 5}
    if integers:
        assert all(float(t).is_integer() for t in ticks)
    labels = tick_labels(ticks)
    assert len(set(labels)) == len(labels)


def test_figures_and_cut_labels():
    assert full_figure(1234567) == "1,234,567" and full_figure(12.5, "%") == "12.5%"
    assert full_figure(None) == "—" and full_figure(math.inf) == "—" and full_figure(3, "ms") == "3 ms"
    url = "https://verdicts.example.com/compare/claude-haiku-open-weights-vs-gemini-2-5-flash-lite"
    cut = cut_to_width(url, 200, 13)
    assert cut.endswith("…") and url.startswith(cut[:-1]) and text_width(cut, 13) <= 200


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(("scheme", "backgrounds"), [(0, LIGHT_BACKGROUNDS), (1, DARK_BACKGROUNDS)])
def test_every_role_keeps_3_to_1_and_every_text_4_5_to_1_in_both_schemes(scheme, backgrounds):
    for background in backgrounds:
        for role in (*ROLES, "axis"):
            assert contrast(PALETTE[role][scheme], background) >= 3, (role, scheme, background)
        for ink in TEXT_INKS:
            assert contrast(PALETTE[ink][scheme], background) >= 4.5, (ink, scheme, background)
    dark_block = CHART_CSS.split("prefers-color-scheme: dark", 1)[1]
    for name, colours in PALETTE.items():
        assert f"--chart-{name}:{colours[scheme]};" in (dark_block if scheme else CHART_CSS)
    for role in ROLES:
        assert re.search(rf"\.chart \.chart-{role}\{{fill:var\(--chart-{role}\);\}}", CHART_CSS)
