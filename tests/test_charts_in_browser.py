"""The charts as a person and a screen reader meet them: a page of charts in Debian's Chromium, light
and dark, with axe-core (every rule on) finding nothing, each chart an image named by its title with
its figures in a table that is in the accessibility tree but not on screen, and bars, lines and
text whose colours, as the browser computes them, keep 3:1 (text 4.5:1) against the page.
Screenshots land in test-artifacts/."""

from __future__ import annotations

import pytest

from newsletter.charts import CHART_CSS, Series, bar_chart, line_chart
from tests.axe import describe, violations
from tests.browser import artifact

pytestmark = pytest.mark.sqlite_pass_only  # the page's or email's HTML, the same on any store

WEEKS = [f"2026-W{n:02d}" for n in range(37, 49)]
HOSTILE = "</svg><script>window.pwned = 1</script>"
CHARTS = [
    bar_chart(
        "Human and machine clicks per comparison",
        ["Claude Haiku Open Weights vs Gemini 2.5 Flash Lite", "Cursor vs Windsurf", HOSTILE],
        [Series("Human", [1234, 560, 33], "human"), Series("Machine", [4000, 1200, 0], "machine")],
        label_heading="Comparison",
    ),
    bar_chart(
        "Signups, confirmations and leaves per week",
        WEEKS,
        [
            Series("Signups", [120, 140, 90, 300, 250, 180, 160, 170, 200, 210, 190, 230], "primary"),
            Series("Confirmations", [100, 120, 80, 260, 220, 150, 140, 150, 180, 190, 170, 200], "good"),
            Series("Leaves", [20, 25, 15, 40, 30, 22, 18, 25, 30, 28, 26, 31], "bad"),
        ],
        label_heading="Week",
    ),
    line_chart(
        "List size",
        WEEKS,
        [Series("Active readers", [998_000 + 1_500 * i for i in range(12)], "primary")],
        label_heading="Week",
    ),
    bar_chart(
        "Votes per tool",
        ["Claude Haiku", "Gemini Flash Lite"],
        [
            Series("Ship", [41, 12], "good"),
            Series("Skip", [9, 30], "bad"),
            Series("Other", [1, 2], "neutral"),
        ],
        stacked=True,
        label_heading="Tool",
    ),
    bar_chart("Complaints", [], [], label_heading="Week"),
]
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Charts</title>
<style>
  :root {{ --bg:#f3f4f6; --card:#ffffff; --text:#111827; }}
  @media (prefers-color-scheme: dark) {{ :root {{ --bg:#0b1120; --card:#1f2937; --text:#f3f4f6; }} }}
  body {{ margin:0; background:var(--bg); color:var(--text); font:15px/1.5 system-ui, sans-serif; }}
  main {{ max-width:60rem; margin:0 auto; padding:1rem; }}
  section {{ background:var(--card); border-radius:12px; padding:1rem; margin:1rem 0; }}
  {CHART_CSS}
</style></head>
<body><main><h1>Issue 2026-W48: report</h1>
<section><h2>Clicks</h2>{CHARTS[0]}</section>
<section><h2>Readers</h2>{CHARTS[1]}{CHARTS[2]}</section>
{CHARTS[3]}{CHARTS[4]}
</main></body></html>"""


def _luminance(rgb: list[float]) -> float:
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: list[float], b: list[float]) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


COLOURS = """() => {
    const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const backdrop = (el) => {
        for (; el; el = el.parentElement) {
            const colour = getComputedStyle(el).backgroundColor;
            if (!colour.endsWith(", 0)") && colour !== "transparent") return rgb(colour);
        }
        return [255, 255, 255];
    };
    const inks = "rect.chart-bar, path.chart-line, svg.chart-svg text";
    return [...document.querySelectorAll(inks)].map((el) => ({
        cls: el.getAttribute("class") || "",
        text: el.tagName === "text",
        ink: rgb(getComputedStyle(el)[el.tagName === "path" ? "stroke" : "fill"]),
        behind: backdrop(el.closest("figure")),
    }));
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_page_of_charts_passes_axe_and_reads_as_images_with_tables(browser, scheme):
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1024, "height": 900})
    page = context.new_page()
    page.set_content(PAGE)
    page.screenshot(path=artifact(f"charts-{scheme}.png"), full_page=True)

    found = violations(page)
    assert not found, describe(found)

    assert page.evaluate("() => window.pwned") is None  # the hostile label stayed text
    for title in ("Human and machine clicks per comparison", "List size", "Complaints"):
        assert page.get_by_role("img", name=title, exact=True).count() == 1
        table = page.get_by_role("table", name=title, exact=True)
        assert table.count() == 1
        box = table.locator("xpath=..").bounding_box()
        assert box is None or (box["width"] <= 1 and box["height"] <= 1)  # read, not seen
    cells = page.get_by_role("table", name="Human and machine clicks per comparison").get_by_role("cell")
    assert (
        "4,000" in cells.all_inner_texts()
        or "4,000" in page.get_by_role("table", name="Human and machine clicks per comparison").text_content()
    )
    assert page.get_by_role("rowheader", name=HOSTILE).count() == 1

    inks = page.evaluate(COLOURS)
    assert len(inks) > 40
    for item in inks:  # axe does not look at SVG text: the ticks and figures are checked here
        assert _contrast(item["ink"], item["behind"]) >= (4.5 if item["text"] else 3), item
    assert sum(item["text"] for item in inks) > 30
    human = next(item["ink"] for item in inks if "chart-human" in item["cls"])
    assert human == ([29, 78, 216] if scheme == "light" else [96, 165, 250])
    context.close()
