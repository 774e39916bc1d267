"""The whole sharing story against the simulated platform (real HTTP) and MariaDB:
book → grant → push → verify → visit ends → day 15 → deleted; revoke → deleted now; overlapping
authorizations; no-show; platform outage and retries; safety cap and dry run; no plaintext at rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]



def valid_id(prefix17: str) -> str:
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return prefix17 + "10X98765432"[sum(int(a) * b for a, b in zip(prefix17, w, strict=True)) % 11]


class Clock:
    """A movable 'now' shared by the hospital side and the simulated platform."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> datetime:
        self.now += timedelta(**kw)
        return self.now


class World:
    def __init__(self, life, clock, sim, sim_app, door, token, platform_keys):
        import httpx

        self.life, self.clock, self.sim, self.sim_app, self.door = life, clock, sim, sim_app, door
        self.platform_keys = platform_keys
        self.http = httpx.Client(base_url=door.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False,
                                 timeout=30)
        self.client = life.client(clock=clock, base_url=sim.url)

    def book(self, appointment_id: str, id_no: str, visit_date: datetime, name: str = "张三", **extra):
        body = {"appointmentId": appointment_id, "channel": "03",
                "patient": {"name": name, "idType": "01", "idNo": id_no, "phone": "13800000000"},
                "visitDate": visit_date.isoformat(), "deptCode": "0101", "deptName": "心内科",
                "consent": {"given": True, "method": "CHECKBOX", "terminalId": "WX-01"}, **extra}
        r = self.http.post("/booking/book", json=body)
        assert r.status_code == 202, r.text
        return r.json()

    def post(self, path: str, **body):
        r = self.http.post(path, json=body)
        assert r.status_code == 202, r.text
        return r.json()

    def drain(self):
        return self.life.drain_outbox(self.client)

    def shared_rows(self, auth_ids=None) -> int:
        from sqlalchemy import func, select

        store = self.life.store
        total = 0
        for _tid, _label, t, engine in store.purge_targets():   # landing and encrypted tables
            with engine.connect() as c:
                q = select(func.count()).select_from(t)
                if auth_ids is not None:
                    q = q.where(t.c[store.cols["auth_id"]].in_(list(auth_ids)))
                total += c.execute(q).scalar_one()
        return total

    def auth(self, appointment_id: str) -> dict:
        from sqlalchemy import select

        ar = self.life.ops.table("auth_record")
        with self.life.frontend.connect() as c:
            return dict(c.execute(select(ar).where(ar.c.appointment_id == appointment_id)).mappings().one())

    def outbox(self) -> list[dict]:
        from sqlalchemy import select

        ob = self.life.ops.table("outbox")
        with self.life.frontend.connect() as c:
            return [dict(r) for r in c.execute(select(ob).order_by(ob.c.id)).mappings()]


def write_specs(d: Path) -> Path:
    """The real table specs (`table_specs/`), copied so a test may add or break one without touching the repo."""
    shutil.copytree(Path(__file__).resolve().parents[1] / "table_specs", d)
    return d


ID_A = valid_id("45100219800101123")
ID_B = valid_id("45100219900202234")


@pytest.fixture
def spec_dir(tmp_path, monkeypatch):
    d = write_specs(tmp_path / "specs")
    monkeypatch.setenv("HIPBRIDGE_SPECS", str(d))
    return d


