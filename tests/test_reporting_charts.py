"""The reports' inline SVG bar chart: the axis ends with the last bar (a 2-day assessment period is not
drawn as 2 bars followed by an empty stretch that reads as days without data), bars are apart, and a
long series still fits the chart's width."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hipbridge.reporting.charts import bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parts(svg: str) -> tuple[float, float, list[tuple[float, float]]]:
    root = ET.fromstring(svg)
    view_width = float(root.get("viewBox").split()[2])
    axis_end = float(root.find(f"{SVG}line").get("x2"))
    bars = [(float(r.get("x")), float(r.get("width"))) for r in root.iter(f"{SVG}rect")]
    return view_width, axis_end, bars


def test_few_bars_make_a_narrow_chart_without_an_empty_axis():
    view_width, axis_end, bars = _parts(bar_chart({"2026-12-07": 40, "2026-12-08": 0}, unit=" 行"))
    last_x, last_w = bars[-1]
    assert axis_end - (last_x + last_w) < 10          # the axis stops where the last bar's slot ends
    assert view_width - axis_end <= 14 and view_width < 300
    (x0, w0), (x1, _) = bars
    assert x1 - (x0 + w0) >= 2                         # a visible gap between neighbouring bars


def test_many_bars_fill_the_width_and_stay_inside_it():
    days = {f"2026-11-{d:02d}": d for d in range(1, 31)}
    view_width, axis_end, bars = _parts(bar_chart(days))
    assert view_width == 760 and axis_end <= 760 - 14
    assert len(bars) == 30 and bars[-1][0] + bars[-1][1] <= axis_end
