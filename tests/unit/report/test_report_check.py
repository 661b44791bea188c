"""The report checker finds what a reader would trip over; the pressure chart draws no empty legend."""

from __future__ import annotations

import base64

from helpers.report_check import check_report
from memsched.record import RunRecord
from memsched.report.page import page
from memsched.report.pressure import pressure_chart, pressure_report

_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><defs><clipPath id="c"><rect/></clipPath></defs>'
    b'<g clip-path="url(#c)"/></svg>'
)


def _img(svg: bytes, alt: str = "chart") -> str:
    return f'<img alt="{alt}" src="data:image/svg+xml;base64,{base64.b64encode(svg).decode()}"/>'


def test_a_good_page_passes() -> None:
    """Sections with text, a table or an SVG chart; no problem found."""
    doc = page("t", [("A", "<p>text</p>"), ("B", _img(_SVG)), ("C", "<table><tr><td>1</td></tr></table>")])
    report = check_report(doc)
    assert report.problems == [] and report.headings() == ["A", "B", "C"] and report.charts == ["chart"]


def test_page_leaves_empty_sections_out() -> None:
    """A section with an empty body is not on the page at all."""
    assert check_report(page("t", [("A", "<p>x</p>"), ("Empty", "  ")])).headings() == ["A"]


def test_the_checker_finds_each_fault() -> None:
    """Empty section, PNG or broken chart, a dangling reference inside an SVG, an outside link."""
    broken_ref = _SVG.replace(b"url(#c)", b"url(#gone)")
    doc = (
        "<!doctype html><html><body>"
        "<section><h2>Empty</h2></section>"
        '<section><h2>Png</h2><img alt="p" src="data:image/png;base64,AAAA"/></section>'
        f"<section><h2>Bad</h2>{_img(b'<svg', 'bad')}{_img(broken_ref, 'dangling')}</section>"
        '<section><h2>Link</h2><a href="https://example.org/x.js">x</a><a href="#nowhere">y</a></section>'
        "</body></html>"
    )
    problems = " | ".join(check_report(doc).problems)
    for needle in (
        "section 'Empty' is empty",
        "chart 'p' is not an inline SVG",
        "chart 'bad' does not decode",
        "chart 'dangling' refers to a missing #gone",
        "reference outside the file",
        "link to a missing #nowhere",
    ):
        assert needle in problems, (needle, problems)


def _pressure_record(design: str, *, index: bool, psi: bool) -> RunRecord:
    t = [0.0, 1.0, 2.0]
    timeline = {
        "t_s": t,
        "free_mib": [100, 50, 10],
        "file_mib": [10, 10, 5],
        "anon_mib": [0, 50, 90],
        "dirty_mib": [0, 1, 0],
        "index_mainline": [[1.0, 70.0]] if index else [],
        "index_rfc2012": [[1.5, 96.0]] if index else [],
        "psi_some_avg10": [0.0, 5.0, 12.0] if psi else [None, None, None],
    }
    figures = {
        "scenario": "s", "design": design, "duration_s": 2.0, "timeline": timeline, "memory_mib": 128,
        "event_times_s": {"low": [], "medium": [1.0], "critical": []}, "oom_victims": [],
        "events": {"low": 0, "medium": 1, "critical": 0}, "event_first_s": {"medium": 1.0, "critical": None},
        "oom_kills": 0, "app_released_mib": 0.0, "services": {},
    }  # fmt: skip
    return RunRecord("pressure", "s", design, design, 0, figures)


def test_pressure_chart_without_index_or_psi_has_no_empty_legend() -> None:
    """No index window and no PSI sample: a note in the panel, no legend call (warnings are errors here)."""
    fig = pressure_chart(_pressure_record("psi", index=False, psi=False))
    panel = fig.axes[1]
    assert panel.get_legend() is None and [t.get_text() for t in panel.texts]


def test_pressure_report_parses() -> None:
    """The pressure report: summary table, one SVG chart per design, nothing empty or broken."""
    records = [_pressure_record(d, index=d != "psi", psi=True) for d in ("rfc2012", "psi")]
    report = check_report(pressure_report(records))
    assert report.problems == []
    assert report.headings() == ["Summary", "Over time, per design"]
    assert report.charts == ["design rfc2012", "design psi"]


def test_pressure_events_of_two_levels_10_ms_apart_are_both_drawn() -> None:
    """Review 2: a medium at 11.81 s and a critical at 11.82 s shared a pixel column, so one of the three event
    lines was hidden; each level now has its own band of the events strip, labelled."""
    from matplotlib.collections import LineCollection

    rec = _pressure_record("mainline", index=True, psi=False)
    rec["event_times_s"].update(medium=[1.0, 1.81], critical=[1.82])
    strip = pressure_chart(rec).axes[2]
    bands = {}
    for coll in strip.collections:
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                bands.setdefault((round(seg[0][1], 2), round(seg[1][1], 2)), []).append(seg[0][0])
    assert sorted(bands.values()) == [[1.0, 1.81], [1.82]]
    (_, hi_medium), (lo_critical, _) = sorted(bands)
    assert hi_medium <= lo_critical  # the critical band sits above the medium band: no overlap
    assert [t.get_text() for t in strip.get_yticklabels()] == ["low", "medium", "critical", "OOM kill"]


def test_oom_kills_sit_on_a_band_of_their_own() -> None:
    """Review 3: a kill's cross sat at y=0.5, the medium band's centre, so a design without notifications seemed to
    have a medium event."""
    rec = _pressure_record("none", index=False, psi=False)
    rec["event_times_s"].update(medium=[])
    rec["oom_victims"].append({"t_s": 1.5, "victim": "cache"})
    strip = pressure_chart(rec).axes[2]
    ticks = {t.get_text(): y for t, y in zip(strip.get_yticklabels(), strip.get_yticks(), strict=True)}
    (cross,) = [line for line in strip.get_lines() if line.get_marker() == "x"]
    assert cross.get_ydata()[0] == ticks["OOM kill"] != ticks["medium"]
