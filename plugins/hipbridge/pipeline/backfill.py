"""History backfill: a date range cut into windows, each a normal `window` batch of the pipeline.

A hospital's first upload is years of history. It runs as many independent batches — one per
window of whole hospital days — so a failure costs one window, memory stays at the chunk size,
and the windows can run side by side (Airflow maps them to tasks that several Celery workers
share; `hipbridge backfill` runs them one after another with a progress bar).

Watermark: a window batch moves the watermark only when it starts at or before it (no gap), so
windows published in order carry it forward; windows published out of order never move it past
a window that is not yet published. The next incremental run re-reads from the watermark, and
rows it already published are found unchanged by their digests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from hipbridge.statuses import BatchStatus

from .context import Context
from .failures import PipelineError
from .run import BatchResult, sync_table


@dataclass(frozen=True)
class Window:
    start: date  # first hospital day, inclusive
    end: date  # last hospital day, inclusive

    def to_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, d: dict) -> Window:
        return cls(date.fromisoformat(d["start"]), date.fromisoformat(d["end"]))

    def __str__(self) -> str:
        return f"{self.start}…{self.end}"


def split_windows(start: date, end: date, days: int = 1) -> list[Window]:
    """[start, end] (whole days, inclusive) in windows of `days` days; the last may be shorter."""
    if days < 1:
        raise PipelineError(f"a backfill window needs at least 1 day (got {days})")
    if end < start:
        raise PipelineError(f"empty backfill range: {start} … {end}")
    out, cur = [], start
    while cur <= end:
        last = min(end, cur + timedelta(days=days - 1))
        out.append(Window(cur, last))
        cur = last + timedelta(days=1)
    return out


def run_window(ctx: Context, table: str, window: Window, run_id: str | None = None) -> BatchResult:
    """One window as one batch (plan, transfer, gate, publish)."""
    return sync_table(table, "window", window.start, window.end, ctx=ctx, run_id=run_id)


@dataclass
class BackfillReport:
    table: str
    windows: list[Window]
    results: list[BatchResult]
    failed: list[tuple[Window, str]]

    @property
    def extracted(self) -> int:
        return sum(r.extracted for r in self.results)

    @property
    def published(self) -> int:
        return sum(r.published for r in self.results)

    @property
    def quarantined(self) -> int:
        return sum(r.quarantined for r in self.results)

    @property
    def blocked(self) -> list[BatchResult]:
        return [r for r in self.results if r.status != BatchStatus.PUBLISHED]


def backfill(ctx: Context, table: str, start: date, end: date, days: int = 1, *, keep_going: bool = False,
             on_window: Callable[[Window, BatchResult | None, str | None], None] | None = None) -> BackfillReport:
    """Run the windows of [start, end] in order in this process; on_window(window, result, error) after each."""
    ctx.specs.get(table)  # unknown table: fail before doing anything
    windows = split_windows(start, end, days)
    report = BackfillReport(table, windows, [], [])
    for w in windows:
        try:
            r = run_window(ctx, table, w)
        except Exception as exc:  # noqa: BLE001 - reported per window; the caller decides to go on
            report.failed.append((w, f"{type(exc).__name__}: {exc}"))
            if on_window:
                on_window(w, None, str(exc))
            if not keep_going:
                break
            continue
        report.results.append(r)
        if on_window:
            on_window(w, r, None)
        if r.status != BatchStatus.PUBLISHED and not keep_going:
            break
    return report
