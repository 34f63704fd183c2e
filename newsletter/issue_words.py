"""The words an issue gets unless an editor writes its own: the subject, the preheader, the intro
line, and the label of its week. Plain functions of the picks, shared by composing, the renderer,
the previews and the archive."""

from __future__ import annotations

from datetime import date, timedelta

from newsletter.views import ComparisonView


def week_label(monday: date) -> str:
    """`23–29 November 2026`, `30 November – 6 December 2026`, `28 December 2026 – 3 January 2027`."""
    sunday = monday + timedelta(days=6)
    if monday.year != sunday.year:
        return f"{monday.day} {monday:%B %Y} – {sunday.day} {sunday:%B %Y}"
    if monday.month != sunday.month:
        return f"{monday.day} {monday:%B} – {sunday.day} {sunday:%B %Y}"
    return f"{monday.day}–{sunday.day} {sunday:%B %Y}"


def intro_line(comparisons: tuple[ComparisonView, ...]) -> str:
    if not comparisons:
        return ""
    count = len(comparisons)
    most_split = max(comparisons, key=lambda c: c.split)
    head = "One comparison this week." if count == 1 else f"{count} comparisons this week."
    if most_split.split > 0:
        return f"{head} The panel split hardest on {most_split.title}."
    return f"{head} The panel agreed on every tool."


def default_subject(comparisons: tuple[ComparisonView, ...] | list[ComparisonView]) -> str:
    """The lead comparison, and how many more verdicts follow."""
    if not comparisons:
        return "This week's AI tool verdicts"
    lead, rest = comparisons[0].title, len(comparisons) - 1
    if rest == 0:
        return f"{lead}: the panel's verdict"
    return f"{lead}, plus {rest} more verdict{'s' if rest > 1 else ''}"


def default_preheader(comparisons: tuple[ComparisonView, ...] | list[ComparisonView]) -> str:
    """The lead's panel figures, then the other titles: what a reader sees beside the subject."""
    if not comparisons:
        return ""
    lead = comparisons[0]
    left, right = lead.left, lead.right
    text = f"Panel: {left.name} {left.panel.label} ship, {right.name} {right.panel.label} ship."
    others = [c.title for c in comparisons[1:]]
    if others:
        text += " Also: " + "; ".join(others) + "."
    return text if len(text) <= 200 else text[:199].rstrip() + "…"
