"""The encrypted shared store: ingest from the landing tables, read with row MACs, blind-index lookup.

The platform writes other hospitals' rows in plaintext into the landing tables (`store.py`, P2's
`sharedata`). This is caveat (b) of interfaces.md §A14: `ingest()` (DAG `hipbridge_push_verify`,
every 5 minutes, right after verification) moves every verified batch — and any row older than
`landing_max_minutes` — into the secure tables and deletes the landing copy in the same
transaction. In a secure table:

- the spec's `sensitive: true` columns and `config/crypto.yaml` `encrypt_also` are SM4 ciphertext
  (`v1:<key_id>:<iv>:<ct>`); key columns stay plaintext (they identify the row);
- `bi_<column>` holds the HMAC-SM3 blind index of each `blind_index` column, and `patient_bi` the
  patient's index (id type | id number), equal to the authorization's `patient_key`;
- `row_mac` = `<key_id>:HMAC-SM3(K_row, every other stored column)`.

`read_rows()` is the only way the display and the reminder read shared data: a row whose MAC does
not verify (or whose ciphertext does not decrypt) comes back with `tampered=True` and no data.
`find_rows()` looks a patient up by ID number, phone or patient id through the blind indexes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Index, MetaData, String, Table, Text, and_, delete, func, or_, select, tuple_
from sqlalchemy.engine import Engine, make_url

from hipbridge.crypto.config import CryptoConfig, crypto_config
from hipbridge.crypto.fields import (
    FieldCipher,
    blind_index,
    patient_index,
    row_mac,
    verify_row_mac,
)
from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import CryptoError
from hipbridge.io.dialects import frontend_dialect
from hipbridge.io.engines import engine_for

from .store import SharedStore, row_digest

log = logging.getLogger("hipbridge.sharing.secure")
MAC_COLUMN = "row_mac"
PATIENT_COLUMN = "patient_bi"


@dataclass
class SecureTable:
    table_id: str
    table: Table
    landing: Table
    pk: list[str]
    encrypted: list[str]
    indexed: dict[str, str]               # column → blind-index kind
    identity: tuple[str, str] | None      # (id type column, id number column)
    mac_columns: list[str] = field(default_factory=list)

    def bi(self, column: str) -> str:
        return f"bi_{column}"


@dataclass
class SecureStore:
    engine: Engine          # reaches both the landing tables and the secure schema
    schema: str
    tables: dict[str, SecureTable]
    store: SharedStore
    cipher: FieldCipher | None = None     # set by Lifecycle.open: what readers such as the display use

    def table(self, table_id: str) -> SecureTable:
        return self.tables[table_id]


def secure_schema_name(store: SharedStore, cfg: CryptoConfig | None = None) -> str:
    """`<store database><suffix>`; on SQLite the alias of the attached file beside the store's."""
    cfg = cfg or crypto_config()
    if frontend_dialect(store.engine).attaches_schemas:
        return f"shared{cfg.shared_store.secure_suffix}"
    return f"{make_url(store.url).database}{cfg.shared_store.secure_suffix}"


