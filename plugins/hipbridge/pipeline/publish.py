"""Publish: move a staged batch into the front-end table in one transaction.

Publish is set-based SQL on the target's own server (no rows travel back to Python):
take the last staged row per key, compare its digest with the ledger of what we last published,
write only new or changed rows with the 修改标志 the province expects (new / changed / voided),
record the new digests, advance the watermark and close the batch — all in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, text
from sqlalchemy.engine import Connection

from hipbridge.io import state
from hipbridge.io.dialects import frontend_dialect
from hipbridge.io.frontend import target_columns
from hipbridge.io.staging import FLAG_COLUMN, add_key_index, drop_table
from hipbridge.settings import hospital_now
from hipbridge.spec import Defaults, TableSpec
from hipbridge.statuses import BatchStatus

from .context import Context
from .failures import PipelineError
from .retry import with_retries

log = logging.getLogger(__name__)


@dataclass
class PublishCounts:
    """What one publish did. `written` rows went to the target; everything else is accounted for.

    staged = latest + superseded (earlier rows of a key the batch repeats);
    latest = inserted + updated + voided (written) + unchanged + older + unsent.
    """

    staged: int = 0
    latest: int = 0
    inserted: int = 0
    updated: int = 0
    voided: int = 0
    older: int = 0   # an older version than the one already published (not written)
    unsent: int = 0  # a key seen for the first time already voided: never sent, so not sent as voided
    deleted: int = 0  # keys sent before that the source no longer returns: sent again as voided

    @property
    def unchanged(self) -> int:
        return self.latest - self.inserted - self.updated - self.voided - self.older - self.unsent

    @property
    def superseded(self) -> int:
        return self.staged - self.latest

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.voided + self.deleted


def counts_text(c: dict) -> str:
    """One line of a batch's counts, the same in `hipbridge run`, `status` and task logs.

    published = rows written (new + changed + voided); skipped = not read (change time NULL) +
    older than what is published + first seen already voided.
    """
    def n(k: str) -> int:
        return int(c.get(k) or 0)

    skipped = n("skipped") + n("older") + n("unsent")
    deleted = f", deleted at the source {n('deleted')}" if n("deleted") else ""
    line = (f"extracted {n('extracted')}, published {n('published')} (new {n('inserted')}, changed {n('updated')}, "
            f"voided {n('voided')}{deleted}), unchanged {n('unchanged')}, quarantined {n('quarantined')}, "
            f"skipped {skipped}")
    if skipped:
        line += (f" (change time NULL {n('skipped')}, older than published {n('older')}, "
                 f"first seen voided {n('unsent')})")
    return line


# hb_flag values of staged rows that are not written (never a 修改标志: those are digits)
OLDER_MARK, UNSENT_MARK = "-o", "-u"


class PublishSQL:
    """Builds the publish statements for one spec on one dialect.

    Publishing runs in three set-based steps inside the caller's transaction:

    1. classify: the keys of the batch whose row is new, changed or voided — compared with the
       ledger (and with the target, so a row deleted from the front-end is written again) — go
       into a narrow temporary table `hb_changed` with their 修改标志;
    2. the target and the ledger are upserted from `hb_changed` joined to the staged rows;
    3. counts come from `hb_changed`.

    A staged row older than what the ledger says was published (its 数据更新时间 before the
    ledger's `hb_changed_at`) is classified `OLDER_MARK` and not written: a backfill window that
    read a row before the daily run published a newer version never takes the front-end back in
    time. A key seen for the first time already voided is `UNSENT_MARK` (not written) unless
    `_defaults.yaml` says `first_seen_voided: send`.

    Why a separate step: an `INSERT INTO target … SELECT` that reads the target (or the ledger)
    in its own SELECT makes MySQL/MariaDB copy the whole result into a temporary table first;
    for a million wide rows that was slower than the insert itself. `hb_changed` holds only keys.
    """

    CHANGED = "hb_changed"

    def __init__(self, conn: Connection, spec: TableSpec, defaults: Defaults, staging: Table, ledger: Table,
                 target_name: str, unique: bool = False):
        self.unique = unique  # at most one staged row per key in the batch: no "last row per key" step
        self.dialect = frontend_dialect(conn)
        self.q = self.dialect.q
        self.stg = self.dialect.format_table(staging)
        self.led = self.dialect.format_table(ledger)
        self.tgt = self.q(target_name)
        self.pk = list(spec.target.primary_key)
        self.flag_col = defaults.audit("change_flag").name
        self.stamp_col = defaults.audit("extracted_at").name
        self.upd_name = defaults.audit("source_updated_at").name
        self.upd = self.q(self.upd_name)
        self.cols = [c.name for c in target_columns(spec, defaults)]
        self.flags = defaults.change_flags
        self.send_unsent = defaults.first_seen_voided == "send"

    def batch(self, alias: str = "") -> str:
        """The batch's rows: all of its own staging table. The constant predicate keeps every statement's
        text as it was measured (the server folds it away: nothing is evaluated per row)."""
        return "1 = 1"

    def _on(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{self.q(k)} = {b}.{self.q(k)}" for k in self.pk)

    def written(self, alias: str) -> str:
        f = self.flags
        return f"{alias}.hb_flag IN ('{f.new}', '{f.changed}', '{f.voided}')"

    def duplicates(self) -> str:
        pk = ", ".join(self.q(k) for k in self.pk)
        return (f"SELECT 1 FROM {self.stg} WHERE {self.batch()} GROUP BY {pk} "
                f"HAVING COUNT(*) > 1 LIMIT 1")

    @property
    def source(self) -> tuple[str, str]:
        """FROM … WHERE over the batch's last staged row per key, with the ledger and target joined."""
        pk = ", ".join(self.q(k) for k in self.pk)
        k0 = self.q(self.pk[0])
        joins = (f"LEFT JOIN {self.led} l ON {self._on('s', 'l')} "
                 f"LEFT JOIN {self.tgt} t ON {self._on('s', 't')} WHERE {self.batch('s')}")
        if self.unique:
            return f"FROM {self.stg} s {joins}", k0
        latest = (f"(SELECT {pk}, MAX(hb_rownum) AS hb_last FROM {self.stg} "
                  f"WHERE {self.batch()} GROUP BY {pk})")
        return f"FROM {self.stg} s JOIN {latest} d ON {self._on('s', 'd')} AND s.hb_rownum = d.hb_last {joins}", k0

    @property
    def older(self) -> str:
        return f"l.hb_changed_at > s.{self.upd}"

    @property
    def changed(self) -> str:
        _, k0 = self.source
        return f"(l.{k0} IS NULL OR t.{k0} IS NULL OR l.hb_digest <> s.hb_digest OR {self.older})"

    def _new_or_unsent(self) -> str:
        voided = self.flags.voided if self.send_unsent else UNSENT_MARK
        return f"CASE WHEN s.hb_void = 1 THEN '{voided}' ELSE '{self.flags.new}' END"

    @property
    def flag(self) -> str:
        _, k0 = self.source
        return (f"CASE WHEN l.{k0} IS NULL THEN {self._new_or_unsent()} WHEN {self.older} THEN '{OLDER_MARK}' "
                f"WHEN s.hb_void = 1 THEN '{self.flags.voided}' ELSE '{self.flags.changed}' END")

    def latest(self) -> str:
        if self.unique:
            return f"SELECT COUNT(*) FROM {self.stg} WHERE {self.batch()}"
        pk = ", ".join(self.q(k) for k in self.pk)
        return f"SELECT COUNT(*) FROM (SELECT {pk} FROM {self.stg} WHERE {self.batch()} GROUP BY {pk}) d"

    def drop_changed(self) -> str:
        return self.dialect.drop_temp_table(self.CHANGED)

    def classify(self) -> str:
        src, _ = self.source
        keys = ", ".join(f"s.{self.q(k)}" for k in self.pk)
        select = (f"SELECT {keys}, s.hb_rownum, s.hb_digest, s.{self.upd} AS hb_changed_at, {self.flag} AS hb_flag "
                  f"{src} AND {self.changed}")
        return self.dialect.create_temp_table(self.CHANGED, self.pk, select)

    # -- MySQL/MariaDB staging with unique keys: classify in place, no hb_changed and no join back
    def _unless_voided(self, flag: str) -> str:
        return f"CASE WHEN s.hb_void = 1 THEN '{self.flags.voided}' ELSE '{flag}' END"

    def flag_in_place(self) -> str:
        """Write each staged row's 修改标志 into its own hb_flag (NULL: unchanged).

        Measured at 1,000,000 rows: the hb_changed table plus the target upsert joined back to
        staging took 17 s; this UPDATE (a sequential pass over the Aria table, key lookups into
        the ledger) plus upserts filtered on hb_flag took 8 s. The target is probed only for a
        row whose digest equals the ledger's (was it deleted from the front-end since?): probing
        an empty target for every row cost 0.9 s per million.
        """
        k0 = self.q(self.pk[0])
        changed = self._unless_voided(self.flags.changed)
        gone = f"NOT EXISTS (SELECT 1 FROM {self.tgt} t WHERE {self._on('s', 't')})"
        case = (f"CASE WHEN l.{k0} IS NULL THEN {self._new_or_unsent()} WHEN {self.older} THEN '{OLDER_MARK}' "
                f"WHEN l.hb_digest <> s.hb_digest THEN {changed} WHEN {gone} THEN {changed} ELSE NULL END")
        return (f"UPDATE {self.stg} s LEFT JOIN {self.led} l ON {self._on('s', 'l')} "
                f"SET s.{FLAG_COLUMN} = {case} WHERE {self.batch('s')}")

    def flagged_counts(self) -> str:
        return (f"SELECT {FLAG_COLUMN}, COUNT(*) FROM {self.stg} WHERE {self.batch()} "
                f"AND {FLAG_COLUMN} IS NOT NULL GROUP BY {FLAG_COLUMN}")

    # -- the table's first publish: an empty ledger makes every staged key new (or voided)
    def ledger_is_empty(self) -> str:
        # a locking read: a concurrent first publish of the same table waits (or deadlocks and is
        # retried), so two batches cannot both take this path
        return f"SELECT 1 FROM {self.led} LIMIT 1 FOR UPDATE"

    def first_counts(self) -> str:
        return (f"SELECT {self._new_or_unsent()}, COUNT(*) FROM {self.stg} s "
                f"WHERE {self.batch('s')} GROUP BY s.hb_void")

    def _staged(self, first: bool) -> tuple[str, str]:
        """(flag expression, FROM … WHERE) over the staged rows to write: all on a first publish."""
        if first:
            unsent = "" if self.send_unsent else " AND s.hb_void = 0"
            return self._new_or_unsent(), f"FROM {self.stg} s WHERE {self.batch('s')}{unsent}"
        return f"s.{FLAG_COLUMN}", f"FROM {self.stg} s WHERE {self.batch('s')} AND {self.written('s')}"

    def _target_exprs(self, flag: str) -> list[str]:
        return [flag if c == self.flag_col else ":stamp" if c == self.stamp_col else f"s.{self.q(c)}"
                for c in self.cols]

    def write_target_flagged(self, first: bool = False) -> str:
        flag, source = self._staged(first)
        return self._upsert(self.tgt, self.cols, f"SELECT {', '.join(self._target_exprs(flag))} {source}",
                            self.upd_name)

    def write_ledger_flagged(self, first: bool = False) -> str:
        flag, source = self._staged(first)
        exprs = [f"s.{self.q(k)}" for k in self.pk] + ["s.hb_digest", flag, ":batch", f"s.{self.upd}"]
        return self._upsert(self.led, self.pk + ["hb_digest", "hb_flag", "hb_batch", "hb_changed_at"],
                            f"SELECT {', '.join(exprs)} {source}", "hb_changed_at")

    def changed_counts(self) -> str:
        return f"SELECT hb_flag, COUNT(*) FROM {self.CHANGED} GROUP BY hb_flag"

    def _from_changed(self) -> str:
        return (f"FROM {self.CHANGED} c JOIN {self.stg} s ON {self._on('c', 's')} AND s.hb_rownum = c.hb_rownum "
                f"WHERE {self.batch('s')} AND {self.written('c')}")

    def _upsert(self, table: str, cols: list[str], select_sql: str, changed_at: str) -> str:
        """INSERT … SELECT that updates an existing key (`FrontendDialect.upsert` says how a newer row wins)."""
        return self.dialect.upsert(table, cols, self.pk, select_sql, changed_at)

    def write_target(self) -> str:
        return self._upsert(self.tgt, self.cols, f"SELECT {', '.join(self._target_exprs('c.hb_flag'))} "
                                                 f"{self._from_changed()}", self.upd_name)

    def write_ledger(self) -> str:
        cols = self.pk + ["hb_digest", "hb_flag", "hb_batch", "hb_changed_at"]
        exprs = [f"c.{self.q(k)}" for k in self.pk] + ["c.hb_digest", "c.hb_flag", ":batch", "c.hb_changed_at"]
        # a WHERE keeps SQLite from reading ON CONFLICT as the SELECT's join constraint
        return self._upsert(self.led, cols, f"SELECT {', '.join(exprs)} FROM {self.CHANGED} c "
                                            f"WHERE {self.written('c')}", "hb_changed_at")

    # -- key reconciliation (a full read): keys the source no longer returns were deleted there
    def _absent(self, table: str) -> str:
        on = " AND ".join(f"s.{self.q(k)} = {table}.{self.q(k)}" for k in self.pk)
        return f"NOT EXISTS (SELECT 1 FROM {self.stg} s WHERE {on})"

    def void_deleted_target(self) -> str:
        flag = self.q(self.flag_col)
        return (f"UPDATE {self.tgt} SET {flag} = '{self.flags.voided}', {self.q(self.stamp_col)} = :stamp "
                f"WHERE {flag} <> '{self.flags.voided}' AND {self._absent(self.tgt)}")

    def void_deleted_ledger(self) -> str:
        return (f"UPDATE {self.led} SET hb_flag = '{self.flags.voided}', hb_batch = :batch "
                f"WHERE hb_flag <> '{self.flags.voided}' AND {self._absent(self.led)}")


def publish_batch(conn: Connection, spec: TableSpec, defaults: Defaults, staging: Table, ledger: Table,
                  batch_id: str, *, staged: int | None = None,
                  unique: bool | None = None, clock=None, reconcile: bool = False) -> PublishCounts:
    """Move one staged batch into the target table. Call inside the caller's transaction.

    The staged rows stay: the caller drops the batch's staging table after the commit (deleting
    them is housekeeping, and inside the transaction it would only make the transaction longer).
    staged: the rows the staging table holds for the batch, when already counted; unique: whether
    the batch holds at most one row per key, when already known (transfer counts duplicate keys
    as it stages; otherwise a GROUP BY finds out).
    clock: returns the time written as 数据采集时间 (default: now). It is read just before the
    target is written, the last statement before the caller's bookkeeping and commit, so a
    platform that extracts by 数据采集时间 does not skip rows that were still uncommitted when
    it last looked (the extraction time, hours earlier for a long batch, would).
    reconcile: the batch read the whole source (a full run, nothing quarantined): target rows whose
    key it did not return were deleted at the source and are written again with 修改标志 = voided.
    """
    sql = PublishSQL(conn, spec, defaults, staging, ledger, spec.target.name)
    params = {"batch": batch_id}
    heap = sql.dialect.heap_staging  # MySQL/MariaDB: no index until one is needed
    if heap and (not unique or reconcile):
        add_key_index(conn, staging, sql.pk)
    if unique is None:
        unique = conn.execute(text(sql.duplicates()), params).first() is None
    sql.unique = unique
    if heap and unique:
        _sort_staging(conn, sql)
    if staged is None:
        staged = conn.execute(text(f"SELECT COUNT(*) FROM {sql.stg} WHERE {sql.batch()}"),
                              params).scalar() or 0
    latest = staged if unique else (conn.execute(text(sql.latest()), params).scalar() or 0)
    flags = defaults.change_flags
    in_place = unique and heap
    # the table's first publish (e.g. the first upload of its history): no ledger row to compare
    # with, so no classification pass — every staged row is new, or voided
    first = in_place and conn.execute(text(sql.ledger_is_empty())).first() is None
    if first:
        by_flag = {str(f): int(n) for f, n in conn.execute(text(sql.first_counts()), params).all()}
    elif in_place:
        conn.execute(text(sql.flag_in_place()), params)
        by_flag = {str(f): int(n) for f, n in conn.execute(text(sql.flagged_counts()), params).all()}
    else:
        conn.execute(text(sql.drop_changed()))
        conn.execute(text(sql.classify()), params)
        by_flag = {str(f): int(n) for f, n in conn.execute(text(sql.changed_counts())).all()}
    counts = PublishCounts(staged=int(staged), latest=int(latest), inserted=by_flag.get(flags.new, 0),
                           updated=by_flag.get(flags.changed, 0), voided=by_flag.get(flags.voided, 0),
                           older=by_flag.get(OLDER_MARK, 0), unsent=by_flag.get(UNSENT_MARK, 0))
    def stamp() -> object:
        now = (clock or hospital_now)()
        return sql.dialect.timestamp_param(now)

    if reconcile:
        conn.execute(text(sql.void_deleted_ledger()), params)
        counts.deleted = conn.execute(text(sql.void_deleted_target()), {**params, "stamp": stamp()}).rowcount or 0
    if counts.written - counts.deleted:
        conn.execute(text(sql.write_ledger_flagged(first) if in_place else sql.write_ledger()), params)
        conn.execute(text(sql.write_target_flagged(first) if in_place else sql.write_target()),
                     {**params, "stamp": stamp()})
    if not in_place:
        conn.execute(text(sql.drop_changed()))
    return counts


def _sort_staging(conn: Connection, sql: PublishSQL) -> None:
    """Rewrite the staging heap in key order when a classification pass will read it (`sort_staging_sql`).

    Not on the table's first publish (an empty ledger: nothing is looked up, and the rows are
    appended to an empty target). The check reads without a lock and the sort is DDL, which
    commits: both come before publish's first locking read, so nothing of the transaction is
    committed early. A ledger is never emptied again, so "not empty" here stays true.
    """
    sort = sql.dialect.sort_staging_sql(sql.stg, sql.pk)
    if sort and conn.execute(text(f"SELECT 1 FROM {sql.led} LIMIT 1")).first() is not None:
        conn.exec_driver_sql(sort)


def publish(ctx: Context, batch: state.Batch) -> PublishCounts:
    """Upsert changed rows, record digests, advance the watermark, close the batch: one transaction."""
    counts = with_retries(f"publish {batch.table_id}", _publish_once, ctx, batch)
    spec = ctx.specs.get(batch.table_id)
    staging, _ = ctx.tables_for(spec, batch)
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id) or {}
    log.info("%s: published batch %s: %s", batch.table_id, batch.batch_id, counts_text(row))
    try:  # housekeeping after the commit; the next transfer of this table retries it
        drop_table(ctx.engine, staging.schema, staging.name)
    except Exception as exc:  # noqa: BLE001
        log.warning("%s: staged rows of %s not cleared yet: %s", batch.table_id, batch.batch_id, exc)
    return counts


