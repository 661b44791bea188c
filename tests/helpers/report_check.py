"""Parse an HTML report and list what is wrong with it: empty sections, missing or broken charts, references
that point outside the file or to nothing."""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class _Section:
    heading: str = ""
    text: str = ""
    images: int = 0
    tables: int = 0


@dataclass
class Report:
    """What a report holds: its sections in order, its charts, and every problem found."""

    sections: list[_Section] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def headings(self) -> list[str]:
        return [s.heading for s in self.sections]

    def section(self, heading: str) -> _Section:
        return next(s for s in self.sections if s.heading == heading)


class _Parser(HTMLParser):
    def __init__(self, report: Report) -> None:
        super().__init__(convert_charrefs=True)
        self.report = report
        self.ids: set[str] = set()
        self.fragments: list[str] = []
        self.current: _Section | None = None
        self.in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "section":
            self.current = _Section()
            self.report.sections.append(self.current)
        elif tag == "h2":
            self.in_h2 = True
        elif tag == "table" and self.current is not None:
            self.current.tables += 1
        elif tag == "img":
            self._image(a)
        for key in ("href", "src"):
            if key in a and tag != "img":
                self._reference(a[key])

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self.in_h2 = False
        elif tag == "section":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.current is None:
            return
        if self.in_h2:
            self.current.heading += data.strip()
        else:
            self.current.text += data

    def _reference(self, ref: str) -> None:
        if ref.startswith("#"):
            self.fragments.append(ref[1:])
        elif not ref.startswith("data:"):
            self.report.problems.append(f"reference outside the file: {ref[:80]}")

    def _image(self, a: dict[str, str]) -> None:
        src, alt = a.get("src", ""), a.get("alt", "")
        if self.current is not None:
            self.current.images += 1
        if not alt:
            self.report.problems.append("an image without alt text")
        prefix = "data:image/svg+xml;base64,"
        if not src.startswith(prefix):
            self.report.problems.append(f"chart {alt!r} is not an inline SVG: {src[:40]}")
            return
        try:
            svg = base64.b64decode(src[len(prefix) :], validate=True)
            root = ET.fromstring(svg)
        except (binascii.Error, ET.ParseError) as e:
            self.report.problems.append(f"chart {alt!r} does not decode: {e}")
            return
        if not root.tag.endswith("svg") or len(root) == 0:
            self.report.problems.append(f"chart {alt!r} is an empty SVG")
            return
        ids = {el.get("id") for el in root.iter()}
        for el in root.iter():
            for key, value in el.attrib.items():
                if key.endswith("href") and value.startswith("#") and value[1:] not in ids:
                    self.report.problems.append(f"chart {alt!r} refers to a missing #{value[1:]}")
                elif "url(#" in value:
                    ref = value.split("url(#", 1)[1].split(")", 1)[0]
                    if ref not in ids:
                        self.report.problems.append(f"chart {alt!r} refers to a missing #{ref}")
        self.report.charts.append(alt)


def check_report(text: str) -> Report:
    """Parse ``text``; the returned report's ``problems`` lists every fault found (empty: none)."""
    report = Report()
    if not text.startswith("<!doctype html>"):
        report.problems.append("not an HTML document")
    parser = _Parser(report)
    parser.feed(text)
    parser.close()
    for fragment in parser.fragments:
        if fragment not in parser.ids:
            report.problems.append(f"link to a missing #{fragment}")
    for s in report.sections:
        s.text = " ".join(s.text.split())
        if not s.heading:
            report.problems.append("a section without a heading")
        if not (s.text or s.images or s.tables):
            report.problems.append(f"section {s.heading!r} is empty")
    if not report.sections:
        report.problems.append("no section")
    return report
