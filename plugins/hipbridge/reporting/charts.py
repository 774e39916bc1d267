"""Self-contained SVG charts (no script, no external file): the hospital intranet has no internet.

Charts scale down with the page (`width="100%"`, a viewBox, a max width), so a report fits a
1,400 px window and still prints.
"""

from __future__ import annotations

import html

PALETTE = ["#1f6fb2", "#d9534f", "#5cb85c", "#f0ad4e", "#8e44ad", "#16a085", "#7f8c8d", "#c0392b"]


def _svg_open(width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="100%" '
            f'style="max-width:{width}px" viewBox="0 0 {width} {height}" role="img">')


def _grid(out: list[str], y, y_min: float, y_max: float, left: int, w: float) -> None:
    for k in range(5):
        v = y_min + (y_max - y_min) * k / 4
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + w}" y2="{y(v):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>')


def line_chart(series: dict[str, list[float | None]], labels: list[str], width: int = 760, height: int = 260,
               y_min: float = 0, y_max: float = 100, target: float | None = None) -> str:
    """Lines over `labels` (one point per label; None leaves a gap), a dashed target line, a legend."""
    left, right, top, bottom = 46, 150, 14, 40
    w, h = width - left - right, height - top - bottom
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    def y(v: float) -> float:
        return top + h - (h * (v - y_min) / ((y_max - y_min) or 1))

    out = [_svg_open(width, height)]
    _grid(out, y, y_min, y_max, left, w)
    if target is not None:
        out.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{left + w}" y2="{y(target):.1f}" '
                   f'stroke="#d9534f" stroke-dasharray="4 3"/>')
    step = max(1, n // 8)
    for i, lab in enumerate(labels):
        if i % step == 0 or i == n - 1:
            out.append(f'<text x="{x(i):.1f}" y="{top + h + 16}" font-size="10" text-anchor="middle">'
                       f'{html.escape(lab)}</text>')
    for si, (name, vals) in enumerate(series.items()):
        color = PALETTE[si % len(PALETTE)]
        pts = [(x(i), y(v)) for i, v in enumerate(vals) if v is not None]
        if len(pts) > 1:
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                       + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        for a, b in pts:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>')
        ly = top + 14 + 16 * si
        out.append(f'<rect x="{left + w + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{left + w + 26}" y="{ly}" font-size="12">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def _short(label: str) -> str:
    """`2026-12-04` → `12-04` under a bar; other labels as they are."""
    return label[5:] if len(label) == 10 and label[4] == "-" else label


def bar_chart(values: dict[str, float], width: int = 760, height: int = 220, highlight_zero: bool = True,
              unit: str = "") -> str:
    """One bar per label; a zero bar is drawn red (a gap day) when `highlight_zero`.

    A bar is at most 80 px wide; with few bars the chart is narrower rather than ending in an empty
    stretch of axis that reads as days without data."""
    left, top, bottom, right = 56, 14, 40, 14
    h = height - top - bottom
    n = max(len(values), 1)
    vmax = max([*values.values(), 1])
    bw = min((width - left - right) / n, 80)
    w = bw * n
    width = round(left + w + right)
    gap = max(2.0, bw * 0.15)
    out = [_svg_open(width, height),
           f'<line x1="{left}" y1="{top + h}" x2="{left + w:.1f}" y2="{top + h}" stroke="#999"/>',
           f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{vmax:g}{html.escape(unit)}</text>',
           f'<text x="{left - 6}" y="{top + h}" font-size="11" text-anchor="end">0</text>']
    step = max(1, n // 10)
    for i, (lab, v) in enumerate(values.items()):
        bh = h * v / vmax
        color = "#d9534f" if (highlight_zero and v == 0) else "#1f6fb2"
        out.append(f'<rect x="{left + i * bw + gap / 2:.1f}" y="{top + h - bh:.1f}" width="{max(bw - gap, 1):.1f}" '
                   f'height="{max(bh, 0 if v else 2):.1f}" fill="{color}"><title>{html.escape(lab)}: {v:g}'
                   f'{html.escape(unit)}</title></rect>')
        if i % step == 0:
            out.append(f'<text x="{left + i * bw + bw / 2:.1f}" y="{top + h + 16}" font-size="10" '
                       f'text-anchor="middle">{html.escape(_short(lab))}</text>')
    out.append("</svg>")
    return "".join(out)
