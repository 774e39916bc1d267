"""Plan: fix a batch's window before anything is read, so every later step reads the same rows."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

from hipbridge.io import state

from .context import Context
from .failures import PipelineError

EPOCH = datetime(1900, 1, 1)
MODES = ("incremental", "window", "full")

def hospital_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min)
    return start, start + timedelta(days=1)


def plan(ctx: Context, table: str, mode: str = "incremental", window_start: date | datetime | None = None,
         window_end: date | datetime | None = None, high_watermark: datetime | None = None,
         run_id: str | None = None) -> state.Batch:
    """Fix the batch's window now, so everything later in the run reads the same rows.

    incremental: [watermark − lookback, high_watermark) — high_watermark defaults to now, and a
    scheduled daily run passes the end of the hospital's calendar day it covers.
    window: a rerun of [window_start, window_end] (dates are whole hospital days, end inclusive).
    full: everything up to now.
    """
    if mode not in MODES:
        raise PipelineError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    spec = ctx.specs.get(table)
    ctx.ensure_frontend([table])
    now = ctx.now()
    current = state.get_watermark(ctx.engine, ctx.ops, table)
    wm = spec.source.watermark
    advance = True
    if wm is None:
        start, end = EPOCH, now  # no change column: a full read each run, unchanged rows are skipped
    elif mode == "full":
        start, end = EPOCH, high_watermark or now
    elif mode == "window":
        if window_start is None or window_end is None:
            raise PipelineError("a window rerun needs both window_start and window_end")
        start = window_start if isinstance(window_start, datetime) else hospital_day_bounds(window_start)[0]
        end = window_end if isinstance(window_end, datetime) else hospital_day_bounds(window_end)[1]
        if end <= start:
            raise PipelineError(f"empty window: {start} … {end}")
        # A rerun never moves the watermark back, and only moves it on if it leaves no gap after
        # the windows already published.
        covered = state.get_covered(ctx.engine, ctx.ops, table)
        advance = covered is None or start <= covered
    else:
        end = high_watermark or now
        lookback = wm.lookback if wm.lookback is not None else ctx.defaults.watermark_lookback
        start = (current - lookback) if current else EPOCH
        end = max(start, end)  # nothing new yet: an empty, successful batch
    batch = state.Batch(
        batch_id=f"{table}-{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}", table_id=table, mode=mode,
        window_start=start, window_end=end, started_at=now, advance_watermark=advance, run_id=run_id,
    )
    state.open_batch(ctx.engine, ctx.ops, batch)
    return batch
