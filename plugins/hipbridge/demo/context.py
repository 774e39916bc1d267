"""Shared state of one demo build: the random stream, the calendar window and small helpers.

Why one object: the generators for HIS, LIS and PACS must agree on the window, the clock and
the order in which random numbers are drawn, or the same seed would not give the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from .db import to_seconds

DAY = 86_400
MINUTE = 60
HOUR = 3_600
# Days of inpatient history before the window, so stays discharged in the window exist.
CARRY_IN_DAYS = 14


@dataclass
class Ctx:
    rng: np.random.Generator
    end_date: date
    days: int
    scale: float
    seed: int
    counts: dict = field(default_factory=dict)

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def w0(self) -> int:
        """Window start (seconds): 00:00 of the first covered day."""
        return to_seconds(self.start_date)

    @property
    def w1(self) -> int:
        """Window end (exclusive): 00:00 after the last covered day."""
        return to_seconds(self.end_date + timedelta(days=1))

    def day_starts(self, extra_before: int = 0) -> np.ndarray:
        first = self.w0 - extra_before * DAY
        return np.arange(first, self.w1, DAY, dtype=np.int64)

    def pick(self, options: list, n: int, p: list | np.ndarray | None = None) -> np.ndarray:
        """Random choice that shows every option once first, so small demos still use every code."""
        arr = np.empty(n, dtype=object)
        if n == 0:
            return arr
        if p is not None:
            p = np.asarray(p, dtype=float)
            p = p / p.sum()
        idx = self.rng.choice(len(options), n, p=p)
        k = min(n, len(options))
        idx[:k] = np.arange(k)
        arr[:] = [options[i] for i in idx]
        return arr


def seq_ids(prefix: str, day_sec: np.ndarray, width: int = 6) -> np.ndarray:
    """Vendor-style ids: prefix + yyyymmdd + per-day sequence (e.g. MZ20261124000017)."""
    day_sec = np.asarray(day_sec, dtype=np.int64)
    if len(day_sec) == 0:
        return np.empty(0, dtype=object)
    day = (day_sec // DAY) * DAY
    order = np.argsort(day_sec, kind="stable")
    seq = np.empty(len(day_sec), dtype=np.int64)
    sorted_days = day[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_days)) + 1]
    ranks = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    seq[order] = ranks + 1
    ymd = np.datetime_as_string((np.datetime64("1970-01-01", "D") + (day // DAY).astype("timedelta64[D]")),
                                unit="D")
    ymd = np.char.replace(ymd, "-", "")
    return np.char.add(np.char.add(prefix, ymd), np.char.zfill(seq.astype(str), width)).astype(object)


def running_ids(prefix: str, n: int, start: int = 1, width: int = 10) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(np.arange(start, start + n).astype(str), width)).astype(object)