def _secure_table(store: SharedStore, table_id: str, md: MetaData, schema: str | None,
                  cfg: CryptoConfig) -> SecureTable:
    landing = store.tables[table_id]
    spec = store.specs[table_id]
    pk = list(spec.target.primary_key)
    wanted = {c.name for c in spec.columns if c.sensitive} | set(cfg.shared_store.encrypt_also)
    encrypted = [c.name for c in landing.columns if c.name in wanted and c.name not in pk]
    cols = []
    for c in landing.columns:
        if c.name == store.cols.get("sign"):   # the platform's row signature is checked at landing (Q09), not kept
            continue
        if c.name in encrypted:
            cols.append(Column(c.name, Text, comment=f"{c.comment or ''} (SM4 密文)"))
        else:
            cols.append(Column(c.name, c.type, primary_key=c.name in pk, nullable=c.nullable, comment=c.comment))
    indexed = {c: k for c, k in cfg.shared_store.blind_index.items() if c in landing.c}
    extra = []
    for c in indexed:
        cols.append(Column(f"bi_{c}", String(64), comment=f"{c} 盲索引 HMAC-SM3"))
        extra.append(Index(f"ix_{landing.name}_bi_{c}", f"bi_{c}"))
    ident = cfg.shared_store.identity
    identity = (ident.id_type, ident.id_no) if ident.id_no in landing.c else None
    if identity:
        cols.append(Column(PATIENT_COLUMN, String(64), comment="患者盲索引 = patient_key"))
        extra.append(Index(f"ix_{landing.name}_pbi", PATIENT_COLUMN))
    auth = store.cols["auth_id"]
    extra.append(Index(f"ix_{landing.name}_sauth", auth))
    cols.append(Column(MAC_COLUMN, String(100), nullable=False, comment="行完整性 HMAC-SM3"))
    table = Table(landing.name, md, *cols, *extra, schema=schema, comment=f"{landing.comment or ''} (加密共享库)")
    mac_cols = [c.name for c in table.columns if c.name != MAC_COLUMN]
    return SecureTable(table_id, table, landing, pk, encrypted, indexed, identity, mac_cols)


def open_secure(store: SharedStore, cfg: CryptoConfig | None = None, create: bool = True) -> SecureStore:
    cfg = cfg or crypto_config()
    schema = secure_schema_name(store, cfg)
    dialect = frontend_dialect(store.engine)
    engine = engine_for(store.url, schema) if dialect.attaches_schemas else store.engine
    if create:
        with engine.begin() as conn:
            dialect.create_schema(conn, schema, binary=True)
    md = MetaData()
    tables = {t: _secure_table(store, t, md, schema, cfg) for t in store.tables}
    if create:
        md.create_all(engine)
    secure = SecureStore(engine, schema, tables, store)
    store.secure = secure
    return secure


def drop_secure(store: SharedStore, cfg: CryptoConfig | None = None) -> None:
    schema = secure_schema_name(store, cfg)
    with store.engine.begin() as conn:
        frontend_dialect(store.engine).drop_schema(conn, schema)


# ---------------------------------------------------------------- protect / reveal one row


def protect_row(st: SecureTable, row: dict[str, Any], cipher: FieldCipher, keys: KeyStore) -> dict[str, Any]:
    out = dict(row)
    for c, kind in st.indexed.items():
        out[st.bi(c)] = blind_index(keys, kind, row.get(c))
    if st.identity:
        out[PATIENT_COLUMN] = patient_index(keys, row.get(st.identity[0]), row.get(st.identity[1]))
    for c in st.encrypted:
        v = row.get(c)
        out[c] = None if v is None else cipher.encrypt(v)
    out[MAC_COLUMN] = row_mac(cipher.ring, st.table.name, out, st.mac_columns)
    return out


@dataclass
class SharedRow:
    table_id: str
    key: dict[str, Any]
    tampered: bool
    data: dict[str, Any] | None          # None when tampered: never shown as data
    reason: str | None = None


def reveal_row(st: SecureTable, stored: dict[str, Any], cipher: FieldCipher) -> SharedRow:
    key = {k: stored.get(k) for k in st.pk}
    if not verify_row_mac(cipher.ring, st.table.name, stored, st.mac_columns, stored.get(MAC_COLUMN)):
        return SharedRow(st.table_id, key, True, None, "行完整性校验失败 (HMAC-SM3 不符): 数据可能被篡改")
    data = {c.name: stored.get(c.name) for c in st.landing.columns}   # the row signature (Q09): not kept, None
    try:
        for c in st.encrypted:
            data[c] = cipher.decrypt(data[c])
    except (CryptoError, UnicodeDecodeError) as exc:
        return SharedRow(st.table_id, key, True, None, f"密文无法解密: {exc}")
    return SharedRow(st.table_id, key, False, data)


# ---------------------------------------------------------------- ingest


