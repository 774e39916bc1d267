"""What every report people read shares: the hospital's clock with its zone named, inline SVG charts,
one page layout (table of contents, fits a 1,400 px window) and an XLSX writer with filters and rounding.

Used by the 数据质量评估报告 (`quality.py` here: it sits above `quality` and `recognition`, whose KPI it
shows) and the weekly 巡检报告 (`inspection/`).
"""

from .clock import ReportClock

__all__ = ["ReportClock"]
