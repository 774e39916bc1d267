"""XLSX exports people filter and sort: a bold frozen header, an AutoFilter on every sheet, figures
rounded (two decimals, shown as such), times as local text with the zone in the header, widths
that fit the content.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from .clock import ReportClock

RED = PatternFill("solid", fgColor="F8D7DA")
_BOLD = Font(bold=True)
_WRAP = Alignment(wrap_text=True, vertical="top")


def rounded(v: Any, digits: int = 2) -> Any:
    """Floats to `digits` decimals (NaN and ±inf become empty); everything else unchanged."""
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else round(v, digits)
    return v


class ReportBook:
    """One workbook; `sheet()` appends a filtered, frozen, rounded table."""

    def __init__(self, clock: ReportClock):
        self.clock = clock
        self.wb = Workbook()
        self._first = True

    def _cell(self, v: Any) -> Any:
        if isinstance(v, datetime):
            return self.clock.fmt(v, zone=False)     # the header names the zone
        if isinstance(v, date):
            return f"{v:%Y-%m-%d}"
        if isinstance(v, (list, tuple, set)):
            return ", ".join(str(x) for x in v)
        if isinstance(v, dict):
            return "; ".join(f"{k}: {x}" for k, x in v.items())
        return rounded(v)

    def sheet(self, title: str, header: list[str], rows: list[list[Any]], *, red_when=None):
        ws = self.wb.active if self._first else self.wb.create_sheet()
        self._first = False
        ws.title = title[:31]
        ws.append(header)
        for c in ws[1]:
            c.font = _BOLD
        widths = [max(8, min(60, _width(h))) for h in header]
        for r in rows:
            values = [self._cell(v) for v in r]
            ws.append(values)
            for i, v in enumerate(values[:len(widths)]):
                widths[i] = max(widths[i], min(60, _width(v)))
            if red_when is not None and red_when(values):
                for c in ws[ws.max_row]:
                    c.fill = RED
        _finish(ws, widths, len(header))
        return ws

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.wb.save(path)


def _finish(ws, widths: list[int], columns: int) -> None:
    """Widths, two-decimal number format, wrapped long text, frozen header, AutoFilter over the table."""
    for i, wdt in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = wdt + 2
    for row in ws.iter_rows(min_row=2):
        for c in row:
            if isinstance(c.value, float):
                c.number_format = "0.00"
            elif isinstance(c.value, str) and len(c.value) > 60:
                c.alignment = _WRAP
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(max(columns, 1))}{max(ws.max_row, 1)}"


def _width(v: Any) -> int:
    """Display width: a CJK character takes two columns."""
    s = "" if v is None else str(v)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)
