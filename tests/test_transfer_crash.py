"""Crash safety and outages against real processes: SIGKILL mid-run, a source or front-end that goes away.

The source is a MariaDB database; the transfer runs as a real `hipbridge run` subprocess that is
killed with SIGKILL. After a rerun the front-end must equal the source: same keys, same row
digests, no duplicates, nothing lost, the watermark where the published batch put it, and the
killed batch never 'published'. Outages go through a TCP proxy that drops connections.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
from hipbridge.io import state
from hipbridge.io.engines import dispose_all
from hipbridge.io.extract import read_chunks
from hipbridge.pipeline.conform import conform_chunk
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.retry import FrontendUnavailable, SourceUnavailable
from hipbridge.pipeline.run import sync_table
from hipbridge.settings import org_code
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import MARIADB_ADMIN, _unique
from tests.transfer_helpers import FlakyProxy, SourceHospital

# PyMySQL's streaming cursor complains when it is garbage-collected on a connection we cut on purpose
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def retries_fast(monkeypatch):
    monkeypatch.setenv("HIPBRIDGE_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("HIPBRIDGE_RETRY_DELAY", "0.2")


@pytest.fixture
def streaming(monkeypatch):
    # connectorx's MySQL client does not work through the test's TCP proxy (it gives up after its
    # 30 s pool timeout), so outages through the proxy exercise the SQLAlchemy streaming read;
    # the fast read's outage handling is covered with a port where nothing listens.
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", "0")


def _source(tmp_path, rows: int, chunk: int) -> SourceHospital:
    return SourceHospital(MARIADB_ADMIN, _unique("hbsrc"), tmp_path, rows=rows, chunk=chunk)


def _fe_db(url: str) -> str:
    return make_url(url).database


def assert_front_end_equals_source(ctx: Context, src: SourceHospital) -> None:
    fe, ops, sdb = _fe_db(ctx.frontend_url), ctx.ops_schema, src.name
    org = {"org": org_code(ctx.defaults)}  # the target's key is (YLJGDM, JZLSH): join on both
    with ctx.engine.connect() as c:
        n_src = c.execute(text(f"SELECT COUNT(*) FROM `{sdb}`.visit_src")).scalar()
        total, distinct = c.execute(text("SELECT COUNT(*), COUNT(DISTINCT JZLSH) FROM MZJZJL")).one()
        assert total == distinct == n_src  # nothing lost, no duplicates
        missing = c.execute(text(f"SELECT COUNT(*) FROM `{sdb}`.visit_src s LEFT JOIN `{fe}`.MZJZJL t "
                                 f"ON t.YLJGDM = :org AND t.JZLSH = s.id WHERE t.JZLSH IS NULL"), org).scalar()
        assert missing == 0  # same keys
        differ = c.execute(text(
            f"SELECT COUNT(*) FROM `{sdb}`.visit_src s JOIN `{fe}`.MZJZJL t ON t.YLJGDM = :org AND t.JZLSH = s.id "
            "WHERE NOT ("
            "t.HZWYBSH <=> s.pid AND t.XM <=> CONVERT(s.name USING utf8mb4) AND t.XBDM <=> s.sex "
            "AND t.CSRQ <=> CAST(s.birth AS DATE) AND t.JZKSSJ <=> CAST(s.start_time AS DATETIME) "
            "AND t.JE <=> s.fee AND t.CFS <=> s.n AND t.BZ <=> s.note AND t.SJGXSJ <=> s.upd "
            "AND t.XGBZ = IF(s.status = 'C', '3', '1'))"), org).scalar()
        assert differ == 0  # same values, row by row
        ledger = dict(c.execute(text(f"SELECT JZLSH, hb_digest FROM `{ops}`.ledger_visit")).all())
    # same row digests as a clean, uninterrupted computation over the source
    spec = ctx.specs.get("visit")
    expected = {}
    source_engine = create_engine(src.url)
    for chunk in read_chunks(source_engine, ctx.specs.query_text(spec), "upd", datetime(1900, 1, 1),
                             datetime(2100, 1, 1), 50_000):
        done = conform_chunk(chunk, spec, ctx.defaults, catalog=ctx.catalog, extracted_at=datetime.now(),
                             org_code="x", org_name="x")
        expected.update(zip(done.frame["JZLSH"], done.frame["hb_digest"]))
    source_engine.dispose()
    assert ledger == expected


def _batches(ctx: Context) -> list[dict]:
    t = ctx.ops.table("batch_log")
    with ctx.engine.connect() as c:
        return [dict(r) for r in c.execute(t.select().order_by(t.c.started_at, t.c.batch_id)).mappings()]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("moment", ["transfer", "publish"])
def test_sigkill_mid_run_then_rerun_equals_source(tmp_path, mariadb_url, hb_home, moment):
    src = _source(tmp_path, rows=120_000, chunk=2_000)
    try:
        env = {**os.environ, "HIPBRIDGE_CONN_SRC": src.url, "HIPBRIDGE_FRONTEND_URL": mariadb_url,
               "PYTHONPATH": os.path.join(ROOT, "plugins")}
        cmd = [sys.executable, "-m", "hipbridge.cli", "run", "visit", "--specs", str(src.specs)]
        ctx = Context.create(src.specs, mariadb_url)
        ctx.ensure_frontend(["visit"])
        watch = create_engine(mariadb_url)
        ops = ctx.ops_schema

        def staged_rows() -> int:  # in the batch's own staging table, stg_visit__<batch hash>
            with watch.connect() as c:
                tables = c.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                                        "AND table_name LIKE 'stg\\_visit\\_\\_%'"), {"s": ops}).scalars().all()
                return sum(c.execute(text(f"SELECT COUNT(*) FROM `{ops}`.`{t}`")).scalar() for t in tables)

        def publishing() -> bool:
            with watch.connect() as c:
                return bool(c.execute(text("SELECT COUNT(*) FROM information_schema.processlist "
                                           "WHERE info LIKE 'INSERT INTO `MZJZJL`%'")).scalar())

        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if moment == "transfer":
            _wait_for(lambda: staged_rows() >= 10_000 or proc.poll() is not None, 120, "rows to be staged")
        else:
            _wait_for(lambda: publishing() or proc.poll() is not None, 180, "the publish statement")
        assert proc.poll() is None, f"the run finished before it could be killed: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # the server rolls the killed connection's transaction back; wait until it has let go
        _wait_for(lambda: not publishing(), 120, "the killed publish to roll back")
        with watch.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 0  # all or nothing
        killed = _batches(ctx)
        assert len(killed) == 1 and killed[0]["status"] in ("planned", "staged")
        assert state.get_watermark(ctx.engine, ctx.ops, "visit") is None

        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert rerun.returncode == 0, rerun.stderr
        batches = _batches(ctx)
        assert [b["status"] for b in batches] == [killed[0]["status"], "published"]
        assert batches[0]["batch_id"] == killed[0]["batch_id"]  # the killed batch never became 'published'
        done = batches[1]
        assert done["extracted"] == 120_000 == done["published"] + done["quarantined"]
        # the highest change time the batch staged, by the source's clock
        assert state.get_watermark(ctx.engine, ctx.ops, "visit") == done["max_changed_at"] is not None
        assert_front_end_equals_source(ctx, src)
        watch.dispose()
    finally:
        dispose_all()
        src.drop()


def test_source_gone_before_run_retries_then_fails_naming_the_connection(tmp_path, mariadb_url, hb_home,
                                                                         monkeypatch, retries_fast, streaming):
    src = _source(tmp_path, rows=500, chunk=200)
    proxy = FlakyProxy("127.0.0.1", make_url(MARIADB_ADMIN).port or 3306)
    try:
        monkeypatch.setenv("HIPBRIDGE_CONN_SRC", src.url.replace(":3306/", f":{proxy.port}/"))
        ctx = Context.create(src.specs, mariadb_url)
        first = sync_table("visit", ctx=ctx)
        assert first.status == "published"
        wm = state.get_watermark(ctx.engine, ctx.ops, "visit")
        proxy.cut()
        dispose_all()
        src.execute("UPDATE visit_src SET fee = 1, upd = NOW() WHERE id = 'V000000001'")
        seen: list[str] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: seen.append(record.getMessage())
        logger = logging.getLogger("hipbridge.pipeline.retry")
        logger.addHandler(handler)
        logger.disabled = False
        try:
            with pytest.raises(SourceUnavailable) as err:
                sync_table("visit", ctx=ctx)
        finally:
            logger.removeHandler(handler)
        message = str(err.value)
        assert "source connection 'src'" in message and f"127.0.0.1:{proxy.port}" in message
        assert "after 3 attempt(s)" in message
        assert sum("retrying in" in m for m in seen) == 2  # backoff between the three attempts
        assert state.get_watermark(ctx.engine, ctx.ops, "visit") == wm  # untouched
        last = next(b for b in _batches(ctx) if b["batch_id"] != first.batch_id)
        assert last["status"] == "failed" and "SourceUnavailable" in last["message"]
    finally:
        proxy.close()
        dispose_all()
        gc.collect()  # PyMySQL results of the cut connections go now, under this test's warning filter
        src.drop()


@pytest.mark.parametrize("comes_back", [False, True])
def test_source_lost_mid_transfer(tmp_path, mariadb_url, hb_home, monkeypatch, retries_fast, streaming,
                                  comes_back):
    src = _source(tmp_path, rows=20_000, chunk=1_000)
    proxy = FlakyProxy("127.0.0.1", make_url(MARIADB_ADMIN).port or 3306)
    try:
        monkeypatch.setenv("HIPBRIDGE_CONN_SRC", src.url.replace(":3306/", f":{proxy.port}/"))
        ctx = Context.create(src.specs, mariadb_url)
        ctx.ensure_frontend(["visit"])
        proxy.cut_after = 300_000  # a few chunks in
        if comes_back:
            def restore_soon():
                _wait_for(lambda: not proxy.up, 60, "the cut")
                time.sleep(0.3)
                proxy.restore()
            threading.Thread(target=restore_soon, daemon=True).start()
            r = sync_table("visit", ctx=ctx)
            assert r.status == "published" and r.extracted == 20_000
            assert_front_end_equals_source(ctx, src)
            assert proxy.bytes > 300_000
        else:
            with pytest.raises(SourceUnavailable, match="source connection 'src'"):
                sync_table("visit", ctx=ctx)
            with ctx.engine.connect() as c:
                assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 0
            assert state.get_watermark(ctx.engine, ctx.ops, "visit") is None
            assert _batches(ctx)[-1]["status"] == "failed"
    finally:
        proxy.close()
        dispose_all()
        gc.collect()  # PyMySQL results of the cut connections go now, under this test's warning filter
        src.drop()


def test_front_end_lost_mid_transfer_fails_clearly_and_publishes_nothing(tmp_path, mariadb_url, hb_home,
                                                                         monkeypatch, retries_fast):
    src = _source(tmp_path, rows=20_000, chunk=1_000)
    proxy = FlakyProxy("127.0.0.1", make_url(MARIADB_ADMIN).port or 3306)
    try:
        monkeypatch.setenv("HIPBRIDGE_CONN_SRC", src.url)
        via_proxy = mariadb_url.replace(":3306/", f":{proxy.port}/")
        ctx = Context.create(src.specs, via_proxy)
        ctx.ensure_frontend(["visit"])
        proxy.cut_after = proxy.bytes + 400_000  # a few staged chunks in
        with pytest.raises((FrontendUnavailable, Exception)) as err:
            sync_table("visit", ctx=ctx)
        assert isinstance(err.value, FrontendUnavailable), repr(err.value)
        assert f"127.0.0.1:{proxy.port}" in str(err.value)
        direct = Context.create(src.specs, mariadb_url)
        with direct.engine.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 0
        assert state.get_watermark(direct.engine, direct.ops, "visit") is None
    finally:
        proxy.close()
        dispose_all()
        gc.collect()  # PyMySQL results of the cut connections go now, under this test's warning filter
        src.drop()


def test_fast_read_source_on_a_dead_port_fails_fast_and_clearly(tmp_path, mariadb_url, hb_home, monkeypatch,
                                                               retries_fast):
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    src = _source(tmp_path, rows=10, chunk=200)
    try:
        monkeypatch.setenv("HIPBRIDGE_CONN_SRC", src.url.replace(":3306/", f":{dead}/"))
        ctx = Context.create(src.specs, mariadb_url)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=f"source connection 'src' .*127.0.0.1:{dead}"):
            sync_table("visit", ctx=ctx)
        assert time.monotonic() - started < 25  # three attempts with backoff, not connectorx's 30 s pool wait
        assert state.get_watermark(ctx.engine, ctx.ops, "visit") is None
        assert _batches(ctx)[-1]["status"] == "failed"
    finally:
        dispose_all()
        src.drop()