@pytest.fixture
def share_schema(monkeypatch):
    name = f"hbshare_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("HIPBRIDGE_SHARE_SCHEMA", name)
    yield name
    admin = create_engine(os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/"))
    with admin.begin() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        c.execute(text(f"DROP DATABASE IF EXISTS `{name}_secure`"))   # the encrypted tables (secure.py)
    admin.dispose()


def _world(hb_home, spec_dir, mariadb_url, sim_port=None, start_sim=True):
    from hipbridge.crypto.keys import KeyStore, provision_pair
    from hipbridge.demo.simulator import ServerThread, create_app
    from hipbridge.sharing.door import add_caller
    from hipbridge.sharing.service import Lifecycle
    from hipbridge.spec import load_specs

    clock = Clock(datetime(2026, 3, 2, 9, 0, 0))
    hospital, platform = KeyStore(hb_home / "keys"), KeyStore(hb_home / "platform_keys")
    provision_pair(hospital, platform)
    life = Lifecycle.open(mariadb_url, load_specs(spec_dir).require_valid(), hospital)
    sim_app = create_app(platform, life.store, clock=clock, seed=7)
    sim = ServerThread(sim_app, port=sim_port)
    if start_sim:
        sim.start()
    door = ServerThread(life.door_app(clock=clock)).start()
    token = add_caller(hospital, "his-booking")
    return World(life, clock, sim, sim_app, door, token, platform)


@pytest.fixture
def world(hb_home, spec_dir, share_schema, mariadb_url):
    w = _world(hb_home, spec_dir, mariadb_url)
    yield w
    w.client.close()
    w.door.stop()
    w.sim.stop()


def _wait(pred, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# ---------------------------------------------------------------- the story


def test_grant_push_verify_visit_end_day15_deleted(world):
    w = world
    visit = datetime(2026, 3, 3, 8, 30)
    assert w.book("A1001", ID_A, visit)["shared"] is True
    assert w.shared_rows() == 0                     # nothing happens before the outbox runs
    rep = w.drain()
    assert rep.acked == 1
    rec = w.auth("A1001")
    assert rec["status"] == "ACTIVE" and rec["auth_id"]
    pushed = w.shared_rows([rec["auth_id"]])
    assert pushed > 0

    v = w.life.verify(w.clock(), run_quality=False)
    assert v.batches and all(b.status == "PASSED" for b in v.batches), v.as_dict()
    assert all(b.digest_ok and b.received_rows == b.manifest_rows for b in v.batches)
    assert w.life.verify(w.clock(), run_quality=False).batches == []   # each batch once

    w.clock.now = visit
    w.post("/visit/start", appointmentId="A1001", visitNo="MZ0001", time=visit.isoformat())
    end = visit + timedelta(hours=2)
    w.post("/visit/end", appointmentId="A1001", visitNo="MZ0001", time=end.isoformat())

    w.clock.now = end + timedelta(days=14, hours=23)
    assert w.life.purge(w.clock()).deleted == 0
    assert w.shared_rows() == pushed

    w.clock.now = end + timedelta(days=15, seconds=1)
    dry = w.life.purge(w.clock(), dry_run=True)
    assert dry.deleted == 0 and sum(dry.per_table.values()) == pushed and w.shared_rows() == pushed
    rep = w.life.purge(w.clock())
    assert rep.status == "OK" and rep.deleted == pushed
    assert w.shared_rows() == 0
    rec = w.auth("A1001")
    assert rec["purged_at"] is not None and rec["status"] == "EXPIRED"
    dlog = w.life.ops.table("deletion_log")
    with w.life.frontend.connect() as c:
        logs = c.execute(select(dlog).where(dlog.c.dry_run.is_(False))).mappings().all()
    assert len(logs) == 1 and logs[0]["rows_deleted"] == pushed and logs[0]["reason"] == "visit_end"
    assert logs[0]["patient_key"] == rec["patient_key"] and rec["auth_id"] not in (logs[0]["auth_keys"] or "")
    assert w.life.purge(w.clock()).deleted == 0       # re-run is a no-op


def test_verification_rejects_tampered_push_and_runs_quality(world):
    w = world
    w.book("A2001", ID_A, datetime(2026, 3, 3, 8, 30))
    w.drain()
    store = w.life.store
    t = store.tables["lab_result"]
    with store.engine.begin() as c:   # someone alters a pushed result after the manifest was written
        c.execute(t.update().where(t.c.JYMXLSH == select(t.c.JYMXLSH).limit(1).scalar_subquery()).values(JYDLJG="999"))
    v = w.life.verify(w.clock(), run_quality=True)
    by_table = {b.table_name: b for b in v.batches}
    assert by_table[t.name].status == "REJECTED"
    assert any(p.rule_id == "Q08" for p in by_table[t.name].problems)
    assert by_table[store.tables["op_visit"].name].status in ("PASSED", "WARN")
    pp = w.life.ops.table("push_problem")
    with w.life.frontend.connect() as c:
        assert c.execute(select(pp).where(pp.c.rule_id == "Q08")).first() is not None
    assert v.quality_run_id   # quality engine + push-back rules stored as a `push` run for the quality report
    with w.life.frontend.connect() as c:
        kind = c.execute(text(f"SELECT kind FROM `{w.life.ops.schema}`.quality_run WHERE run_id = :r"),
                         {"r": v.quality_run_id}).scalar()
        q08 = c.execute(text(f"SELECT severity, status FROM `{w.life.ops.schema}`.quality_result "
                             "WHERE run_id = :r AND rule_id = 'PUSH.Q08.lab_result'"), {"r": v.quality_run_id}).first()
    assert kind == "push" and tuple(q08) == ("error", "Failed")


def test_revoke_deletes_now(world):
    w = world
    w.book("A3001", ID_A, datetime(2026, 3, 10, 8, 30))
    w.drain()
    auth_id = w.auth("A3001")["auth_id"]
    assert w.shared_rows([auth_id]) > 0
    res = w.post("/booking/cancel", appointmentId="A3001", reason="患者退号", operatorId="W01")
    assert res["authStatus"] == "REVOKED"
    assert _wait(lambda: w.shared_rows([auth_id]) == 0)   # deleted at once, before the platform is told
    w.drain()
    assert [o["status"] for o in w.outbox()] == ["ACKED", "ACKED"]
    assert w.sim_app.state.sim.auths[(w.life.org_code, "A3001")].status == "2"
    assert w.post("/booking/cancel", appointmentId="A3001")["duplicate"] is True


def test_overlapping_authorizations_keep_data_until_the_later_ends(world):
    w = world
    v1, v2 = datetime(2026, 3, 3, 9), datetime(2026, 3, 25, 9)
    w.book("B1", ID_B, v1)
    w.book("B2", ID_B, v2)
    w.drain()
    ids = [w.auth("B1")["auth_id"], w.auth("B2")["auth_id"]]
    total = w.shared_rows(ids)
    assert total > 0
    w.post("/visit/end", appointmentId="B1", time=(v1 + timedelta(hours=1)).isoformat())
    w.clock.now = v1 + timedelta(days=17)                  # B1 is due, B2 still active
    assert w.life.purge(w.clock()).deleted == 0
    assert w.shared_rows(ids) == total
    w.post("/visit/end", appointmentId="B2", time=(v2 + timedelta(hours=1)).isoformat())
    w.clock.now = v2 + timedelta(days=15, hours=2)
    rep = w.life.purge(w.clock())
    assert rep.deleted == total and w.shared_rows(ids) == 0


def test_no_show_purged_at_expiry_and_legal_hold(world):
    w = world
    visit = datetime(2026, 3, 4, 10)
    w.book("C1", ID_A, visit)
    w.book("C2", valid_id("45100219850505345"), visit, name="李四")
    w.drain()
    ar = w.life.ops.table("auth_record")
    with w.life.frontend.begin() as c:
        c.execute(ar.update().where(ar.c.appointment_id == "C2").values(legal_hold=True,
                                                                          legal_hold_reason="医疗纠纷封存"))
    ids = {a: w.auth(a)["auth_id"] for a in ("C1", "C2")}
    expire = w.auth("C1")["expire_time"]
    w.clock.now = expire - timedelta(minutes=1)
    assert w.life.purge(w.clock()).deleted == 0
    w.clock.now = expire + timedelta(minutes=1)
    rep = w.life.purge(w.clock())
    assert rep.deleted > 0 and w.shared_rows([ids["C1"]]) == 0
    assert w.shared_rows([ids["C2"]]) > 0                   # on hold: kept
    assert rep.patients[0]["reason"] == "no_show"


def test_safety_cap_aborts_without_deleting(world):
    w = world
    w.book("D1", ID_A, datetime(2026, 3, 3, 9))
    w.drain()
    before = w.shared_rows()
    w.post("/booking/refund", appointmentId="D1")   # immediate purge would run; use the cap explicitly below
    _wait(lambda: w.shared_rows() == 0)
    # push again for another patient, then try a purge that would empty the tables with a tight cap
    w.book("D2", ID_B, datetime(2026, 3, 3, 9))
    w.drain()
    w.post("/visit/end", appointmentId="D2", time="2026-03-03T10:00:00")
    w.clock.now = datetime(2026, 3, 20)
    rep = w.life.purge(w.clock(), max_share_pct=10, cap_min_rows=1)
    assert rep.status == "ABORTED" and "安全上限" in rep.message and w.shared_rows() == before
    runs = w.life.ops.table("deletion_run")
    with w.life.frontend.connect() as c:
        assert c.execute(select(runs.c.status).where(runs.c.run_id == rep.run_id)).scalar() == "ABORTED"


def test_booking_is_idempotent_and_declined_consent_sends_nothing(world):
    w = world
    first = w.book("E1", ID_A, datetime(2026, 3, 5, 9))
    again = w.book("E1", ID_A, datetime(2026, 3, 5, 9))
    assert again["duplicate"] is True and again["outboxId"] == first["outboxId"]
    r = w.http.post("/booking/book", json={
        "appointmentId": "E2", "patient": {"name": "王五", "idType": "01", "idNo": ID_B},
        "visitDate": "2026-03-05T09:00:00", "consent": {"given": False}})
    assert r.status_code == 202 and r.json()["shared"] is False
    assert len(w.outbox()) == 1
    r = w.http.post("/booking/book", json={}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    import httpx

    assert httpx.post(w.door.url + "/booking/cancel", json={"appointmentId": "E1"}, trust_env=False).status_code == 401


def test_identity_mismatch_fails_without_retry(world):
    w = world
    w.book("F1", "451002198001011230", datetime(2026, 3, 5, 9))   # wrong GB 11643 check character
    rep = w.drain()
    assert rep.failed == 1 and w.auth("F1")["status"] == "FAILED"
    assert w.outbox()[0]["last_code"] == "A2002"
    w.clock.advance(hours=2)
    assert w.drain().sent == 0


def test_no_plaintext_personal_data_at_rest_and_audit_chain(world):
    from hipbridge.platform.state import verify_audit_chain

    w = world
    w.book("G1", ID_A, datetime(2026, 3, 5, 9), name="赵六")
    w.drain()
    w.post("/booking/cancel", appointmentId="G1")
    w.drain()
    schema = w.life.ops.schema
    with w.life.frontend.connect() as c:
        for table in ("outbox", "auth_record", "audit_event", "platform_message", "deletion_log"):
            dump = json.dumps([list(map(str, r)) for r in c.execute(text(f"SELECT * FROM `{schema}`.`{table}`"))],
                              ensure_ascii=False)
            assert ID_A not in dump and "赵六" not in dump and "13800000000" not in dump, table
    assert verify_audit_chain(w.life.frontend, w.life.ops, w.life.keys) is None
    ev = w.life.ops.table("audit_event")
    with w.life.frontend.begin() as c:   # tamper with one event: the chain breaks there
        first = c.execute(select(ev.c.id).order_by(ev.c.id).limit(1)).scalar()
        c.execute(ev.update().where(ev.c.id == first).values(result_code="XXXXX"))
    assert verify_audit_chain(w.life.frontend, w.life.ops, w.life.keys) == first


def test_nightly_reconciliation_follows_a_revocation_at_the_platform(world):
    w = world
    w.book("K1", ID_A, datetime(2026, 3, 9, 9))
    w.drain()
    auth_id = w.auth("K1")["auth_id"]
    assert w.shared_rows([auth_id]) > 0
    w.sim_app.state.sim.auths[(w.life.org_code, "K1")].status = "2"   # the patient withdrew in the platform's app
    rep = w.life.reconcile(w.client)
    assert rep.checked == 1 and rep.changed == 1
    assert w.auth("K1")["status"] == "REVOKED" and w.shared_rows([auth_id]) == 0


def test_platform_down_outbox_retries_then_succeeds(hb_home, spec_dir, share_schema, mariadb_url):
    from hipbridge.demo.simulator import free_port

    port = free_port()
    w = _world(hb_home, spec_dir, mariadb_url, sim_port=port, start_sim=False)
    try:
        t0 = w.clock()
        assert w.book("H1", ID_A, datetime(2026, 3, 5, 9))["accepted"] is True   # booking never blocked
        rep = w.drain()
        assert rep.retry == 1 and rep.acked == 0
        ob = w.outbox()[0]
        assert ob["status"] == "SENT" and ob["attempts"] == 1 and ob["next_retry_at"] == t0 + timedelta(minutes=1)
        w.clock.advance(minutes=1)
        w.drain()
        ob = w.outbox()[0]
        assert ob["attempts"] == 2 and ob["next_retry_at"] == w.clock() + timedelta(minutes=5)
        w.sim.start()                                   # the platform comes back
        w.clock.advance(minutes=2)
        assert w.drain().sent == 0                      # not due yet: back-off respected
        w.clock.advance(minutes=3)
        rep = w.drain()
        assert rep.acked == 1
        assert w.outbox()[0]["status"] == "ACKED" and w.auth("H1")["status"] == "ACTIVE"
        assert w.shared_rows() > 0
    finally:
        w.client.close()
        w.door.stop()
        w.sim.stop()


def test_quality_engine_results_reach_the_push_run(world):
    w = world
    w.book("Q1", ID_A, datetime(2026, 3, 3, 8, 30))
    w.drain()
    v = w.life.verify(w.clock(), run_quality=True)
    assert v.quality_run_id, "quality engine did not run"
    with w.life.frontend.connect() as c:
        n = c.execute(text(f"SELECT COUNT(*) FROM `{w.life.ops.schema}`.quality_result WHERE run_id = :r"),
                      {"r": v.quality_run_id}).scalar()
    assert n > 0


def test_a_pushed_row_of_another_patient_is_rejected_q11(world):
    """Q11: a row whose 证件类型 + 证件号码 are not the authorized patient's (a mis-linked record) rejects its
    batch, although its row and batch digests are consistent (the platform itself sent it so)."""
    from hipbridge.sharing.store import batch_digest, row_digest

    w = world
    w.book("Q1101", ID_A, datetime(2026, 3, 3, 8, 30))
    w.drain()
    store = w.life.store
    # lab_report carries the patient's 证件类型 + 证件号码 in the real specs (op_visit does not)
    t, cols, mc = store.tables["lab_report"], store.cols, store.mcols
    data_cols = store.data_columns("lab_report")
    with store.engine.begin() as c:   # the platform sends one report with another person's ID, digests recomputed
        rows = c.execute(select(t)).mappings().all()
        assert rows and all(r["ZJHM"] == ID_A for r in rows)
        victim = dict(rows[0])
        victim["ZJHM"] = valid_id("45100219900202002")
        c.execute(t.update().where(t.c.JYJLLSH == victim["JYJLLSH"], t.c.YLJGDM == victim["YLJGDM"]).values(
            ZJHM=victim["ZJHM"], **{cols["row_digest"]: row_digest(victim, data_cols)}))
        batch = victim[cols["batch_id"]]
        digests = list(c.execute(select(t.c[cols["row_digest"]]).where(t.c[cols["batch_id"]] == batch)).scalars())
        m = store.manifest
        c.execute(m.update().where(m.c[mc["batch_id"]] == batch, m.c[mc["table_name"]] == t.name).values(
            {mc["digest"]: batch_digest(digests)}))
    v = w.life.verify(w.clock(), run_quality=False)
    visit = next(b for b in v.batches if b.table_name == t.name and b.batch_id == batch)
    assert visit.digest_ok and visit.status == "REJECTED"
    assert [(p.rule_id, p.severity, p.violated) for p in visit.problems] == [("Q11", "blocking", 1)]
    others = [b for b in v.batches if b.table_name != t.name]
    assert others and all(not any(p.rule_id == "Q11" for p in b.problems) for b in others)


def _push(w, table_id: str, batch: str, auth_id: str, rows: list[tuple[dict, int]]) -> None:
    """The platform pushes `rows` ((data columns, data_num) each) as one batch with a consistent manifest."""
    from hipbridge.sharing.store import batch_digest, row_digest

    store = w.life.store
    t, cols, mc = store.tables[table_id], store.cols, store.mcols
    data_cols = store.data_columns(table_id)
    now = w.clock()
    out = [{**data, cols["batch_id"]: batch, cols["auth_id"]: auth_id, cols["instock_time"]: now,
            cols["data_num"]: num, cols["row_digest"]: row_digest(data, data_cols)} for data, num in rows]
    with store.engine.begin() as c:
        c.execute(t.insert(), out)
        c.execute(store.manifest.insert().values({
            mc["batch_id"]: batch, mc["table_name"]: t.name, mc["auth_id"]: auth_id, mc["row_count"]: len(out),
            mc["digest"]: batch_digest([r[cols["row_digest"]] for r in out]), mc["min_instock"]: now,
            mc["max_instock"]: now, mc["created"]: now}))


def test_a_pushed_conflict_on_the_same_data_num_is_rejected_and_the_first_row_kept_q07(world):
    """Q07: the same business key and data_num with other content rejects the batch, and ingest keeps the first
    received row; a higher data_num replaces it (a correction), a lower one never does."""
    w = world
    w.book("Q0701", ID_A, datetime(2026, 3, 3, 8, 30))
    w.drain()
    auth_id = w.auth("Q0701")["auth_id"]
    store = w.life.store
    t, cols = store.tables["op_visit"], store.cols
    data_cols = store.data_columns("op_visit")
    with store.engine.connect() as c:
        first = [dict(r) for r in c.execute(select(t).order_by(t.c.YLJGDM, t.c.MZJZLSH)).mappings()]
    assert len(first) == 4 and {r[cols["data_num"]] for r in first} == {1}
    assert all(b.status == "PASSED" for b in w.life.verify(w.clock(), run_quality=False).batches)
    assert w.life.ingest(w.clock()).moved[t.name] == 4
    key = {"YLJGDM", "MZJZLSH"}
    conflict, same, newer, untouched = ({c: r[c] for c in data_cols} for r in first)
    other_time = datetime(2026, 2, 27, 10, 0)
    w.clock.advance(minutes=5)
    _push(w, "op_visit", "B-Q07-2", auth_id, [({**conflict, "JZKSSJ": other_time}, 1),   # Q07
                                              (same, 1),                                 # the same row again
                                              ({**newer, "JZKSSJ": other_time}, 2)])     # a correction
    v = w.life.verify(w.clock(), run_quality=False)
    assert [(b.table_name, b.status) for b in v.batches] == [(t.name, "REJECTED")]
    assert [(p.rule_id, p.severity, p.violated) for p in v.batches[0].problems] == [("Q07", "blocking", 1)]
    rep = w.life.ingest(w.clock())
    assert (rep.moved[t.name], rep.kept[t.name]) == (2, 1)

    def stored(row):
        got = w.life.read("op_visit", keys=[{k: row[k] for k in key}])
        assert len(got) == 1 and not got[0].tampered
        return got[0].data

    assert stored(conflict)["JZKSSJ"] == first[0]["JZKSSJ"] != other_time              # the first row stays
    assert stored(conflict)[cols["batch_id"]] == first[0][cols["batch_id"]]
    assert stored(same)[cols["batch_id"]] == "B-Q07-2"
    assert (stored(newer)["JZKSSJ"], stored(newer)[cols["data_num"]]) == (other_time, 2)
    assert stored(untouched)[cols["batch_id"]] == first[3][cols["batch_id"]]
    # an older version (data_num 1 after 2) with other content: no Q07, and it never replaces the newer one
    w.clock.advance(minutes=5)
    _push(w, "op_visit", "B-Q07-3", auth_id, [({**newer, "JZKSSJ": datetime(2026, 2, 1, 8, 0)}, 1)])
    v = w.life.verify(w.clock(), run_quality=False)
    assert [(b.batch_id, b.status) for b in v.batches] == [("B-Q07-3", "PASSED")]
    rep = w.life.ingest(w.clock())
    assert rep.kept == {t.name: 1} and t.name not in rep.moved
    assert (stored(newer)["JZKSSJ"], stored(newer)[cols["data_num"]]) == (other_time, 2)
    with store.engine.connect() as c:
        assert c.execute(select(t)).first() is None                                    # landing emptied


def test_a_pushed_row_whose_platform_signature_does_not_verify_is_rejected_q09(world):
    """Q09: a row carrying the platform's per-row signature (SM3withSM2 over its row digest, base64 DER) must
    verify with the platform's signing key; unsigned rows are not checked, a fully signed batch passes."""
    import base64

    from hipbridge.crypto.sm import sm2_sign
    from hipbridge.sharing.store import row_digest

    w = world
    w.book("Q0901", ID_A, datetime(2026, 3, 3, 8, 30))
    w.drain()
    store = w.life.store
    cols = store.cols
    platform_key, hospital_key = w.platform_keys.sm2("sign").private_key, w.life.keys.sm2("sign").private_key

    def sign(private: str, row: dict, data_cols: list[str]) -> str:
        return base64.b64encode(sm2_sign(private, row_digest(row, data_cols).encode("ascii"))).decode("ascii")

    t, data_cols = store.tables["op_visit"], store.data_columns("op_visit")
    with store.engine.begin() as c:
        rows = [dict(r) for r in c.execute(select(t).order_by(t.c.YLJGDM, t.c.MZJZLSH)).mappings()]
        assert len(rows) == 4
        signs = [sign(platform_key, {**rows[0], "JZKSSJ": datetime(2026, 1, 1)}, data_cols),  # other content
                 sign(hospital_key, rows[1], data_cols),                                     # not the platform's
                 "not base64 at all!",
                 None]                                                                       # unsigned
        for r, s in zip(rows, signs, strict=True):
            c.execute(t.update().where(t.c.YLJGDM == r["YLJGDM"], t.c.MZJZLSH == r["MZJZLSH"]).values(
                {cols["sign"]: s}))
        lab, lab_cols = store.tables["lab_report"], store.data_columns("lab_report")
        for r in [dict(x) for x in c.execute(select(lab)).mappings()]:                  # every row signed properly
            c.execute(lab.update().where(lab.c.YLJGDM == r["YLJGDM"], lab.c.JYJLLSH == r["JYJLLSH"]).values(
                {cols["sign"]: sign(platform_key, r, lab_cols)}))
    v = w.life.verify(w.clock(), run_quality=False)
    by = {b.table_name: b for b in v.batches}
    assert by[t.name].digest_ok and by[t.name].status == "REJECTED"
    assert [(p.rule_id, p.severity, p.violated) for p in by[t.name].problems] == [("Q09", "blocking", 3)]
    assert by[lab.name].status == "PASSED" and all(b.status == "PASSED" for n, b in by.items() if n != t.name)
    pp = w.life.ops.table("push_problem")
    with w.life.frontend.connect() as c:
        assert c.execute(select(pp.c.violated).where(pp.c.rule_id == "Q09")).scalars().all() == [3]
    # the signature is checked at landing only: the encrypted tables do not keep it
    w.life.ingest(w.clock())
    assert cols["sign"] not in w.life.secure.tables["op_visit"].table.c
    assert all(not r.tampered and r.data[cols["sign"]] is None for r in w.life.read("op_visit"))


def test_a_shared_store_of_an_earlier_version_gains_the_signature_column(world):
    from hipbridge.sharing.store import open_store
    from sqlalchemy import inspect

    w = world
    land = w.life.store.tables["op_visit"]
    with w.life.store.engine.begin() as c:
        c.execute(text(f"ALTER TABLE `{land.name}` DROP COLUMN row_sign"))
    store = open_store(w.life.frontend_url, w.life.specs)
    assert "row_sign" in {c["name"] for c in inspect(store.engine).get_columns(land.name)}
