"""Writing to the front-end: staging a batch, and publishing it in one transaction.

Publish is set-based SQL on the target's own server (no rows travel back to Python):
take the last staged row per key, compare its digest with the ledger of what we last published,
write only new or changed rows with the 修改标志 the province expects (new / changed / voided),
record the new digests, advance the watermark and close the batch — all in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype
from sqlalchemy import Column, Date, DateTime, Index, MetaData, String, Table, Text, text
from sqlalchemy.engine import Connection

from hipbridge.settings import hospital_now, settings
from hipbridge.spec import Defaults, TableSpec

from .frontend import target_columns

# ---------------------------------------------------------------- per-batch staging tables


BATCH_TABLE_SEP = "__"
FLAG_COLUMN = "hb_flag"  # a MySQL staging table's own column: not loaded, set by publish


def batch_table_name(staging_name: str, batch_id: str) -> str:
    return f"{staging_name}{BATCH_TABLE_SEP}{hashlib.sha1(batch_id.encode()).hexdigest()[:10]}"


def batch_staging_table(staging: Table, batch_id: str, primary_key: list[str], dialect: str,
                        mariadb: bool = False, constants: dict[str, object] | None = None) -> Table:
    """A batch's own staging table: the spec's staging columns under a per-batch name.

    Why per batch: publishing then never deletes staged rows (DROP TABLE after the commit is
    instant; deleting a million staged rows took longer than loading them), and concurrent
    batches of one table (backfill windows) never touch each other's rows.

    On MySQL/MariaDB the table is a plain heap without any index, plus the `hb_flag` column
    publish fills in place: transfer counts duplicate keys itself (so publish knows whether it
    needs the "last row per key" step), and every later statement scans the table once. On
    MariaDB it uses Aria, not InnoDB: it is disposable (a failed or killed batch is restaged from
    nothing) and needs no undo, redo or transaction log. Measured with 300,000 rows: LOAD DATA
    into keyed Aria with REPLACE 7.8 s, into an Aria heap 2.1 s (docs/transfer.md).

    constants: columns whose value is the same in every row of the batch (the batch id, the
    institution, 密级, 数据采集时间, constant spec values) become column defaults, and the loaders
    leave them out of the text they send: less to write and for the server to parse.
    """
    md = MetaData()
    name = batch_table_name(staging.name, batch_id)
    heap = dialect in ("mysql", "mariadb")
    # SQLite keeps its executemany of every column (its datetime text form is SQLAlchemy's);
    # TEXT columns get no default (MySQL 8 refuses one)
    wanted = {"hb_batch": batch_id}
    if dialect != "sqlite":
        wanted.update(constants or {})
    constants = {k: v for k, v in wanted.items()
                 if v is not None and k in staging.c and not isinstance(staging.c[k].type, Text)}
    cols = [Column(c.name, c.type, nullable=True,
                   server_default=_default_literal(constants[c.name]) if c.name in constants else None)
            for c in staging.columns]
    if heap:
        cols.append(Column(FLAG_COLUMN, String(4), nullable=True))
    extra = [] if heap else [Index(f"ix_{name}", *primary_key)]
    kwargs = {"mysql_charset": "utf8mb4"} if heap else {}
    if mariadb and settings().staging_engine == "aria":
        kwargs.update({"mysql_engine": "Aria", "mysql_transactional": "0"})
    table = Table(name, md, *cols, *extra, schema=staging.schema, **kwargs)
    table.info["per_batch"] = True  # every row belongs to the batch: no hb_batch filter needed
    table.info["constants"] = frozenset(constants)
    return table


def _default_literal(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def add_key_index(conn: Connection, staging: Table, primary_key: list[str]) -> None:
    """Index a heap staging table by key and row number (only needed when the batch repeats keys)."""
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in [*primary_key, "hb_rownum"])
    conn.exec_driver_sql(f"CREATE INDEX {prep.quote('ix_' + staging.name[-20:])} ON {prep.format_table(staging)} "
                         f"({cols})")


def loaded_columns(staging: Table) -> list[str]:
    """The staging columns a loader fills: not the flag publish writes, not the batch's constants."""
    constants = staging.info.get("constants", frozenset())
    return [c.name for c in staging.columns if c.name != FLAG_COLUMN and c.name not in constants]


