"""The table pipeline without Airflow: plan → transfer → gate → publish, in one process.

Each step is a function of (context, batch) in its own module (`plan`, `transfer`, `gate`,
`publish`) so the Airflow DAG can run them as separate tasks (retried independently) and the
CLI/tests can run them in one process (`sync_table`). Data never passes between steps in memory:
the batch is staged in its own table in the operations schema (`stg_<table>__<hash>`, dropped
after publishing). Sources and the front-end that go away are retried with backoff; only publish
moves the watermark. Design and figures: docs/transfer.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from hipbridge.io import state
from hipbridge.io.staging import drop_table
from hipbridge.statuses import BatchStatus

from .context import Context
from .gate import gate
from .plan import plan
from .publish import counts_text, publish
from .transfer import transfer

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    table: str
    batch_id: str
    mode: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    extracted: int = 0
    published: int = 0
    quarantined: int = 0
    inserted: int = 0
    updated: int = 0
    voided: int = 0
    unchanged: int = 0
    skipped: int = 0   # source rows not read: change time NULL (full runs read them)
    older: int = 0     # older than the version already published: not written
    unsent: int = 0    # first seen already voided: not sent
    deleted: int = 0   # keys the source no longer returns (full run, reconcile_keys): sent as voided
    mapping_counts: dict = field(default_factory=dict)
    message: str | None = None

    def summary(self) -> str:
        return f"{self.table}: {self.status} " + counts_text(vars(self))


def fail(ctx: Context, batch: state.Batch, exc: BaseException) -> None:
    """Record the failure in the batch log (best effort: the front-end may be the thing that failed)."""
    try:
        state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status=BatchStatus.FAILED, finished_at=ctx.now(),
                           message=f"{type(exc).__name__}: {exc}"[:4000])
        staging, _ = ctx.tables_for(ctx.specs.get(batch.table_id), batch)
        drop_table(ctx.engine, staging.schema, staging.name)  # a retried transfer starts from nothing anyway
    except Exception as inner:  # noqa: BLE001
        log.error("%s: could not mark batch %s failed: %s", batch.table_id, batch.batch_id, inner)


def sync_table(table: str, mode: str = "incremental", window_start=None, window_end=None, *,
               ctx: Context | None = None, high_watermark: datetime | None = None,
               run_id: str | None = None) -> BatchResult:
    """Run one table's whole pipeline in this process (CLI, tests, the embedded demo)."""
    ctx = ctx or Context.create()
    batch = plan(ctx, table, mode, window_start, window_end, high_watermark, run_id)
    try:
        moved = transfer(ctx, batch)
        outcome = gate(ctx, batch)
        if outcome.blocked:
            return BatchResult(table, batch.batch_id, mode, batch.window_start, batch.window_end, BatchStatus.BLOCKED,
                               extracted=moved.extracted, quarantined=moved.quarantined, skipped=moved.skipped,
                               mapping_counts=moved.mapping, message=outcome.message)
        counts = publish(ctx, batch)
    except Exception as exc:
        fail(ctx, batch, exc)
        raise
    return BatchResult(table, batch.batch_id, mode, batch.window_start, batch.window_end, BatchStatus.PUBLISHED,
                       extracted=moved.extracted, published=counts.written, quarantined=moved.quarantined,
                       inserted=counts.inserted, updated=counts.updated, voided=counts.voided,
                       unchanged=counts.unchanged + counts.superseded, skipped=moved.skipped,
                       older=counts.older, unsent=counts.unsent, deleted=counts.deleted,
                       mapping_counts=moved.mapping)
