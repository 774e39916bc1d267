"""Writing to the front-end: staging a batch, and publishing it in one transaction.

Publish is set-based SQL on the target's own server (no rows travel back to Python):
take the last staged row per key, compare its digest with the ledger of what we last published,
write only new or changed rows with the 修改标志 the province expects (new / changed / voided),
record the new digests, advance the watermark and close the batch — all in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Table, text
from sqlalchemy.engine import Connection

from hipbridge.spec import Defaults, TableSpec

from .frontend import target_columns


def frame_records(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    sub = frame[columns]
    return sub.astype(object).where(sub.notna(), None).to_dict("records")


def stage_rows(conn: Connection, staging: Table, frame: pd.DataFrame) -> int:
    """Generic staging insert (executemany); faster dialect paths may replace it."""
    if frame.empty:
        return 0
    cols = [c.name for c in staging.columns]
    conn.execute(staging.insert(), frame_records(frame, cols))
    return len(frame)


@dataclass
class PublishCounts:
    staged: int = 0
    latest: int = 0
    inserted: int = 0
    updated: int = 0
    voided: int = 0

    @property
    def unchanged(self) -> int:
        return self.latest - self.inserted - self.updated - self.voided

    @property
    def superseded(self) -> int:
        return self.staged - self.latest

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.voided


class _SQL:
    """Builds the publish statements for one spec on one dialect."""

    def __init__(self, conn: Connection, spec: TableSpec, defaults: Defaults, staging: Table, ledger: Table,
                 target_name: str):
        self.dialect = conn.dialect.name
        prep = conn.dialect.identifier_preparer
        self.q = prep.quote
        self.stg = prep.format_table(staging)
        self.led = prep.format_table(ledger)
        self.tgt = self.q(target_name)
        self.pk = list(spec.target.primary_key)
        self.flag_col = defaults.audit("change_flag").name
        self.cols = [c.name for c in target_columns(spec, defaults)]
        self.flags = defaults.change_flags

    def _on(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{self.q(k)} = {b}.{self.q(k)}" for k in self.pk)

    @property
    def source(self) -> str:
        pk = ", ".join(self.q(k) for k in self.pk)
        latest = (f"(SELECT {pk}, MAX(hb_rownum) AS hb_last FROM {self.stg} "
                  f"WHERE hb_batch = :batch GROUP BY {pk})")
        k0 = self.q(self.pk[0])
        return (f"FROM {self.stg} s JOIN {latest} d ON {self._on('s', 'd')} AND s.hb_rownum = d.hb_last "
                f"LEFT JOIN {self.led} l ON {self._on('s', 'l')} "
                f"LEFT JOIN {self.tgt} t ON {self._on('s', 't')} "
                f"WHERE s.hb_batch = :batch"), k0

    @property
    def changed(self) -> str:
        _, k0 = self.source
        return f"(l.{k0} IS NULL OR t.{k0} IS NULL OR l.hb_digest <> s.hb_digest)"

    @property
    def flag(self) -> str:
        _, k0 = self.source
        return (f"CASE WHEN s.hb_void = 1 THEN '{self.flags.voided}' WHEN l.{k0} IS NULL "
                f"THEN '{self.flags.new}' ELSE '{self.flags.changed}' END")

    def counts(self) -> str:
        src, k0 = self.source
        ch = self.changed
        return (f"SELECT COUNT(*) AS latest, "
                f"SUM(CASE WHEN {ch} AND s.hb_void = 0 AND l.{k0} IS NULL THEN 1 ELSE 0 END) AS inserted, "
                f"SUM(CASE WHEN {ch} AND s.hb_void = 0 AND l.{k0} IS NOT NULL THEN 1 ELSE 0 END) AS updated, "
                f"SUM(CASE WHEN {ch} AND s.hb_void = 1 THEN 1 ELSE 0 END) AS voided {src}")

    def _upsert(self, table: str, cols: list[str], select_sql: str) -> str:
        names = ", ".join(self.q(c) for c in cols)
        rest = [c for c in cols if c not in self.pk]
        if self.dialect in ("mysql", "mariadb"):
            sets = ", ".join(f"{self.q(c)} = VALUES({self.q(c)})" for c in rest)
            return f"INSERT INTO {table} ({names}) {select_sql} ON DUPLICATE KEY UPDATE {sets}"
        sets = ", ".join(f"{self.q(c)} = excluded.{self.q(c)}" for c in rest)
        keys = ", ".join(self.q(k) for k in self.pk)
        return f"INSERT INTO {table} ({names}) {select_sql} ON CONFLICT ({keys}) DO UPDATE SET {sets}"

    def write_target(self) -> str:
        src, _ = self.source
        exprs = [self.flag if c == self.flag_col else f"s.{self.q(c)}" for c in self.cols]
        return self._upsert(self.tgt, self.cols, f"SELECT {', '.join(exprs)} {src} AND {self.changed}")

    def write_ledger(self) -> str:
        src, k0 = self.source
        cols = self.pk + ["hb_digest", "hb_flag", "hb_batch"]
        exprs = [f"s.{self.q(k)}" for k in self.pk] + ["s.hb_digest", self.flag, ":batch"]
        cond = f"(l.{k0} IS NULL OR l.hb_digest <> s.hb_digest)"
        return self._upsert(self.led, cols, f"SELECT {', '.join(exprs)} {src} AND {cond}")

    def clear_staging(self) -> str:
        return f"DELETE FROM {self.stg} WHERE hb_batch = :batch"


def publish_batch(conn: Connection, spec: TableSpec, defaults: Defaults, staging: Table, ledger: Table,
                  batch_id: str) -> PublishCounts:
    """Move one staged batch into the target table. Call inside the caller's transaction."""
    sql = _SQL(conn, spec, defaults, staging, ledger, spec.target.name)
    params = {"batch": batch_id}
    staged = conn.execute(text(f"SELECT COUNT(*) FROM {sql.stg} WHERE hb_batch = :batch"), params).scalar() or 0
    row = conn.execute(text(sql.counts()), params).mappings().one()
    counts = PublishCounts(staged=int(staged), latest=int(row["latest"] or 0), inserted=int(row["inserted"] or 0),
                           updated=int(row["updated"] or 0), voided=int(row["voided"] or 0))
    if counts.written:
        # The target first: its statement reads the ledger as it was before this batch.
        conn.execute(text(sql.write_target()), params)
        conn.execute(text(sql.write_ledger()), params)
    conn.execute(text(sql.clear_staging()), params)
    return counts