def frame_records(frame: pd.DataFrame, columns: list[str], date_columns: frozenset[str] = frozenset()) -> list[dict]:
    sub = frame[columns].astype(object)
    sub = sub.where(frame[columns].notna(), None)
    records = sub.to_dict("records")
    if date_columns:
        for r in records:
            for c in date_columns:
                v = r.get(c)
                if isinstance(v, datetime):
                    r[c] = v.date()
    return records


# ---------------------------------------------------------------- text for bulk loaders
#
# One text form serves LOAD DATA (MySQL/MariaDB) and COPY (PostgreSQL): tab-separated, every value
# in double quotes (a quote inside doubled), NULL as the bare word NULL — so the text "NULL" (quoted)
# and SQL NULL (bare) stay apart, and tabs, newlines and backslashes need no escaping. Arrow's CSV
# writer (C++) produces it; measured on a 50,000-row, 36-column conformed chunk it took 0.13 s
# against 0.26 s for per-row Python joins.

LOADER_NULL = "NULL"
MYSQL_LOAD_FORMAT = ("CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ENCLOSED BY '\"' ESCAPED BY '' "
                     "LINES TERMINATED BY '\\n'")
POSTGRES_COPY_FORMAT = f"(FORMAT csv, DELIMITER E'\\t', NULL '{LOADER_NULL}')"


def _arrow_column(series: pd.Series, date_only: bool = False):
    from .arrow import pyarrow

    pa = pyarrow()

    dtype = series.dtype
    if is_datetime64_any_dtype(dtype):
        values = series.to_numpy(dtype="datetime64[s]")
        arr = pa.array(values, type=pa.timestamp("s"), mask=np.isnat(values))
        return arr.cast(pa.date32()) if date_only else arr
    if str(dtype) == "Int64" or dtype.kind in "iu":
        return pa.array(series, type=pa.int64(), from_pandas=True)
    if dtype.kind == "f":  # shortest round-trip form, e.g. 12.5; MariaDB and PostgreSQL read it exactly
        return pa.array(series, type=pa.float64(), from_pandas=True)
    try:
        return pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # numbers in a text column
        return pa.array([None if pd.isna(v) else str(v) for v in series.to_numpy(dtype=object)], type=pa.string())


def loader_table(frame: pd.DataFrame, columns: list[str], date_only: frozenset[str] = frozenset()):
    from .arrow import pyarrow

    return pyarrow().table([_arrow_column(frame[c], c in date_only) for c in columns], names=columns)


def bulk_text(frame: pd.DataFrame, columns: list[str], date_only: frozenset[str] = frozenset()) -> bytes:
    """The loader text of a frame as bytes (see the format above)."""
    out = io.BytesIO()
    write_bulk_text(out, frame, columns, date_only)
    return out.getvalue()


def write_bulk_text(out, frame: pd.DataFrame, columns: list[str], date_only: frozenset[str] = frozenset()) -> None:
    """Write the loader text of a frame (or of an Arrow table with those columns) to a binary file."""
    import pyarrow.csv as pcsv

    from .arrow import pyarrow

    table = frame if isinstance(frame, pyarrow().Table) else loader_table(frame, columns, date_only)
    if table.num_rows:
        pcsv.write_csv(table.select(columns), out, pcsv.WriteOptions(
            include_header=False, delimiter="\t", null_string=LOADER_NULL, quoting_style="all_valid"))


def _date_only(staging: Table) -> frozenset[str]:
    return frozenset(c.name for c in staging.columns if isinstance(c.type, Date) and not isinstance(c.type, DateTime))


def _load_file_mysql(conn: Connection, table: str, names: str, path: str, n: int, label: str) -> None:
    sql = f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} {MYSQL_LOAD_FORMAT} ({names})"
    loaded = conn.exec_driver_sql(sql).rowcount
    # LOAD DATA LOCAL turns conversion errors into warnings: any warning means a value was changed
    problems = [tuple(r) for r in conn.exec_driver_sql("SHOW WARNINGS LIMIT 5") if r[0] != "Note"]
    if problems or loaded != n:
        raise BulkLoadError(f"LOAD DATA into {label}: {loaded} of {n} rows loaded; warnings: {problems}")


