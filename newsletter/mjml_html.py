"""MJML to email HTML: the one compile per render, then premailer for the template's own inline
styles. Both load on first use, not with this module: the commands that never render an email never
pay for them."""

from __future__ import annotations

import logging
import re

from newsletter.lazy_imports import defer
from newsletter.rendered import RenderError


def compile_mjml(source: str) -> str:
    """MJML -> HTML, then premailer inlines the template's own `premailer:inline` style block.

    Every other style block (MJML's resets, its column widths and media queries, dark mode) is left
    alone: inlining MJML's `table, td {...}` reset into every cell would add a third to the size for
    clients that read head styles anyway. Configured around premailer's two known defects.
    """
    defer("requests")  # premailer imports it for external stylesheets: never fetched (allow_network=False)
    from premailer import Premailer

    try:
        compiled = _module_attribute("mjml2html")(source, fonts={}, disable_comments=True)
    except ValueError as exc:
        raise RenderError(f"the email template is not valid MJML: {exc}") from exc
    inlined = Premailer(
        _STYLE_BLOCK.sub(_mark_head_only, compiled),
        keep_style_tags=True,  # media queries and dark-mode rules must survive
        strip_important=False,  # else the mobile overrides lose to inline styles and nothing stacks
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    inlined = inlined.replace(f" {_IGNORE}", "").replace(INLINE_MARK, "")
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!doctype html>\n" + inlined  # premailer drops MJML's lower-case doctype (upstream #156)
    return inlined


def _module_attribute(name: str):
    """`name` as this module holds it (a test may have replaced it), loaded on first use."""
    return globals().get(name) or __getattr__(name)


def __getattr__(name: str):
    """The MJML compiler, imported when first asked for rather than with this module."""
    if name == "mjml2html":
        from mjml import mjml2html

        globals()[name] = mjml2html
        return mjml2html
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


INLINE_MARK = "/* premailer:inline */"
_IGNORE = 'data-premailer="ignore"'
_STYLE_BLOCK = re.compile(r"<style([^>]*)>(.*?)</style>", re.DOTALL)


def _mark_head_only(match: re.Match[str]) -> str:
    if match[2].lstrip().startswith(INLINE_MARK):
        return match[0]
    return f"<style {_IGNORE}{match[1]}>{match[2]}</style>"
