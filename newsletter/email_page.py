"""What the quality gates see in an email's HTML, read in one pass: its language and meta tags,
every link and image with the line it stands on (and a link's words), scripts, stylesheets, CSS
imports, and the text of hidden elements (where the preheader must be).

A reader of its own because it is the one part of the gates that knows HTML: `newsletter.gates`
judges what it collected."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

_IMPORT = re.compile(r"@import\b", re.IGNORECASE)
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_VOID = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
)
_URL_ATTRIBUTES = {"href": ("a", "area"), "src": ("img", "source"), "background": ("table", "td", "body")}


@dataclass(frozen=True, slots=True)
class PageLink:
    url: str
    attribute: str
    where: str


@dataclass(frozen=True, slots=True)
class PageImage:
    attrs: dict[str, str | None]
    where: str


class EmailPage(HTMLParser):
    """One pass over the HTML collecting what the gates look at, each with its line for `where`."""

    @classmethod
    def read(cls, html: str) -> EmailPage:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.metas: dict[str, str] = {}
        self.links: list[PageLink] = []
        self.images: list[PageImage] = []
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.imports: list[str] = []
        self.hidden_text: list[str] = []
        self._open: list[tuple[str, bool]] = []  # (tag, hidden)
        self._anchor: list[str] | None = None
        self._anchor_start: tuple[int, str] | None = None
        self._in_style = False

    def _where(self, tag: str, detail: str = "") -> str:
        return f"HTML line {self.getpos()[0]}: <{tag}>" + (f" {detail}" if detail else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        elif tag == "meta" and values.get("name"):
            self.metas[str(values["name"]).lower()] = values.get("content") or ""
        elif tag == "script":
            self.scripts.append(self._where(tag, values.get("src") or "(inline)"))
        elif tag == "link" and values.get("href"):
            self.stylesheets.append(self._where(tag, str(values["href"])))
        elif tag == "img":
            self.images.append(PageImage(values, self._where(tag, str(values.get("src") or ""))))
        elif tag == "style":
            self._in_style = True
        for attribute, tags in _URL_ATTRIBUTES.items():
            url = values.get(attribute)
            if tag in tags and url is not None:
                if tag == "a":
                    self._anchor, self._anchor_start = [], (len(self.links), self._where(tag))
                self.links.append(PageLink(url.strip(), attribute, self._where(tag, str(url))))
        if tag not in _VOID:
            parent_hidden = bool(self._open) and self._open[-1][1]
            self._open.append((tag, parent_hidden or bool(_HIDDEN.search(values.get("style") or ""))))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag == "a" and self._anchor is not None and self._anchor_start is not None:
            index, where = self._anchor_start
            label = " ".join(" ".join(self._anchor).split())[:60]
            link = self.links[index]
            self.links[index] = PageLink(link.url, link.attribute, f"{where} “{label}”" if label else where)
            self._anchor = self._anchor_start = None
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth][0] == tag:
                del self._open[depth:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_style and _IMPORT.search(data):
            self.imports.append(f"HTML line {self.getpos()[0]}: <style>")
        if self._anchor is not None:
            self._anchor.append(data)
        if self._open and self._open[-1][1]:
            self.hidden_text.append(data)