def _publish_once(ctx: Context, batch: state.Batch) -> PublishCounts:
    spec = ctx.specs.get(batch.table_id)
    staging, ledger = ctx.tables_for(spec, batch)
    row = state.batch_row(ctx.engine, ctx.ops, batch.batch_id)
    if row is None:
        raise PipelineError(f"unknown batch {batch.batch_id}")
    if row["status"] == BatchStatus.PUBLISHED:
        return PublishCounts()  # a retried publish task after a successful commit
    if row["status"] != BatchStatus.STAGED:
        raise PipelineError(f"batch {batch.batch_id} is {row['status']}, not staged: it cannot be published")
    with ctx.engine.begin() as conn:
        staged = int(row["extracted"] or 0) - int(row["quarantined"] or 0)
        # transfer counted duplicate keys (NULL: it could not, e.g. too many keys to track)
        unique = None if row.get("duplicates") is None else int(row["duplicates"]) == 0
        # a full read with nothing quarantined holds every key the source still has
        reconcile = spec.source.reconcile_keys and batch.mode == "full" and not int(row["quarantined"] or 0)
        if spec.source.reconcile_keys and batch.mode == "full" and not reconcile:
            log.warning("%s: keys not reconciled: %s row(s) of this full run were quarantined, so their keys "
                        "are missing from the batch without being deleted at the source", batch.table_id,
                        row["quarantined"])
        counts = publish_batch(conn, spec, ctx.defaults, staging, ledger, batch.batch_id,
                               unique=unique, clock=ctx.now, reconcile=reconcile)
        if counts.staged != staged or counts.latest > staged:
            raise PipelineError(f"batch {batch.batch_id}: {staged} rows were staged but the staging table "
                                f"holds {counts.staged} ({counts.latest} keys): not published")
        new_mark = next_watermark(spec, batch, row.get("max_changed_at"))
        if batch.advance_watermark and batch.window_end is not None:
            current = state.get_watermark(conn, ctx.ops, batch.table_id)
            covered = state.get_covered(conn, ctx.ops, batch.table_id)
            mark = max(m for m in (current, new_mark) if m is not None) if (current or new_mark) else None
            reach = max(batch.window_end, covered) if covered else batch.window_end
            if mark is not None and (mark != current or reach != covered):
                state.set_watermark(conn, ctx.ops, batch.table_id, mark, batch.batch_id, ctx.now(), reach)
        state.update_batch(conn, ctx.ops, batch.batch_id, status=BatchStatus.PUBLISHED, finished_at=ctx.now(),
                           published=counts.written, inserted=counts.inserted, updated=counts.updated,
                           voided=counts.voided, unchanged=counts.unchanged + counts.superseded,
                           duplicates=counts.superseded, older=counts.older, unsent=counts.unsent,
                           deleted=counts.deleted)
    return counts


def next_watermark(spec: TableSpec, batch: state.Batch, max_changed_at: datetime | None) -> datetime | None:
    """Where the watermark moves after this batch: the highest change time it staged, by the source's clock.

    Not the window's end (our clock): a HIS clock a few minutes behind the front-end, or a row that
    commits after we read past its change time, would otherwise fall before the next window and be
    lost. The next window starts at this value minus the lookback. A table without a watermark
    column keeps the window end (it is read whole every time); a batch that staged nothing leaves
    the watermark where it is.
    """
    if batch.window_end is None:
        return None
    if spec.source.watermark is None:
        return batch.window_end
    if max_changed_at is None:
        return None
    return min(max_changed_at, batch.window_end) if batch.mode != "full" else max_changed_at
