"""Per-table status of the front-end: rows, watermark, and the last batch's outcome and counts."""

from __future__ import annotations

from sqlalchemy import func, inspect, select, table

from hipbridge.io import state
from hipbridge.pipeline.publish import counts_text
from hipbridge.statuses import BatchStatus


def table_status(ctx) -> list[dict]:
    insp = inspect(ctx.engine)
    existing = set(insp.get_table_names())
    wm = ctx.ops.table("watermark")
    out = []
    with ctx.engine.connect() as conn:
        marks = {r.table_id: r.watermark for r in conn.execute(select(wm.c.table_id, wm.c.watermark))}
        for table_id, spec in sorted(ctx.specs.specs.items()):
            rows = None
            if spec.target.name in existing:
                rows = conn.execute(select(func.count()).select_from(table(spec.target.name))).scalar()
            last = state.last_batch(ctx.engine, ctx.ops, table_id)
            out.append({
                "table": table_id,
                "label": spec.label,
                "target": spec.target.name,
                "rows": rows,
                "watermark": marks[table_id].isoformat(sep=" ") if marks.get(table_id) else None,
                "last_run": _last_run(last),
            })
    return out


def _last_run(row: dict | None) -> dict | None:
    if row is None:
        return None
    keep = ("batch_id", "mode", "status", "extracted", "published", "inserted", "updated", "voided",
            "unchanged", "quarantined", "skipped", "older", "unsent", "deleted", "message")
    out = {k: row.get(k) for k in keep}
    for k in ("window_start", "window_end", "started_at", "finished_at"):
        out[k] = row[k].isoformat(sep=" ") if row.get(k) else None
    return out


def format_table(rows: list[dict]) -> str:
    head = f"{'table':24} {'target':10} {'rows':>9}  {'watermark':19}  last run"
    lines = [head, "-" * len(head)]
    for r in rows:
        last = r["last_run"]
        run = "never" if last is None else f"{last['status']}: {counts_text(last)}"
        rows_text = "-" if r["rows"] is None else str(r["rows"])
        lines.append(f"{r['table']:24} {r['target']:10} {rows_text:>9}  {r['watermark'] or '-':19}  {run}")
        if last is not None and last["status"] in BatchStatus.unsuccessful() and last.get("message"):
            lines.append(f"{'':24} why: {last['message'].splitlines()[0][:300]}")
    return "\n".join(lines)