@dataclass
class IngestReport:
    moved: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)   # rows left in landing (batch not verified yet)
    kept: dict[str, int] = field(default_factory=dict)      # landing rows dropped: the stored version stays

    def as_dict(self) -> dict[str, Any]:
        return {"moved": self.moved, "waiting": self.waiting, "kept": self.kept}


def stored_wins(stored: tuple[int, str] | None, pushed: tuple[int, str]) -> bool:
    """Whether the stored version of a key stays when a pushed one arrives ((data_num, row digest) each).

    The highest data_num wins (the platform re-pushes corrections as new versions, interfaces.md §A8);
    the same data_num with other content is the Q07 conflict, where the first received row stays.
    """
    if stored is None:
        return False
    return stored[0] > pushed[0] or (stored[0] == pushed[0] and stored[1] != pushed[1])


def stored_versions(secure: SecureStore, st: SecureTable, keys: list[tuple], conn=None) -> dict[tuple, tuple[int, str]]:
    """Primary key → (data_num, row digest) of the rows the secure table already holds for `keys`."""
    cols = secure.store.cols
    t = st.table
    pk = [t.c[k] for k in st.pk]
    out: dict[tuple, tuple[int, str]] = {}
    own = conn is None
    conn = conn if conn is not None else secure.engine.connect()
    try:
        for i in range(0, len(keys), 500):
            q = select(*pk, t.c[cols["data_num"]], t.c[cols["row_digest"]]).where(tuple_(*pk).in_(keys[i:i + 500]))
            for r in conn.execute(q):
                out[tuple(r[:len(pk)])] = (r[len(pk)], r[len(pk) + 1])
    finally:
        if own:
            conn.close()
    return out


def ingest(secure: SecureStore, cipher: FieldCipher, keys: KeyStore, verified: set[tuple[str, str]],
           now: datetime, batch_rows: int = 1000, cfg: CryptoConfig | None = None) -> IngestReport:
    """Move landing rows into the secure tables (encrypt, index, MAC) and delete the landing copy.

    verified: (batch id, table name) pairs the push verification has checked; rows of other
    batches wait, but never longer than `landing_max_minutes`. Each chunk is one transaction
    (insert-or-replace into the secure table + delete from landing), so a crash leaves every row
    in exactly one of the two places and a rerun finishes the move. A pushed row never replaces a
    stored one with a higher data_num, nor one with the same data_num and other content (Q07:
    the first received row stays); such landing rows are deleted and counted in `kept`.
    """
    cfg = cfg or crypto_config()
    cutoff = now - timedelta(minutes=cfg.shared_store.landing_max_minutes)
    store = secure.store
    bcol, icol = store.cols["batch_id"], store.cols["instock_time"]
    report = IngestReport()
    for st in secure.tables.values():
        land = st.landing
        data_cols = store.data_columns(st.table_id)
        ncol = store.cols["data_num"]
        kept = 0
        ready = sorted(b for b, t in verified if t == land.name)
        cond = land.c[icol] < cutoff
        if ready:
            cond = or_(cond, land.c[bcol].in_(ready))
        moved = 0
        while True:
            with secure.engine.begin() as conn:
                rows = [dict(r) for r in conn.execute(select(land).where(cond).limit(batch_rows)).mappings()]
                if not rows:
                    break
                keys_ = [tuple(r[k] for k in st.pk) for r in rows]
                stored = stored_versions(secure, st, keys_, conn)
                take = [(k, r) for k, r in zip(keys_, rows, strict=True)
                        if not stored_wins(stored.get(k), (r[ncol], row_digest(r, data_cols)))]
                if take:
                    pk = tuple_(*[st.table.c[k] for k in st.pk])
                    conn.execute(delete(st.table).where(pk.in_([k for k, _ in take])))
                    conn.execute(st.table.insert(), [protect_row(st, {c: v for c, v in r.items() if c in st.table.c},
                                                                 cipher, keys) for _, r in take])
                conn.execute(delete(land).where(tuple_(*[land.c[k] for k in st.pk]).in_(keys_)))
            moved += len(take)
            kept += len(rows) - len(take)
            if len(rows) < batch_rows:
                break
        if moved:
            report.moved[land.name] = moved
        if kept:
            report.kept[land.name] = kept
        with secure.engine.connect() as conn:
            left = conn.execute(select(land.c[bcol]).limit(1)).first()
            if left is not None:
                report.waiting[land.name] = conn.execute(select(func.count()).select_from(land)).scalar_one()
    if report.moved:
        log.info("共享数据入库加密: %s", report.moved)
    if report.kept:
        log.warning("回推行未入库 (已存版本更新或先到, Q07): %s", report.kept)
    return report


