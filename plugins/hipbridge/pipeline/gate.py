"""The quality gate between staging and publishing.

Two kinds of check decide whether a staged batch may be published: the share of the batch that
had to be quarantined (the spec's `quality.fatal_quarantine_pct`), and the quality engine's rules
on the staged rows (`hipbridge.quality.gate.run_gate`), of which a failed fatal rule blocks.
"""

from __future__ import annotations

from sqlalchemy import Table

from hipbridge.io import state
from hipbridge.io.staging import drop_table
from hipbridge.quality.gate import run_gate
from hipbridge.spec import TableSpec
from hipbridge.statuses import BatchStatus

from .context import Context
from .results import GateResult


def check_batch(ctx: Context, spec: TableSpec, batch: state.Batch, staging: Table) -> GateResult:
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id) or {}
    extracted, quarantined = int(row.get("extracted") or 0), int(row.get("quarantined") or 0)
    messages: list[str] = []
    limit = spec.quality.fatal_quarantine_pct
    if limit is not None and extracted and 100.0 * quarantined / extracted > limit:
        messages.append(f"隔离行占比 {100.0 * quarantined / extracted:.2f}% 超过阈值 {limit}%（{quarantined}/{extracted}）")

    # transfer counted the batch's duplicate keys: with none, uniqueness needs no GROUP BY
    unique = [frozenset(spec.target.primary_key)] if row.get("duplicates") == 0 else None
    outcome = run_gate(ctx.engine, spec, ctx.specs, batch.batch_id, staging, unique_keys=unique,
                       rows=extracted)
    if outcome.blocked:
        messages.append(getattr(outcome, "message", None) or "致命级质控规则未通过")
    return GateResult(blocked=bool(messages), message="；".join(messages) or None,
                      results=len(getattr(outcome, "results", []) or []))


def gate(ctx: Context, batch: state.Batch) -> GateResult:
    """Run the quality gate on the staged batch; a fatal failure blocks publishing."""
    spec = ctx.specs.get(batch.table_id)
    staging, _ = ctx.tables_for(spec, batch)
    outcome = check_batch(ctx, spec, batch, staging)
    if outcome.blocked:
        state.update_batch(ctx.engine, ctx.ops, batch.batch_id, status=BatchStatus.BLOCKED, finished_at=ctx.now(),
                           message=outcome.message)
        drop_table(ctx.engine, staging.schema, staging.name)  # the batch is over: its plaintext rows go with it
    return outcome