def _load_data_mysql(conn: Connection, staging: Table, frame: pd.DataFrame, cols: list[str]) -> None:
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(c) for c in cols)
    fd, path = tempfile.mkstemp(prefix=spool_prefix(), suffix=".tsv", dir=_spool_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            write_bulk_text(f, frame, cols, _date_only(staging))
        _load_file_mysql(conn, prep.format_table(staging), names, path, len(frame), staging.fullname)
    finally:
        os.unlink(path)


def _copy_postgresql(conn: Connection, staging: Table, frame: pd.DataFrame, cols: list[str]) -> None:
    data = bulk_text(frame, cols, _date_only(staging))
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(c) for c in cols)
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.copy_expert(f"COPY {prep.format_table(staging)} ({names}) FROM STDIN WITH {POSTGRES_COPY_FORMAT}",
                        io.BytesIO(data))
    finally:
        cur.close()


def _spool_dir() -> str | None:
    return settings().spool_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)


def spool_prefix() -> str:
    """Loader files are named after their process, so a killed process's files are known at once."""
    return f"hb_stage_{os.getpid()}_"


def _owner_gone(name: str) -> bool:
    pid = name.removeprefix("hb_stage_").split("_", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def clear_stale_spool(max_age_s: float = 3600.0) -> int:
    """Remove loader files left by killed processes: at once when the owning process is gone, else by age.

    The files hold a chunk's rows in plaintext (LOAD DATA reads them as they are), so they must
    not outlive their batch: each is deleted after its load, and a killed process's are removed
    by the next transfer on this machine (`pipeline.run._housekeeping`).
    """
    folder = _spool_dir() or tempfile.gettempdir()
    now, removed = time.time(), 0
    for name in os.listdir(folder):
        if name.startswith("hb_stage_") and name.endswith(".tsv"):
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if _owner_gone(name) or now - os.path.getmtime(path) > max_age_s:
                    os.unlink(path)
                    removed += 1
    return removed


class BulkLoadError(RuntimeError):
    pass


def stage_rows(conn: Connection, staging: Table, frame: pd.DataFrame) -> int:
    """Stage a conformed chunk: LOAD DATA LOCAL INFILE (MySQL/MariaDB), COPY (PostgreSQL), executemany otherwise.

    `HIPBRIDGE_BULK_LOAD=0` forces the generic insert (for comparison and diagnosis).
    """
    if frame.empty:
        return 0
    cols = loaded_columns(staging)
    dialect = conn.dialect.name
    bulk = settings().bulk_load
    if bulk and dialect in ("mysql", "mariadb"):
        _load_data_mysql(conn, staging, frame, cols)
    elif bulk and dialect == "postgresql":
        _copy_postgresql(conn, staging, frame, cols)
    else:
        conn.execute(staging.insert(), frame_records(frame, cols, _date_only(staging)))
    return len(frame)


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


# hb_flag values of staged rows that are not written (never a 修改标志: those are digits)
OLDER_MARK, UNSENT_MARK = "-o", "-u"


class _SQL:
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
        self.dialect = conn.dialect.name
        prep = conn.dialect.identifier_preparer
        self.q = prep.quote
        self.stg = prep.format_table(staging)
        self.led = prep.format_table(ledger)
        self.tgt = self.q(target_name)
        self.pk = list(spec.target.primary_key)
        self.flag_col = defaults.audit("change_flag").name
        self.stamp_col = defaults.audit("extracted_at").name
        self.upd_name = defaults.audit("source_updated_at").name
        self.upd = self.q(self.upd_name)
        self.cols = [c.name for c in target_columns(spec, defaults)]
        self.flags = defaults.change_flags
        self.send_unsent = defaults.first_seen_voided == "send"
        self.per_batch = bool(staging.info.get("per_batch"))

    def batch(self, alias: str = "") -> str:
        """The batch's rows: all of a per-batch table (no predicate to evaluate per row)."""
        if self.per_batch:
            return "1 = 1"
        return f"{alias + '.' if alias else ''}hb_batch = :batch"

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
        if self.dialect in ("mysql", "mariadb"):
            return f"DROP TEMPORARY TABLE IF EXISTS {self.CHANGED}"
        return f"DROP TABLE IF EXISTS {self.CHANGED}"

    def classify(self) -> str:
        src, _ = self.source
        keys = ", ".join(f"s.{self.q(k)}" for k in self.pk)
        select = (f"SELECT {keys}, s.hb_rownum, s.hb_digest, s.{self.upd} AS hb_changed_at, {self.flag} AS hb_flag "
                  f"{src} AND {self.changed}")
        if self.dialect in ("mysql", "mariadb"):
            pk = ", ".join(self.q(k) for k in self.pk)
            return f"CREATE TEMPORARY TABLE {self.CHANGED} (PRIMARY KEY ({pk})) ENGINE=InnoDB {select}"
        return f"CREATE TEMPORARY TABLE {self.CHANGED} AS {select}"

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
        """INSERT … SELECT that updates an existing key; changed_at: the table's source change-time column.

        PostgreSQL and SQLite update only when the incoming row is not older (`DO UPDATE … WHERE`):
        a concurrent publish of the same key that committed after our classification read the
        ledger must still win if it is newer. On MySQL/MariaDB the classification's reads of the
        ledger are locking reads (as in any INSERT/UPDATE … SELECT), so a concurrent publish waits
        or deadlocks and is retried, and classifies against the committed newer row.
        """
        names = ", ".join(self.q(c) for c in cols)
        rest = [c for c in cols if c not in self.pk]
        if self.dialect in ("mysql", "mariadb"):
            sets = ", ".join(f"{self.q(c)} = VALUES({self.q(c)})" for c in rest)
            return f"INSERT INTO {table} ({names}) {select_sql} ON DUPLICATE KEY UPDATE {sets}"
        sets = ", ".join(f"{self.q(c)} = excluded.{self.q(c)}" for c in rest)
        keys = ", ".join(self.q(k) for k in self.pk)
        t = self.q(changed_at)
        return (f"INSERT INTO {table} AS hb_t ({names}) {select_sql} ON CONFLICT ({keys}) DO UPDATE SET {sets} "
                f"WHERE hb_t.{t} IS NULL OR excluded.{t} IS NULL OR hb_t.{t} <= excluded.{t}")

    def write_target(self) -> str:
        return self._upsert(self.tgt, self.cols, f"SELECT {', '.join(self._target_exprs('c.hb_flag'))} "
                                                 f"{self._from_changed()}", self.upd_name)

    def write_ledger(self) -> str:
        cols = self.pk + ["hb_digest", "hb_flag", "hb_batch", "hb_changed_at"]
        exprs = [f"c.{self.q(k)}" for k in self.pk] + ["c.hb_digest", "c.hb_flag", ":batch", "c.hb_changed_at"]
        # a WHERE keeps SQLite from reading ON CONFLICT as the SELECT's join constraint
        return self._upsert(self.led, cols, f"SELECT {', '.join(exprs)} FROM {self.CHANGED} c "
                                            f"WHERE {self.written('c')}", "hb_changed_at")

    def clear_staging(self) -> str:
        return f"DELETE FROM {self.stg} WHERE {self.batch()}"

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
                  batch_id: str, *, clear: bool = True, staged: int | None = None,
                  unique: bool | None = None, clock=None, reconcile: bool = False) -> PublishCounts:
    """Move one staged batch into the target table. Call inside the caller's transaction.

    clear=False leaves the staged rows for the caller to drop after the commit: deleting them
    is housekeeping, and inside the transaction it only makes the transaction longer.
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
    sql = _SQL(conn, spec, defaults, staging, ledger, spec.target.name)
    params = {"batch": batch_id}
    heap = FLAG_COLUMN in staging.c  # MySQL/MariaDB: no index until one is needed
    if heap and (not unique or reconcile):
        add_key_index(conn, staging, sql.pk)
    if unique is None:
        unique = conn.execute(text(sql.duplicates()), params).first() is None
    sql.unique = unique
    if staged is None:
        staged = conn.execute(text(f"SELECT COUNT(*) FROM {sql.stg} WHERE {sql.batch()}"),
                              params).scalar() or 0
    latest = staged if unique else (conn.execute(text(sql.latest()), params).scalar() or 0)
    flags = defaults.change_flags
    in_place = unique and heap and sql.dialect in ("mysql", "mariadb")
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
        return now.strftime("%Y-%m-%d %H:%M:%S") if sql.dialect == "sqlite" else now  # SQLite: the province's text

    if reconcile:
        conn.execute(text(sql.void_deleted_ledger()), params)
        counts.deleted = conn.execute(text(sql.void_deleted_target()), {**params, "stamp": stamp()}).rowcount or 0
    if counts.written - counts.deleted:
        conn.execute(text(sql.write_ledger_flagged(first) if in_place else sql.write_ledger()), params)
        conn.execute(text(sql.write_target_flagged(first) if in_place else sql.write_target()),
                     {**params, "stamp": stamp()})
    if not in_place:
        conn.execute(text(sql.drop_changed()))
    if clear:
        conn.execute(text(sql.clear_staging()), params)
    return counts


def clear_staged(conn: Connection, staging: Table, batch_ids: list[str]) -> int:
    """Delete the staged rows of the given batches (after publishing, failing or being abandoned)."""
    if not batch_ids:
        return 0
    return conn.execute(staging.delete().where(staging.c.hb_batch.in_(batch_ids))).rowcount or 0


# ---------------------------------------------------------------- staging in the background


class StagingWriter:
    """Stages conformed chunks, one transaction each; on MySQL/MariaDB and PostgreSQL from a background thread.

    The caller's thread turns a chunk into loader text (Python work) and hands it over; the
    thread runs LOAD DATA / COPY and `write_extra(conn, extra)` (the chunk's quarantine rows) in
    one transaction, while the caller reads and conforms the next chunk. At most one chunk is
    in flight, so memory stays bounded by the chunk size. An error in the thread is raised in
    the caller at its next `submit` or at `close`.
    """

    def __init__(self, engine, staging: Table, write_extra=None):
        self.engine = engine
        self.staging = staging
        self.write_extra = write_extra
        self.dialect = engine.dialect.name
        self.cols = loaded_columns(staging)
        self.date_only = _date_only(staging)
        bulk = settings().bulk_load
        self.threaded = bulk and self.dialect in ("mysql", "mariadb", "postgresql")
        self.error: BaseException | None = None
        self.rows = 0
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name=f"stage-{staging.name}", daemon=True)
            self._thread.start()

    def submit(self, frame: pd.DataFrame, extra=None) -> None:
        self._raise()
        if not self.threaded:
            with self.engine.begin() as conn:
                stage_rows(conn, self.staging, frame)
                if self.write_extra is not None:
                    self.write_extra(conn, extra)
            self.rows += len(frame)
            return
        payload = None
        if not frame.empty:
            if self.dialect == "postgresql":
                payload = bulk_text(frame, self.cols, self.date_only)
            else:
                fd, path = tempfile.mkstemp(prefix=spool_prefix(), suffix=".tsv", dir=_spool_dir())
                with os.fdopen(fd, "wb") as f:
                    write_bulk_text(f, frame, self.cols, self.date_only)
                payload = path
        self._queue.put((payload, len(frame), extra))
        self._raise()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            payload, n, extra = item
            try:
                if self.error is None:
                    with self.engine.begin() as conn:
                        if payload is not None:
                            self._load(conn, payload, n)
                        if self.write_extra is not None:
                            self.write_extra(conn, extra)
                    self.rows += n
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self.error = exc
            finally:
                if isinstance(payload, str):
                    with contextlib.suppress(OSError):
                        os.unlink(payload)

    def _load(self, conn: Connection, payload, n: int) -> None:
        prep = conn.dialect.identifier_preparer
        names = ", ".join(prep.quote(c) for c in self.cols)
        table = prep.format_table(self.staging)
        if self.dialect == "postgresql":
            cur = conn.connection.driver_connection.cursor()
            try:
                cur.copy_expert(f"COPY {table} ({names}) FROM STDIN WITH {POSTGRES_COPY_FORMAT}", io.BytesIO(payload))
            finally:
                cur.close()
            return
        _load_file_mysql(conn, table, names, payload, n, self.staging.fullname)

    def _raise(self) -> None:
        if self.error is not None:  # kept: later chunks are discarded, not loaded
            raise self.error

    def close(self) -> int:
        """Wait for the last chunk; raise the thread's error if there was one. Returns rows staged."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()
        return self.rows

    def abort(self) -> None:
        """Stop without raising (the caller is already handling an error)."""
        if self._thread is not None:
            self.error = self.error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
            self._thread = None
