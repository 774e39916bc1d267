"""The quality gate between staging and publishing.

Two kinds of check decide whether a staged batch may be published: the share of the batch that
had to be quarantined (the spec's `quality.fatal_quarantine_pct`), and the quality engine's rules
on the staged rows (`hipbridge.quality.gate.run_gate`), of which a failed fatal rule blocks.
"""

from __future__ import annotations

from sqlalchemy import Table

from hipbridge.io import state
from hipbridge.spec import TableSpec


def check_batch(ctx, spec: TableSpec, batch: state.Batch, staging: Table) -> dict:
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id) or {}
    extracted, quarantined = int(row.get("extracted") or 0), int(row.get("quarantined") or 0)
    messages: list[str] = []
    limit = spec.quality.fatal_quarantine_pct
    if limit is not None and extracted and 100.0 * quarantined / extracted > limit:
        messages.append(f"隔离行占比 {100.0 * quarantined / extracted:.2f}% 超过阈值 {limit}%（{quarantined}/{extracted}）")
    from hipbridge.quality.gate import run_gate

    # transfer counted the batch's duplicate keys: with none, uniqueness needs no GROUP BY
    unique = [frozenset(spec.target.primary_key)] if row.get("duplicates") == 0 else None
    outcome = run_gate(ctx.engine, spec, ctx.specs, batch.batch_id, staging, unique_keys=unique,
                       rows=extracted)
    if outcome.blocked:
        messages.append(getattr(outcome, "message", None) or "致命级质控规则未通过")
    return {"blocked": bool(messages), "message": "；".join(messages) or None,
            "results": len(getattr(outcome, "results", []) or [])}