# ---------------------------------------------------------------- reading (display, reminder)


def read_rows(secure: SecureStore, cipher: FieldCipher, table_id: str, *, auth_ids: list[str] | None = None,
              patient_key: str | None = None, keys: list[dict[str, Any]] | None = None,
              limit: int | None = None) -> list[SharedRow]:
    """Rows of one shared table, each checked (row MAC) and decrypted; tampered rows flagged, never data."""
    st = secure.tables[table_id]
    t = st.table
    conds = []
    if auth_ids is not None:
        conds.append(t.c[secure.store.cols["auth_id"]].in_(list(auth_ids)))
    if patient_key is not None:
        if not st.identity:
            return []
        conds.append(t.c[PATIENT_COLUMN] == patient_key)
    if keys is not None:
        if not keys:
            return []
        conds.append(tuple_(*[t.c[k] for k in st.pk]).in_([tuple(k[c] for c in st.pk) for k in keys]))
    q = select(t).where(and_(*conds)) if conds else select(t)
    q = q.order_by(*[t.c[k] for k in st.pk])
    if limit:
        q = q.limit(limit)
    with secure.engine.connect() as conn:
        stored = [dict(r) for r in conn.execute(q).mappings()]
    return [reveal_row(st, r, cipher) for r in stored]


def find_rows(secure: SecureStore, keys: KeyStore, *, id_type: str | None = None, id_no: str | None = None,
              phone: str | None = None, patient_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Primary keys of the shared rows matching a patient, per table, through the blind indexes only.

    id_type + id_no match the patient index (and any `id_no` blind index); phone and patient_id
    match the columns configured with those kinds. Pass the keys to `read_rows(keys=…)`.
    """
    wanted: list[tuple[str, str]] = []   # (kind, index value)
    pkey = patient_index(keys, id_type, id_no) if id_no else None
    for kind, value in (("id_no", id_no), ("phone", phone), ("patient_id", patient_id)):
        if value:
            wanted.append((kind, blind_index(keys, kind, value)))
    out: dict[str, list[dict[str, Any]]] = {}
    with secure.engine.connect() as conn:
        for table_id, st in secure.tables.items():
            t = st.table
            conds = [t.c[st.bi(c)] == v for c, k in st.indexed.items() for kind, v in wanted if k == kind]
            if pkey and st.identity:
                conds.append(t.c[PATIENT_COLUMN] == pkey)
            if not conds:
                continue
            rows = conn.execute(select(*[t.c[k] for k in st.pk]).where(or_(*conds))).mappings().all()
            if rows:
                out[table_id] = [dict(r) for r in rows]
    return out


def auth_ids_by_patient(secure: SecureStore, patient_keys: list[str]) -> dict[str, set[str]]:
    """patient_key → the authIds under which the secure store holds that patient's rows (blind-index lookup)."""
    out: dict[str, set[str]] = {}
    if not patient_keys:
        return out
    auth = secure.store.cols["auth_id"]
    with secure.engine.connect() as conn:
        for st in secure.tables.values():
            if not st.identity:
                continue
            t = st.table
            for i in range(0, len(patient_keys), 500):
                q = select(t.c[PATIENT_COLUMN], t.c[auth]).where(t.c[PATIENT_COLUMN].in_(patient_keys[i:i + 500]))
                for pkey, a in conn.execute(q.distinct()):
                    out.setdefault(pkey, set()).add(a)
    return out
