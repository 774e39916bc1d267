"""`hipbridge backfill TABLE --from DATE --to DATE [--days N]`: history in windows, with a progress bar."""

from __future__ import annotations

import sys
import time
from datetime import date

from hipbridge.statuses import BatchStatus


def _backfill(args) -> int:
    from tqdm import tqdm

    from hipbridge.pipeline.backfill import backfill, split_windows
    from hipbridge.pipeline.context import Context

    ctx = Context.create(args.specs, args.db)
    windows = split_windows(args.from_date, args.to_date, args.days)
    started = time.monotonic()
    totals = {"rows": 0, "quarantined": 0}
    bar = tqdm(total=len(windows), unit="window", desc=args.table, file=sys.stderr,
               disable=args.quiet, dynamic_ncols=True)

    def on_window(window, result, error):
        if result is not None:
            totals["rows"] += result.extracted
            totals["quarantined"] += result.quarantined
        rate = totals["rows"] / max(time.monotonic() - started, 1e-9)
        bar.set_postfix_str(f"{window} rows={totals['rows']:,} quarantined={totals['quarantined']:,} "
                            f"{rate:,.0f} rows/s")
        bar.update(1)
        if error:
            tqdm.write(f"{args.table} {window}: failed: {error}", file=sys.stderr)
        elif result.status != BatchStatus.PUBLISHED:
            tqdm.write(f"{args.table} {window}: {result.status}: {result.message}", file=sys.stderr)

    report = backfill(ctx, args.table, args.from_date, args.to_date, args.days, keep_going=args.keep_going,
                      on_window=on_window)
    bar.close()
    seconds = time.monotonic() - started
    done = sum(1 for r in report.results if r.status == BatchStatus.PUBLISHED)
    print(f"{args.table}: {done}/{len(windows)} window(s) published, rows extracted {report.extracted:,} / "
          f"published {report.published:,} / quarantined {report.quarantined:,} in {seconds:,.1f}s "
          f"({report.extracted / max(seconds, 1e-9):,.0f} rows/s)")
    if report.failed or report.blocked:
        for w, err in report.failed:
            print(f"  {w}: failed: {err}", file=sys.stderr)
        for r in report.blocked:
            print(f"  {r.window_start:%Y-%m-%d}: {r.status}: {r.message}", file=sys.stderr)
        return 3
    return 0


def register(sub) -> None:
    b = sub.add_parser("backfill", help="load a date range of history in windows (one batch per window), "
                                        "with a progress bar")
    b.add_argument("table", help="table id (e.g. lab_result)")
    b.add_argument("--from", dest="from_date", required=True, type=date.fromisoformat,
                   help="first hospital day (inclusive), YYYY-MM-DD")
    b.add_argument("--to", dest="to_date", required=True, type=date.fromisoformat,
                   help="last hospital day (inclusive), YYYY-MM-DD")
    b.add_argument("--days", type=int, default=1, help="days per window (default 1)")
    b.add_argument("--keep-going", action="store_true", help="continue with the next window after a failure")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--db", help="front-end database URL (default $HIPBRIDGE_FRONTEND_URL or the embedded SQLite)")
    b.add_argument("--specs", help="spec folder (default table_specs/)")
    b.set_defaults(func=_backfill)
