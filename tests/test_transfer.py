"""The transfer path's fast paths and dirty data, on real MariaDB and PostgreSQL.

- MariaDB source read by connectorx (sliced windows) and by SQLAlchemy streaming give the same
  rows and the same digests: a rerun through the other path finds every row unchanged.
- LOAD DATA (MariaDB) and COPY (PostgreSQL) staging keep tabs, newlines, backslashes and Chinese text.
- Dirty data (GBK bytes, U+FFFD, too long, impossible date, overflow, not a number) is quarantined
  with its reason and raw values; extracted = published + quarantined for every batch.
- Oracle and SQL Server: the SQL we send is checked at compile level (no server here).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hipbridge.io import state
from hipbridge.io.bulktext import bulk_text
from hipbridge.io.engines import dispose_all
from hipbridge.io.extract import connectorx_url, literal_window_sql, slices, windowed_sql
from hipbridge.io.load import StagingWriter, stage_rows
from hipbridge.pipeline.conform import digest_frame
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.run import sync_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    text,
)

from tests.conftest import MARIADB_ADMIN, _unique
from tests.minihospital import MiniHospital
from tests.transfer_helpers import SourceHospital


@pytest.fixture
def source(tmp_path, monkeypatch, mariadb_url):
    h = SourceHospital(MARIADB_ADMIN, _unique("hbsrc"), tmp_path, rows=3000, chunk=400)
    monkeypatch.setenv("HIPBRIDGE_CONN_SRC", h.url)
    dispose_all()
    yield h
    dispose_all()
    h.drop()


def _ledger(ctx) -> dict:
    with ctx.engine.connect() as c:
        return dict(c.execute(text(f"SELECT JZLSH, hb_digest FROM `{ctx.ops_schema}`.ledger_visit")).all())


def test_fast_and_streaming_reads_agree_row_for_row(source, mariadb_url, monkeypatch):
    ctx = Context.create(source.specs, mariadb_url)
    first = sync_table("visit", "full", ctx=ctx)  # connectorx, in slices of ~400 rows
    assert first.status == "published" and first.extracted == 3000
    assert first.extracted == first.published + first.quarantined
    digests = _ledger(ctx)
    assert len(digests) == 3000
    with ctx.engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*), COUNT(DISTINCT JZLSH) FROM MZJZJL")).one() == (3000, 3000)
        tab = c.execute(text("SELECT BZ FROM MZJZJL WHERE JZLSH = 'V000000001'")).scalar()
        assert tab == "备注\t1"  # a tab survives LOAD DATA
        sex = c.execute(text("SELECT XBDM, XBMC FROM MZJZJL WHERE JZLSH = 'V000000002'")).one()
        assert tuple(sex) == ("1", "男性")  # mapped, name filled from the value domain
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", "0")
    again = sync_table("visit", "full", ctx=ctx)  # SQLAlchemy streaming, same rows
    assert again.extracted == 3000 and again.unchanged == 3000
    assert again.inserted == again.updated == again.voided == 0
    assert _ledger(ctx) == digests


def test_dirty_rows_from_mariadb_are_quarantined_with_reasons(source, mariadb_url):
    bad = [
        ("B1", "张三".encode("gbk"), "2026-11-02 08:00:00", 1, "GBK"),      # not UTF-8
        ("B2", "张\ufffd".encode(), "2026-11-02 08:00:00", 1, "UTF-8"),    # already damaged upstream
        ("B3", "欧阳娜娜娜".encode(), "2026-11-02 08:00:00", 1, "长度5字符超过varchar(4)"),
        ("B4", "钱七".encode(), "2026-02-30 08:10:00", 1, "日期时间无效"),
        ("B5", "孙八".encode(), "2026-11-02 08:00:00", 99999.5, "数值溢出decimal(6,2)"),
        ("B6", "周九".encode(), "0000-00-00 00:00:00", 1, "日期时间无效"),
    ]
    for key, name, start, fee, _ in bad:
        source.execute("INSERT INTO visit_src VALUES (:k, 'P1', :nm, '1', '1990-01-01', :st, :fee, 1, NULL, 'N', "
                       "'2026-11-01 00:00:01')", {"k": key, "nm": name, "st": start, "fee": fee})
    ctx = Context.create(source.specs, mariadb_url)
    r = sync_table("visit", "full", ctx=ctx)
    assert (r.extracted, r.quarantined, r.published) == (3006, 6, 3000)
    q = ctx.ops.table("quarantine")
    with ctx.engine.connect() as c:
        found = c.execute(q.select().where(q.c.batch_id == r.batch_id)).mappings().all()
        assert c.execute(text("SELECT COUNT(*) FROM MZJZJL WHERE JZLSH LIKE 'B%'")).scalar() == 0
    reasons = {f["row_key"].split("|")[-1]: f["reason"] for f in found}
    for key, _, _, _, expected in bad:
        assert expected in reasons[key], (key, reasons[key])
    from hipbridge.crypto.atrest import reveal_quarantine

    stored = next(f for f in found if f["row_key"].endswith("B1"))
    assert stored["raw"].startswith("v1:") and "张三" not in stored["raw"]   # SM4 at rest (issue 12)
    raw_b1 = json.loads(reveal_quarantine(ctx.engine, ctx.ops_schema, dict(stored))["raw"])
    assert raw_b1["name"] == {"hex": "张三".encode("gbk").hex()}  # nothing lost
    log = state.batch_row(ctx.engine, ctx.ops, r.batch_id)
    assert log["extracted"] == log["published"] + log["quarantined"]


def test_postgresql_front_end_stages_with_copy(tmp_path, hb_home, postgres_url, monkeypatch):
    mini = MiniHospital(tmp_path / "mini")
    mini.add_bad_rows()
    mini.execute("UPDATE CLINIC_VISIT SET PAT_NAME = 'a\tb' WHERE VISIT_NO = 'V2'")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", mini.url)
    ctx = Context.create(mini.specs, postgres_url)
    r = sync_table("visit", ctx=ctx)
    assert (r.extracted, r.published, r.unsent, r.quarantined) == (9, 3, 1, 5)  # V3: voided before its upload
    with ctx.engine.connect() as c:
        got = dict(c.execute(text('SELECT "JZLSH", "XM" FROM "MZJZJL"')).all())
    assert got["V2"] == "a\tb" and got["V1"] == "张三"
    again = sync_table("visit", "full", ctx=ctx)
    assert (again.unchanged, again.unsent) == (3, 1) and again.inserted == again.updated == 0


# ---------------------------------------------------------------- loader text, digest


_MD = MetaData()
_STAGE = Table("stage_text", _MD, Column("k", Integer), Column("s", Text), Column("d", Date),
               Column("t", DateTime), Column("n", Numeric(12, 2)), Column("v", String(20)))


@pytest.fixture
def text_frame():
    return pd.DataFrame({
        "k": pd.array([1, 2, 3, 4], dtype="Int64"),
        "s": ["tab\there", "line\nbreak\r", "back\\slash \\N", None],
        "d": pd.to_datetime(["2026-11-20", None, "1900-01-01", "2100-12-31"]).astype("datetime64[s]"),
        "t": pd.to_datetime(["2026-11-20 08:00:01", None, "2026-01-01 00:00:00", "2026-12-31 23:59:59"]).astype("datetime64[s]"),
        "n": [12.5, np.nan, -0.01, 9999999999.99],
        "v": ["中文", "\"quoted\"", "NULL", "x"],
    })


@pytest.mark.parametrize("db", ["mariadb", "postgresql"])
def test_bulk_loaders_round_trip_awkward_text(db, request, text_frame):
    url = request.getfixturevalue("mariadb_url" if db == "mariadb" else "postgres_url")
    eng = create_engine(url, connect_args={"local_infile": True} if db == "mariadb" else {})
    _MD.create_all(eng)
    writer = StagingWriter(eng, _STAGE)
    assert writer.threaded
    writer.submit(text_frame)
    assert writer.close() == 4
    with eng.connect() as c:
        rows = c.execute(text("SELECT k, s, d, t, n, v FROM stage_text ORDER BY k")).all()
    eng.dispose()
    assert [r[1] for r in rows] == ["tab\there", "line\nbreak\r", "back\\slash \\N", None]
    assert [str(r[2]) if r[2] else None for r in rows] == ["2026-11-20", None, "1900-01-01", "2100-12-31"]
    assert rows[0][3] == datetime(2026, 11, 20, 8, 0, 1) and rows[1][3] is None
    assert [None if r[4] is None else float(r[4]) for r in rows] == [12.5, None, -0.01, 9999999999.99]
    assert [r[5] for r in rows] == ["中文", "\"quoted\"", "NULL", "x"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                                max_size=30), min_size=1, max_size=40))
def test_any_text_survives_load_data(mariadb_url, values):
    eng = create_engine(mariadb_url, connect_args={"local_infile": True})
    md = MetaData()
    t = Table("stage_any", md, Column("k", Integer), Column("s", Text))
    md.create_all(eng)
    frame = pd.DataFrame({"k": range(len(values)), "s": pd.Series(values, dtype=object)})
    with eng.begin() as c:
        c.execute(t.delete())
        stage_rows(c, t, frame)
    with eng.connect() as c:
        got = [r[0] for r in c.execute(text("SELECT s FROM stage_any ORDER BY k"))]
    eng.dispose()
    assert got == values


def test_bulk_text_quotes_values_and_marks_null_bare(text_frame):
    body = bulk_text(text_frame, ["k", "s", "d", "v"], frozenset({"d"})).decode()
    lines = body.split("\n")
    assert lines[0] == '"1"\t"tab\there"\t"2026-11-20"\t"中文"'
    assert lines[1] == '"2"\t"line'  # the newline stays inside its quoted value
    assert lines[2] == 'break\r"\tNULL\t"""quoted"""'
    assert lines[3] == '"3"\t"back\\slash \\N"\t"1900-01-01"\t"NULL"'  # the text NULL, quoted
    assert lines[4] == '"4"\tNULL\t"2100-12-31"\t"x"'


def test_digest_is_stable_across_processes():
    frame = pd.DataFrame({"a": ["x", None, "中文"], "b": [1.5, np.nan, 0.0],
                          "c": pd.to_datetime(["2026-01-01 00:00:00", None, "2026-01-02 03:04:05"]).astype("datetime64[s]"),
                          "d": pd.array([1, None, 3], dtype="Int64")})
    here = digest_frame(frame, list(frame.columns)).tolist()
    code = ("import numpy as np, pandas as pd; from hipbridge.pipeline.conform import digest_frame;"
            "f = pd.DataFrame({'a': ['x', None, '中文'], 'b': [1.5, np.nan, -0.0],"
            "'c': pd.to_datetime(['2026-01-01 00:00:00', None, '2026-01-02 03:04:05']).astype('datetime64[us]'),"
            "'d': pd.array([1, None, 3], dtype='Int64')});"
            "print(digest_frame(f, list(f.columns)).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == str(here)
    assert len(set(here)) == 3 and all(len(h) == 16 for h in here)


# ---------------------------------------------------------------- slicing and SQL per dialect


def test_slices_cover_the_window_without_gaps_or_overlap():
    times = pd.date_range("2026-01-01", periods=10_000, freq="37s").to_pydatetime().tolist()
    times += [datetime(2026, 1, 2, 12, 0, 0)] * 900  # a burst on one timestamp

    def count(a, b):
        return sum(1 for t in times if a <= t < b)

    start, end = datetime(2025, 1, 1), datetime(2027, 1, 1)
    cuts = list(slices(count, start, end, 1000))
    assert sum(count(a, b) for a, b, _ in cuts) == len(times)
    ordered = sorted(cuts)
    assert all(x[1] <= y[0] for x, y in itertools.pairwise(ordered))
    assert all(count(a, b) <= 1500 for a, b, fits in cuts if fits)


def _compile(dialect_name: str, stmt: str) -> str:
    from sqlalchemy import text as sa_text
    from sqlalchemy.dialects import mssql, oracle

    dialect = {"oracle": oracle.dialect(), "mssql": mssql.dialect(paramstyle="pyformat")}[dialect_name]
    return str(sa_text(stmt).compile(dialect=dialect))


def test_oracle_and_sql_server_window_sql_compiles():
    from sqlalchemy.dialects import mssql, oracle

    sql = "SELECT v.VISIT_NO AS id, v.UPDATE_TIME AS upd FROM HIS.CLINIC_VISIT v"
    ora = windowed_sql(sql, "upd", oracle.dialect().identifier_preparer.quote)
    assert ora.endswith("WHERE src.upd >= :window_start AND src.upd < :window_end")
    assert ":window_start" in _compile("oracle", ora)  # oracledb binds by name
    ms = windowed_sql(sql, "UPDATE TIME", mssql.dialect().identifier_preparer.quote)
    assert "src.[UPDATE TIME] >= :window_start" in ms
    assert "%(window_start)s" in _compile("mssql", ms)  # pymssql's paramstyle
    start, end = datetime(2026, 11, 20), datetime(2026, 11, 21)
    assert literal_window_sql(sql, "upd", oracle.dialect(), start, end).endswith(
        "src.upd >= TIMESTAMP '2026-11-20 00:00:00' AND src.upd < TIMESTAMP '2026-11-21 00:00:00'")
    assert "CONVERT(DATETIME2, '2026-11-20 00:00:00', 120)" in literal_window_sql(sql, "upd", mssql.dialect(),
                                                                                   start, end)
    own = "SELECT * FROM t WHERE upd >= :window_start AND upd < :window_end"
    assert windowed_sql(own, "upd", oracle.dialect().identifier_preparer.quote) == own


def test_fast_read_only_where_connectorx_serves_the_dialect(monkeypatch):
    pytest.importorskip("oracledb")
    pytest.importorskip("pymssql")
    ora = create_engine("oracle+oracledb://u:p@his-db:1521/?service_name=HIS")
    ms = create_engine("mssql+pymssql://u:p@lis-db/LIS")
    my = create_engine("mysql+pymysql://u:p%40w@pacs-db:3307/pacs?charset=utf8mb4")
    pg = create_engine("postgresql+psycopg2://u:p@fe/db")
    assert connectorx_url(ora) is None and connectorx_url(ms) is None  # streaming through the driver
    assert connectorx_url(my) == "mysql://u:p%40w@pacs-db:3307/pacs"
    assert connectorx_url(pg) == "postgresql://u:p@fe/db?cxprotocol=binary"
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", "all")
    assert connectorx_url(ms) == "mssql://u:p@lis-db/LIS"
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", "0")
    assert connectorx_url(my) is None


def test_an_oracle_read_asks_for_clobs_as_text_and_numbers_exactly_before_it_connects(monkeypatch):
    """The read path of an Oracle source (no server here: its connection is refused) sets oracledb's fetch
    defaults first, so CLOBs arrive as str, not LOB handles, and NUMBER as Decimal, not float."""
    oracledb = pytest.importorskip("oracledb")
    import socket

    from hipbridge.io.extract import read_chunks

    monkeypatch.setattr(oracledb.defaults, "fetch_lobs", True)       # oracledb's own defaults
    monkeypatch.setattr(oracledb.defaults, "fetch_decimals", False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                                    # nothing listens there
    ora = create_engine(f"oracle+oracledb://u:p@127.0.0.1:{port}/?service_name=HIS")
    sql = "SELECT v.VISIT_NO AS id, v.NOTE AS note, v.FEE AS fee, v.UPDATE_TIME AS upd FROM HIS.CLINIC_VISIT v"
    with pytest.raises(Exception, match="DPY-|refused"):
        next(read_chunks(ora, sql, "upd", datetime(2026, 11, 20), datetime(2026, 11, 21), 1000))
    assert oracledb.defaults.fetch_lobs is False and oracledb.defaults.fetch_decimals is True


def test_loader_files_left_by_a_killed_process_are_removed(tmp_path, monkeypatch):
    import os
    import time

    from hipbridge.io.spool import clear_stale_spool

    monkeypatch.setenv("HIPBRIDGE_SPOOL_DIR", str(tmp_path))
    old, fresh, other = tmp_path / "hb_stage_old.tsv", tmp_path / "hb_stage_new.tsv", tmp_path / "keep.tsv"
    for f in (old, fresh, other):
        f.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(other, (two_hours_ago, two_hours_ago))
    assert clear_stale_spool() == 1
    assert not old.exists() and fresh.exists() and other.exists()


def test_a_window_placeholder_in_a_comment_does_not_switch_off_the_window():
    from hipbridge.io.extract import windowed_sql

    sql = "-- filtered by hipbridge on update_time >= :window_start\nSELECT a, update_time FROM t"
    wrapped = windowed_sql(sql, "update_time", lambda n: n)
    assert wrapped.endswith("WHERE src.update_time >= :window_start AND src.update_time < :window_end")
    own = "SELECT a FROM t WHERE update_time >= :window_start AND update_time < :window_end"
    assert windowed_sql(own, "update_time", lambda n: n) == own


# ---------------------------------------------------------------- Arrow and object text paths agree


def test_python_whitespace_set_is_what_str_strip_removes():
    from hipbridge.pipeline.conform import PY_WHITESPACE

    assert set(PY_WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


_TEXT = st.one_of(st.none(), st.sampled_from(["", "null", "NULL", "None", " x ", "\u3000中文\u3000", "a\ufffdb",
                                              "\x1cx", "x\x85", "张三"]),
                  st.text(alphabet=" \t\u3000\u00a0\x1cab中\ufffd", max_size=6))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(_TEXT, min_size=1, max_size=30))
def test_arrow_text_path_gives_the_object_paths_values_and_digests(values):
    # a fast read leaves text in Arrow; the streaming path gives Python objects: same rows out
    from hipbridge.pipeline.conform import _column_hash, _plain_text

    as_object = pd.Series(values, dtype=object)
    as_arrow = pd.Series(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    text_o, damaged_o = _plain_text(as_object)
    text_a, damaged_a = _plain_text(as_arrow)
    assert text_a.dtype != object  # stayed in Arrow
    assert [None if pd.isna(v) else v for v in text_a] == [None if pd.isna(v) else v for v in text_o]
    assert damaged_a.tolist() == damaged_o.tolist()
    assert (_column_hash(text_a) == _column_hash(text_o)).all()


def test_postgresql_source_fast_arrow_and_streaming_reads_agree(tmp_path, hb_home, postgres_url, monkeypatch):
    # a PACS on PostgreSQL: connectorx reads it into Arrow (numeric → float, date, timestamp, text)
    from tests.transfer_helpers import ROOT, SPEC

    src = create_engine(postgres_url)
    with src.begin() as c:
        c.execute(text("""
            CREATE TABLE visit_src AS
            SELECT 'V' || lpad(g::text, 9, '0') AS id, 'P' || (g % 50) AS pid,
                   (ARRAY['张三', ' 李四 ', '王小五', 'NULL'])[1 + g % 4] AS name, (1 + g % 2)::text AS sex,
                   (DATE '1950-01-01' + g) AS birth, TIMESTAMP '2026-11-01 08:00:00' + g * INTERVAL '1 second' AS start_time,
                   ((g % 500) / 4.0)::numeric(12, 2) AS fee, g % 9 AS n,
                   CASE WHEN g % 7 = 0 THEN NULL ELSE '备注' || chr(9) || g END AS note,
                   CASE WHEN g % 40 = 0 THEN 'C' ELSE 'N' END AS status,
                   TIMESTAMP '2026-11-01 00:00:00' + g * INTERVAL '7 seconds' AS upd
            FROM generate_series(1, 1200) g"""))
    src.dispose()
    specs = tmp_path / "specs"
    specs.mkdir()
    defaults = (ROOT / "table_specs" / "_defaults.yaml").read_text(encoding="utf-8")  # voided rows sent too
    (specs / "_defaults.yaml").write_text(defaults.replace("first_seen_voided: skip", "first_seen_voided: send"),
                                          encoding="utf-8")
    (specs / "visit.yaml").write_text(SPEC % {"chunk": 250}, encoding="utf-8")   # 1,200 rows: more than 4 chunks
    monkeypatch.setenv("HIPBRIDGE_CONN_SRC", postgres_url)
    dispose_all()
    from hipbridge.io import extract

    arrow_reads = []
    read_fast = extract._read_fast
    monkeypatch.setattr(extract, "_read_fast", lambda url, q: arrow_reads.append(q) or read_fast(url, q))
    ctx = Context.create(specs, f"sqlite:///{tmp_path / 'fe.db'}")
    first = sync_table("visit", "full", ctx=ctx)
    assert (first.status, first.extracted, first.quarantined) == ("published", 1200, 0)
    assert len(arrow_reads) >= 4  # in slices of about 250 rows
    with ctx.engine.connect() as c:
        names = dict(c.execute(text("SELECT JZLSH, XM FROM MZJZJL WHERE JZLSH IN ('V000000001', 'V000000003')")).all())
        digests = dict(c.execute(text(f"SELECT JZLSH, hb_digest FROM {ctx.ops_schema}.ledger_visit")).all())
    assert names == {"V000000001": "李四", "V000000003": None}  # stripped; the text NULL is empty
    # a window of at most 4 chunks (a daily increment) is one streamed query: no slices, the same rows
    arrow_reads.clear()
    src_engine = create_engine(postgres_url)
    window = (datetime(2026, 11, 1), datetime(2026, 11, 1, 1, 10))          # upd = g × 7 s: g = 1 … 599
    streamed = list(extract.read_chunks(src_engine, "SELECT id, upd FROM visit_src", "upd", *window, 300))
    assert arrow_reads == [] and [len(f) for f in streamed] == [300, 299]
    monkeypatch.setattr(extract, "_STREAM_CHUNKS", 1)                        # 599 rows > 1 chunk: slices
    sliced = list(extract.read_chunks(src_engine, "SELECT id, upd FROM visit_src", "upd", *window, 300))
    assert len(arrow_reads) >= 2
    assert sorted(i for f in streamed for i in f["id"]) == sorted(i for f in sliced for i in f["id"])
    src_engine.dispose()
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", "0")
    again = sync_table("visit", "full", ctx=ctx)  # psycopg2 streaming: the same digests
    assert again.extracted == 1200 and again.unchanged == 1200 and again.updated == 0
    with ctx.engine.connect() as c:
        assert dict(c.execute(text(f"SELECT JZLSH, hb_digest FROM {ctx.ops_schema}.ledger_visit")).all()) == digests
    dispose_all()
