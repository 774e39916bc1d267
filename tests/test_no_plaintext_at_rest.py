"""Issue 12 "done when": after a run with dirty data and a crash, plus a sharing push, no plaintext
name, ID number or phone is left in any table or file of ours.

A real `hipbridge run` subprocess extracts a MariaDB source with rows that quarantine (a name too
long for its column, an ID number and a phone in them), is SIGKILLed mid-transfer and rerun; the
simulated platform pushes a patient's data, which is verified and ingested into the encrypted
store; a second booking is cancelled (purge, deletion log). Then every text column of every table
in the front-end database, the operations schema, the shared store (landing and encrypted) and
every file of the spool folder is scanned for the values used. They may appear only in the
province's front-end business tables (plaintext by default, as the province extracts them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import make_url

from tests import test_sharing_lifecycle as _lifecycle
from tests.conftest import MARIADB_ADMIN, _unique
from tests.test_sharing_lifecycle import ID_A, ID_B, _world
from tests.transfer_helpers import SourceHospital

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRTY_NAME, DIRTY_ID, DIRTY_PHONE = "欧阳娜娜娜", "450102199001011234", "13912345678"
CLEAN_NAMES = ("张三", "李四", "王小五")      # the source's names: published into MZJZJL (allowed there only)
SHARED_NAME, SHARED_PHONE = "赵六", "13800000000"
spec_dir, share_schema = _lifecycle.spec_dir, _lifecycle.share_schema   # fixtures
TEXT_TYPES = ("char", "varchar", "text", "tinytext", "mediumtext", "longtext", "json", "blob", "mediumblob",
              "longblob", "varbinary", "binary")


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _scan(engine, schemas: list[str], needles: list[str]) -> set[tuple[str, str, str, str]]:
    hits = set()
    with engine.connect() as c:
        cols = c.execute(text(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema IN :s AND data_type IN :t").bindparams(
                bindparam("s", expanding=True), bindparam("t", expanding=True)),
            {"s": schemas, "t": list(TEXT_TYPES)}).all()
        assert cols
        for schema, table, col in cols:
            for n in needles:
                q = f"SELECT 1 FROM `{schema}`.`{table}` WHERE CAST(`{col}` AS CHAR) LIKE :n LIMIT 1"
                if c.execute(text(q), {"n": f"%{n}%"}).first():
                    hits.add((schema, table, col, n))
    return hits


def test_no_plaintext_personal_data_after_dirty_run_crash_and_push(tmp_path, mariadb_url, hb_home, spec_dir,
                                                                   share_schema, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setenv("HIPBRIDGE_SPOOL_DIR", str(spool))
    src = SourceHospital(MARIADB_ADMIN, _unique("hbsrc"), tmp_path / "source", rows=60_000, chunk=1_500)
    w = None
    try:
        src.execute("UPDATE visit_src SET name = CONVERT(:n USING utf8mb4), note = :note WHERE id LIKE '%17'",
                    {"n": DIRTY_NAME, "note": f"身份证 {DIRTY_ID} 电话 {DIRTY_PHONE}"})
        env = {**os.environ, "HIPBRIDGE_CONN_SRC": src.url, "HIPBRIDGE_FRONTEND_URL": mariadb_url,
               "PYTHONPATH": os.path.join(ROOT, "plugins")}
        cmd = [sys.executable, "-m", "hipbridge.cli", "run", "visit", "--specs", str(src.specs)]
        fe, ops = make_url(mariadb_url).database, os.environ["HIPBRIDGE_OPS_SCHEMA"]
        watch = create_engine(mariadb_url)

        def staged() -> int:
            with watch.connect() as c:
                names = c.execute(text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                                       "AND table_name LIKE 'stg\\_visit\\_\\_%'"), {"s": ops}).scalars().all()
                return sum(c.execute(text(f"SELECT COUNT(*) FROM `{ops}`.`{t}`")).scalar() for t in names)

        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for(lambda: staged() >= 4_500 or proc.poll() is not None, 180, "rows to be staged")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_leftovers = staged()
        assert killed_leftovers >= 4_500                        # the killed batch left plaintext rows behind …
        with watch.connect() as c:
            quarantined = c.execute(text(f"SELECT COUNT(*) FROM `{ops}`.quarantine")).scalar()
        assert quarantined > 0                                  # … and quarantined dirty rows already

        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert rerun.returncode == 0, rerun.stderr
        assert staged() == 0                                    # … which the rerun's crash recovery dropped
        with watch.connect() as c:
            published = c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar()
            dirty = c.execute(text("SELECT COUNT(*) FROM MZJZJL WHERE XM = :n"), {"n": DIRTY_NAME}).scalar()
        assert published == 60_000 - 600 and dirty == 0         # every …17 row quarantined, the rest published

        # the sharing side on the same front-end: push, verify, ingest, and a purge (deletion log)
        w = _world(hb_home, spec_dir, mariadb_url)
        w.book("S1", ID_A, datetime(2026, 3, 5, 9), name=SHARED_NAME)
        w.book("S2", ID_B, datetime(2026, 3, 5, 10), name="钱七")
        w.drain()
        w.life.verify(w.clock(), run_quality=True)
        assert sum(w.life.ingest(w.clock()).moved.values()) > 0
        w.post("/booking/cancel", appointmentId="S2")
        w.drain()

        schemas = [fe, ops, share_schema, w.life.secure.schema]
        needles = [DIRTY_NAME, DIRTY_ID, DIRTY_PHONE, *CLEAN_NAMES, SHARED_NAME, SHARED_PHONE, ID_A, ID_B, "钱七"]
        hits = _scan(watch, schemas, needles)
        province_tables = {(fe, "MZJZJL")}
        leaks = sorted(h for h in hits if (h[0], h[1]) not in province_tables)
        assert leaks == []
        assert {h[3] for h in hits} == set(CLEAN_NAMES)        # the scan does see plaintext where it is
        for f in spool.rglob("*"):                              # nothing in the spool folder either
            data = f.read_bytes() if f.is_file() else b""
            assert not any(n.encode() in data for n in needles), f
        watch.dispose()
    finally:
        if w is not None:
            w.client.close()
            w.door.stop()
            w.sim.stop()
        src.drop()
