"""The external data page (外院数据展示) against MariaDB, the simulated platform and real HTTP, and in
headless Chromium: launch, each refusal (reused / expired / invalid token, not authorized, expired or
revoked authorization, closed visit, not the treating doctor, wrong patient, no caller token), the
timeline and report contents, the 调阅记录 upload with one reviewId per (doctor, visit, report),
store down, the access audit (`hipbridge audit who / verify`).

One hospital per module (MariaDB DDL costs ~15 s here); tests that change state use their own patient.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from tests.display_world import ID_A, ID_B, ID_G, DisplayWorld, standard_world, wait

ADMIN = os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    name = f"hbt_disp_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dbs = [name, f"{name}_ops", f"{name}_share", f"{name}_share_secure"]   # the secure store's too
    admin = create_engine(ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    saved = {k: os.environ.get(k) for k in ("HIPBRIDGE_OPS_SCHEMA", "HIPBRIDGE_SHARE_SCHEMA", "HIPBRIDGE_HOME",
                                            "HIPBRIDGE_FRONTEND_URL")}
    home = tmp_path_factory.mktemp("hbhome")
    os.environ.update({"HIPBRIDGE_OPS_SCHEMA": dbs[1], "HIPBRIDGE_SHARE_SCHEMA": dbs[2], "HIPBRIDGE_HOME": str(home)})
    os.environ.pop("HIPBRIDGE_FRONTEND_URL", None)
    w = DisplayWorld(home, f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4&local_infile=1")
    w.home = home
    try:
        standard_world(w)
        yield w
    finally:
        w.close()
        from hipbridge.io.engines import dispose_all

        dispose_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with admin.begin() as c:
            for d in dbs:
                c.execute(text(f"DROP DATABASE IF EXISTS `{d}`"))
        admin.dispose()


@pytest.fixture
def clock_restored(world):
    before = world.clock.now
    yield world.clock
    world.clock.now = before


def _token(r) -> str:
    assert r.status_code == 201, r.text
    return r.json()["launchToken"]


def test_launch_needs_a_workstation_caller_token(world):
    assert world.launch("ZY001", "P-A", "D01", token="not-a-token").status_code == 401
    assert world.launch("ZY001", "P-A", "D01", token=world.booking_token).status_code == 403   # role booking
    r = world.http.post("/shared/launch", json={"orgCode": world.org, "visitId": "ZY001", "patientId": "P-A",
                                                "doctorId": "D01", "purpose": "VIEW"})
    assert r.status_code == 401


def test_launch_authenticates_before_the_body_limits_it_and_never_echoes_it(world):
    """Issue 12 item 5 on the display's endpoints: the caller token is checked before the body is read
    (a 1 GB body gets 401 at once), bodies are limited (413), and a validation error names the field
    without echoing what was sent (a patient id, an ID number)."""
    from tests.test_door_security import _raw

    port = int(world.url.rsplit(":", 1)[1])
    head = (b"POST /shared/launch HTTP/1.1\r\nHost: display\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n")
    assert _raw(port, head, b"{" * 1024).startswith(b"HTTP/1.1 401")
    authed = head.replace(b"Host: display", b"Host: display\r\nAuthorization: Bearer " + world.his_token.encode())
    assert _raw(port, authed, b"{" * 1024).startswith(b"HTTP/1.1 413")
    session = head.replace(b"/shared/launch", b"/shared/session")     # the page's own endpoints: limited too
    assert _raw(port, session, b"{" * 1024).startswith(b"HTTP/1.1 413")

    r = world.http.post("/shared/launch", headers={"Authorization": f"Bearer {world.his_token}"},
                        json={"orgCode": world.org, "visitId": "ZY001", "patientId": ID_A * 4, "doctorId": "D01",
                              "purpose": "VIEW"})
    assert r.status_code == 422 and ID_A not in r.text
    assert ["patientId"] in [e["loc"] for e in r.json()["detail"]]
    bad = world.http.post("/shared/session", content=f'{{"launchToken": "{ID_A}", ',
                          headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and ID_A not in bad.text


def test_launch_token_is_one_time_256_bit_and_stored_hashed(world):
    r = world.launch("ZY001", "P-A", "D01", orders=[{"orderId": "O1", "hisItemId": "LIS-CBC"}])
    body = r.json()
    tok = _token(r)
    assert body["expiresIn"] == 120 and body["access"] == "ok"
    assert len(tok) >= 43                       # 32 random bytes, base64url
    assert "P-A" not in body["url"] and ID_A not in body["url"] and body["url"] == f"/shared/ui?t={tok}"
    dl = world.life.ops.table("display_launch")
    with world.life.frontend.connect() as c:
        rows = [dict(x) for x in c.execute(dl.select()).mappings()]
    assert len(rows) == 1 and tok not in str(rows) and "张三" not in str(rows) and ID_A not in str(rows)
    first = world.http.get(body["url"])
    assert first.status_code == 303 and first.headers["location"] == "/shared/ui"
    assert "httponly" in first.headers["set-cookie"].lower() and "samesite=strict" in first.headers["set-cookie"].lower()
    again = world.http.get(body["url"])
    assert again.status_code == 401 and "链接已使用" in again.text and "张三" not in again.text
    assert world.http.post("/shared/session", json={"launchToken": tok}).status_code == 401


def test_recognize_purpose_is_carried_for_the_reminder_client(world):
    orders = [{"orderId": "O9", "hisItemId": "LIS-CBC"}]
    r = world.launch("ZY001", "P-A", "D01", purpose="RECOGNIZE", orders=orders)
    api = world.session(_token(r))
    assert api.get("/shared/timeline").json()["purpose"] == "RECOGNIZE"
    launch = world.audit_events("LAUNCH")[-1]
    assert '"purpose": "RECOGNIZE"' in launch["detail_json"] and '"orders": 1' in launch["detail_json"]
    assert world.launch("ZY001", "P-A", "D01", purpose="PRINT").status_code == 422


def test_expired_launch_token_is_refused(world, clock_restored):
    tok = _token(world.launch("ZY001", "P-A", "D01"))
    world.clock.advance(seconds=121)
    r = world.http.post("/shared/session", json={"launchToken": tok})
    assert r.status_code == 401 and r.json()["code"] == "token_expired" and r.json()["relaunch"] is True
    assert "重新打开" in r.json()["message"]


def test_unknown_token_and_no_session(world):
    import httpx

    fresh = httpx.Client(base_url=world.url, trust_env=False)
    assert fresh.get("/shared/ui?t=abc").status_code == 401
    assert fresh.get("/shared/ui").status_code == 401
    for path in ("/shared/timeline", "/shared/status", "/shared/report/lab/xyz"):
        r = fresh.get(path)
        assert r.status_code == 401 and r.json()["relaunch"] is True


@pytest.mark.parametrize("visit,patient,doctor,reason,message", [
    ("ZY003", "P-C", "D01", "not_authorized", "患者未授权"),
    ("MZ002", "P-B", "D01", "visit_closed", "就诊已结束"),
    ("ZY001", "P-A", "D09", "not_treating", "接诊医生"),
    ("ZY001", "P-B", "D01", "patient_mismatch", "不符"),
    ("ZY404", "P-A", "D01", "visit_unknown", "就诊不存在"),
])
def test_each_refusal_says_why_and_shows_nothing_else(world, visit, patient, doctor, reason, message):
    r = world.launch(visit, patient, doctor)
    assert r.json()["access"] == reason
    tok = _token(r)
    page = world.http.get(f"/shared/ui?t={tok}")
    assert page.status_code == 403 and message in page.text
    for leak in ("张三", "李四", "王五", ID_A[-4:], "timeline", "display.js"):
        assert leak not in page.text
    denied = world.audit_events("ACCESS_DENIED")
    assert denied[-1]["result_code"] == reason and denied[-1]["actor_id"] == doctor


def test_expired_authorization_refused(world, clock_restored):
    rec = world.auth("APPT-A")
    world.clock.now = rec["expire_time"] + timedelta(minutes=1)
    r = world.launch("ZY001", "P-A", "D01")
    assert r.json()["access"] == "auth_expired"
    page = world.http.get(f"/shared/ui?t={_token(r)}")
    assert page.status_code == 403 and "授权已过期" in page.text


def test_visit_ended_through_his_callback_is_closed(world, clock_restored):
    from hipbridge.platform.outbox import record_visit

    # HIS reports the end of patient A's stay at 12:00 (the front-end does not know yet)
    end = world.clock() + timedelta(hours=3)
    record_visit(world.life.frontend, world.life.ops, world.keys, world.org, "APPT-A", world.clock(), end=end)
    try:
        assert world.launch("ZY001", "P-A", "D01").json()["access"] == "ok"
        world.clock.now = end + timedelta(minutes=1)
        assert world.launch("ZY001", "P-A", "D01").json()["access"] == "visit_closed"
    finally:
        ar = world.life.ops.table("auth_record")
        with world.life.frontend.begin() as c:
            c.execute(ar.update().where(ar.c.appointment_id == "APPT-A").values(visit_end=None))


def test_timeline_grouped_by_institution_newest_first(world):
    api = world.session(_token(world.launch("ZY001", "P-A", "D01")))
    r = api.get("/shared/timeline")
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["timezone"] == "Asia/Shanghai" and "(Asia/Shanghai)" in t["watermark"] and "李医生" in t["watermark"]
    assert t["patient"]["idNo"] == "*" * 14 + ID_A[-4:] and t["patient"]["phone"] == "*******1234"
    names = {g["orgName"] for g in t["groups"]}
    assert names == {"广西医科大学第一附属医院", "右江民族医学院附属医院"}
    assert all(g["orgLevel"] == "三级甲等" for g in t["groups"])
    for g in t["groups"]:
        times = [i["time"] for i in g["items"]]
        assert times == sorted(times, reverse=True)
        assert {i["kind"] for i in g["items"]} == {"visit", "lab", "exam", "rx"}
    newest = [g["items"][0]["time"] for g in t["groups"]]
    assert newest == sorted(newest, reverse=True)
    labs = [i for i in t["items"] if i["kind"] == "lab"]
    assert all(i["hr"] and i["hrMark"] == "桂HR" and i["validUntil"] for i in labs)
    assert all(i["qc"] == [] for i in t["items"])          # verified, clean batches
    assert any(i["abnormal"] for i in labs)
    visits = [i for i in t["items"] if i["kind"] == "visit"]
    assert all(i["summary"].startswith("诊断: ") for i in visits)
    assert "P-A" not in r.text and ID_A not in r.text        # no identifier travels back


def test_lab_report_detail_trend_and_review_record(world):
    api = world.session(_token(world.launch("ZY001", "P-A", "D01")))
    items = api.get("/shared/timeline").json()["items"]
    lab = next(i for i in items if i["kind"] == "lab" and i["title"] == "血常规")
    d = api.get(f"/shared/report/lab/{lab['id']}").json()
    assert len(d["results"]) == 4 and {r["name"] for r in d["results"]} >= {"白细胞计数", "血红蛋白"}
    assert d["trends"] and all(len(s["points"]) >= 2 for s in d["trends"])   # 血常规 at both hospitals
    assert d["reviewId"] and len(d["reviewId"]) == 32
    # queued through the outbox and sent to the platform, which validated every field
    assert wait(lambda: d["reviewId"] in world.sim_app.state.sim.reviews)
    sent = world.sim_app.state.sim.reviews[d["reviewId"]]
    assert sent["item_type"] == "LIS" and sent["gh_id"] == "ZY001" and sent["doctor_id"] == "D01"
    assert sent["report_org_code"] == lab["orgCode"] and sent["patient_id"] == "P-A"
    def rows():
        return [o for o in world.outbox("review") if o["appointment_id"] in (d["reviewId"], d3.get("reviewId"))]

    d3: dict = {}
    assert wait(lambda: [o["status"] for o in rows()] == ["ACKED"])
    posts = world.sim_app.state.sim.review_posts
    # the same doctor opening it again in the same visit: the same reviewId, no second upload
    d2 = api.get(f"/shared/report/lab/{lab['id']}").json()
    assert d2["reviewId"] == d["reviewId"] and len(rows()) == 1
    # another doctor of the care team: a new reviewId
    api2 = world.session(_token(world.launch("ZY001", "P-A", "D02")))
    d3.update(api2.get(f"/shared/report/lab/{lab['id']}").json())
    assert d3["reviewId"] != d["reviewId"] and len(rows()) == 2
    assert wait(lambda: world.sim_app.state.sim.review_posts == posts + 1)
    views = [v for v in world.audit_events("VIEW_REPORT") if v["object_id"] == f"{lab['orgCode']}:{d['reportNo']}"]
    assert [v["actor_id"] for v in views][-3:] == ["D01", "D01", "D02"] and views[-1]["object_type"] == "lab"


def test_review_retry_reuses_the_review_id(world, clock_restored):
    from hipbridge.demo.simulator import ServerThread
    from hipbridge.platform.outbox import process_outbox

    world.sim.stop()                             # the platform is down when the doctor opens the report
    try:
        api = world.session(_token(world.launch("ZY001", "P-A", "D02")))
        exam = next(i for i in api.get("/shared/timeline").json()["items"] if i["kind"] == "exam")
        d = api.get(f"/shared/report/exam/{exam['id']}").json()
        assert d["findings"] and d["conclusion"]

        def row():
            return next((o for o in world.outbox("review") if o["appointment_id"] == d["reviewId"]), {})
        assert wait(lambda: row().get("attempts") == 1)
        assert row()["status"] in ("NEW", "SENT")
    finally:
        world.sim = ServerThread(world.sim_app, port=world.sim.port).start()
    world.clock.advance(minutes=2)
    process_outbox(world.life.frontend, world.life.ops, world.client, world.keys, world.clock)
    assert d["reviewId"] in world.sim_app.state.sim.reviews
    assert world.sim_app.state.sim.reviews[d["reviewId"]]["item_type"] == "PACS"
    assert row()["status"] == "ACKED" and row()["attempts"] == 2


def test_simulated_platform_validates_the_review_fields(world):
    """A 调阅记录 without its report number, with an unknown item type and a malformed reviewId → A1001."""
    roles = {"org_code": world.org, "patient_id": "P-A", "gh_id": "ZY001", "item_type": "XRAY", "item_code": "BLD-CBC",
             "report_org_code": "450100000011", "report_org_name": "广西医科大学第一附属医院", "report_name": "血常规",
             "report_time": "2026-01-29 06:00:00", "view_time": "2026-03-02 09:00:00",
             "operate_time": "2026-03-02 09:00:00", "review_id": "not-a-guid", "cross_flag": "0", "doctor_id": "D01"}
    res = world.client.call("review", roles)
    assert res.code == "A1001"
    bad = next(r for r in reversed(world.sim_app.state.sim.requests) if r.get("bad"))
    assert bad["bad"] == ["item_type", "report_no", "review_id"]
    ok = world.client.call("review", roles | {"item_type": "LIS", "report_no": "L1", "review_id": "a" * 32})
    assert ok.code == "00000" and "a" * 32 in world.sim_app.state.sim.reviews


def test_revoked_authorization_while_open_gives_403(world):
    api = world.session(_token(world.launch("ZY004", "P-D", "D01")))
    assert api.get("/shared/status").status_code == 200
    assert api.get("/shared/timeline").status_code == 200
    world.revoke("APPT-D")
    r = api.get("/shared/timeline")
    assert r.status_code == 403 and r.json()["code"] == "auth_revoked" and r.json()["relaunch"] is False
    assert api.get("/shared/status").status_code == 403


@pytest.fixture(scope="module")
def dead_store_service(world):
    """A second display service on the same databases whose shared store is unreachable (port 1)."""
    from hipbridge.io.engines import engine_for

    dead = dataclasses.replace(world.life.store,
                               engine=engine_for("mysql+pymysql://root@127.0.0.1:1/none?connect_timeout=2"))
    svc, server = world.second_service(dead)
    yield server.url
    server.stop()
    svc.writer.close()


def test_store_down_shows_the_message_and_launch_still_works(world, dead_store_service):
    r = world.launch("ZY001", "P-A", "D01", base_url=dead_store_service)
    assert r.status_code == 201 and r.json()["access"] == "ok"
    redeemed = world.http.post(dead_store_service + "/shared/session", json={"launchToken": r.json()["launchToken"]})
    t = world.http.get(dead_store_service + "/shared/timeline", headers={"X-HB-Session": redeemed.json()["session"]})
    assert t.status_code == 503 and t.json()["message"] == "外院数据暂不可用"
    assert world.audit_events("ACCESS_DENIED")[-1]["result_code"] == "store_down"


def test_no_audit_no_data(world):
    """The audit log cannot be written (its server is unreachable): the data is not shown."""
    from hipbridge.audit import AuditWriter
    from hipbridge.io.engines import engine_for

    dead = AuditWriter(engine_for("mysql+pymysql://root@127.0.0.1:1/none?connect_timeout=2", world.life.ops.schema),
                       world.life.ops, world.keys)
    _svc, server = world.second_service(writer=dead)
    try:
        assert world.launch("ZY001", "P-A", "D01", base_url=server.url).status_code == 503
        tok = _token(world.launch("ZY001", "P-A", "D01"))           # launched while the log was reachable
        redeemed = world.http.post(world.url + "/shared/session", json={"launchToken": tok})
        r = world.http.get(server.url + "/shared/timeline", headers={"X-HB-Session": redeemed.json()["session"]})
        assert r.status_code == 503 and r.json()["code"] == "audit_unavailable" and "items" not in r.json()
    finally:
        server.stop()
        dead.close()


def test_a_page_session_decrypts_its_launch_context_once(world, monkeypatch):
    """docs/display.md: every call re-reads the launch row and its authorization (a revocation is seen),
    but the launch's stored context, written once, is decrypted once per ciphertext, not on every call."""
    import hipbridge.display.launch as launch_mod

    calls = []
    real = launch_mod.decrypt_field
    monkeypatch.setattr(launch_mod, "decrypt_field", lambda keys, token: calls.append(token) or real(keys, token))
    api = world.session(_token(world.launch("ZY007", "P-G", "D01")))
    before = len(calls)
    for _ in range(3):
        assert api.get("/shared/timeline").status_code == 200
        assert api.get("/shared/status").status_code == 200
    assert len(calls) - before <= 1


def test_a_report_of_another_patient_is_not_found(world):
    api_a = world.session(_token(world.launch("ZY001", "P-A", "D01")))
    lab_a = next(i for i in api_a.get("/shared/timeline").json()["items"] if i["kind"] == "lab")
    api_g = world.session(_token(world.launch("ZY007", "P-G", "D01")))
    assert api_g.get("/shared/timeline").status_code == 200
    r = api_g.get(f"/shared/report/lab/{lab_a['id']}")
    assert r.status_code in (403, 404) and "results" not in r.json()


def test_pending_authorization_refused(world):
    from hipbridge.platform.outbox import Booking, enqueue_grant

    from tests.display_world import valid_id

    id_f = valid_id("45100219950606678")
    world.add_patient("P-F", "孙八", id_f)
    world.add_inpatient("ZY006", "P-F", "孙八", id_f, ["D01"], admitted=world.clock() - timedelta(hours=1))
    enqueue_grant(world.life.frontend, world.life.ops, world.keys, world.org, world.life.org_name,
                  Booking(appointment_id="APPT-F", patient_name="孙八", patient_id_type="01", patient_id_no=id_f,
                          visit_date=world.clock(), visit_type="inpatient"), world.clock())
    r = world.launch("ZY006", "P-F", "D01")              # the platform has not answered the grant yet
    assert r.json()["access"] == "auth_pending" and "尚未生效" in r.json()["message"]


def test_access_audit_answers_who_looked_and_the_chain_verifies(world):
    import json
    import subprocess
    import sys

    from hipbridge.audit import who_viewed

    before = len(who_viewed(world.life.frontend, world.life.ops, world.keys, "01", ID_A))
    before_b = len(who_viewed(world.life.frontend, world.life.ops, world.keys, "01", ID_B))
    api = world.session(_token(world.launch("ZY001", "P-A", "D01")))
    lab = next(i for i in api.get("/shared/timeline").json()["items"] if i["kind"] == "lab")
    api.get(f"/shared/report/lab/{lab['id']}")
    world.launch("ZY001", "P-A", "D09")                       # a doctor outside the care team launches
    env = {**os.environ, "HIPBRIDGE_OPS_SCHEMA": world.life.ops.schema, "HIPBRIDGE_HOME": str(world.home)}
    cmd = [sys.executable, "-m", "hipbridge.cli", "audit", "who", "--patient", f"01:{ID_A}",
           "--db", world.life.frontend_url, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    events = json.loads(out.stdout)["events"][before:]
    assert [e["action"] for e in events] == ["LAUNCH", "VIEW_TIMELINE", "VIEW_REPORT", "LAUNCH"]
    assert events[2]["actor_id"] == "D01" and events[2]["visit_id"] == "ZY001" and events[2]["object_type"] == "lab"
    assert events[3]["actor_id"] == "D09" and events[3]["result"] == "not_treating"
    other = subprocess.run(cmd[:6] + [f"01:{ID_B}"] + cmd[7:], capture_output=True, text=True, env=env, check=True)
    assert len(json.loads(other.stdout)["events"]) == before_b       # B's data was not looked at since
    table = subprocess.run(cmd[:-1], capture_output=True, text=True, env=env, check=True).stdout
    assert "Asia/Shanghai" in table and "查看报告详情" in table and "您不是本次就诊的接诊医生" in table
    ok = subprocess.run([sys.executable, "-m", "hipbridge.cli", "audit", "verify", "--db", world.life.frontend_url],
                        capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0 and "审计链完整" in ok.stdout


def _tamper_a_lab_report(world, appointment: str, newest: bool):
    """Move the report time of one of the patient's lab reports in the encrypted table by a day (its MAC
    no longer verifies); returns (report number, time as stored)."""
    from hipbridge.display.config import display_config
    from sqlalchemy import select

    cfg, auth = display_config(), world.auth(appointment)["auth_id"]
    st = world.life.secure.tables[cfg.tables["lab"].table].table
    rid, when = cfg.tables["lab"].columns["id"], cfg.tables["lab"].columns["time"]
    with world.life.secure.engine.begin() as c:
        victim = c.execute(select(st.c[rid], st.c[when]).where(st.c.auth_id == auth)
                           .order_by(st.c[rid].desc() if newest else st.c[rid]).limit(1)).one()
        c.execute(st.update().where(st.c[rid] == victim[0]).values({when: victim[1] + timedelta(days=1)}))
    return victim


def test_timeline_over_the_encrypted_store_names_a_tampered_row_and_never_shows_it(world, monkeypatch):
    """Issue 12 item 3 on the page's API: after ingest the rows come from the encrypted tables (MAC
    checked, decrypted) unchanged; a row whose MAC fails is named (kind, institution) and counted in
    the audit event, and is neither an item nor a report. Later tests read the encrypted store too."""
    api = world.session(_token(world.launch("ZY007", "P-G", "D01")))
    before = api.get("/shared/timeline").json()
    assert before["items"] and before["tampered"] == [] and before["messages"]["tampered"] is None
    assert sum(world.life.ingest(world.clock()).moved.values()) > 0
    cipher, revealed = world.life.secure.cipher, []
    decrypt = cipher.decrypt
    monkeypatch.setattr(cipher, "decrypt", lambda token: revealed.append(decrypt(token)) or revealed[-1])
    after = api.get("/shared/timeline").json()
    assert after["items"] == before["items"] and after["tampered"] == []     # decrypted, the same items
    reader = world.svc.app.state.reader
    assert reader.retyped == 0            # every row's MAC verified from the one text-typed UNION read
    personal = set()                      # the patient's name and ID number are stored, encrypted …
    with world.life.secure.engine.connect() as c:
        for table_id, col in (("op_visit", "HZXM"), ("lab_report", "ZJHM")):
            t = world.life.secure.tables[table_id].table
            q = select(t.c[col]).where(t.c.auth_id == world.auth("APPT-G")["auth_id"])
            personal |= {decrypt(v) for v in c.execute(q).scalars()}
    assert ID_G in personal and len(personal) >= 2
    assert not personal & set(revealed)    # … and the page never decrypts what it does not show (reveal_row would)

    victim = _tamper_a_lab_report(world, "APPT-G", newest=False)
    t = api.get("/shared/timeline").json()
    assert len(t["items"]) == len(before["items"]) - 1
    gone = next(i for i in before["items"] if i["kind"] == "lab" and i not in t["items"])
    assert [(x["kind"], x["orgName"]) for x in t["tampered"]] == [("lab", gone["orgName"])]
    assert t["messages"]["tampered"].startswith("1 条外院记录未通过完整性校验")
    assert api.get(f"/shared/report/lab/{gone['id']}").status_code == 404
    assert reader.retyped == 2            # only the tampered row, once per call, was read again typed
    view = world.audit_events("VIEW_TIMELINE")[-1]
    assert '"tampered"' in view["detail_json"] and str(victim[0]) in view["detail_json"]


# ---------------------------------------------------------------- the page in headless Chromium


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, world):
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    pg = ctx.new_page()
    pg.requests_seen = []
    pg.on("request", lambda r: pg.requests_seen.append(r.url))
    yield pg
    ctx.close()


def _open(world, page, visit="ZY001", patient="P-A", doctor="D01", base=None):
    r = world.launch(visit, patient, doctor, base_url=base)
    url = (base or world.url) + r.json()["url"]
    resp = page.goto(url)
    return url, resp


def test_page_launch_timeline_masking_watermark_print_off(world, page):
    _, resp = _open(world, page)
    assert resp.status == 200 and page.url == world.url + "/shared/ui"        # the token left the address bar
    page.wait_for_selector("body[data-loaded='1']")
    groups = page.locator(".group")
    assert groups.count() == 2
    assert set(page.locator(".group h2").all_inner_texts()) == {
        "广西医科大学第一附属医院三级甲等", "右江民族医学院附属医院三级甲等"}
    for g in range(2):
        times = groups.nth(g).locator(".item time").all_inner_texts()
        assert times == sorted(times, reverse=True) and len(times) >= 8
    assert page.locator(".item.kind-lab .badge.hr").first.inner_text() == "桂HR"
    assert page.locator(".item.kind-lab .badge.valid").first.inner_text().startswith("有效期至 20")
    header = page.locator("#patient").inner_text()
    assert "张三" in header and "*" * 14 + ID_A[-4:] in header and "*******1234" in header and ID_A not in header
    wm = page.locator("#watermark span").first.inner_text()
    assert "李医生" in wm and "D01" in wm and "(Asia/Shanghai)" in wm
    assert page.locator("input, textarea, select, form, [contenteditable]").count() == 0    # read-only
    assert all(u.startswith(world.url) for u in page.requests_seen), page.requests_seen  # no CDN, no internet
    page.emulate_media(media="print")
    assert not page.locator(".screen").is_visible() and page.locator(".print-blocked").is_visible()
    assert "禁止打印" in page.locator(".print-blocked").inner_text()


def test_page_open_lab_report_shows_trend_and_sends_review(world, page):
    _open(world, page, doctor="D02")
    page.wait_for_selector("body[data-loaded='1']")
    page.locator(".item.kind-lab", has_text="血常规").first.click()
    page.wait_for_selector("#detail table.results")
    rows = page.locator("#detail table.results tr")
    assert rows.count() == 5                                  # header + 4 analytes
    chart = page.locator("#detail svg.trend-chart").first
    assert chart.is_visible() and chart.locator("circle").count() >= 2
    assert page.locator("#detail .meta").inner_text().endswith(tuple("0123456789"))
    reviews = world.sim_app.state.sim.reviews
    assert wait(lambda: any(v["doctor_id"] == "D02" and v["item_type"] == "LIS" for v in reviews.values()))
    page.locator(".item.kind-exam").first.click()
    page.wait_for_selector("#detail .section h4:text('检查结论')")
    assert "检查所见" in page.locator("#detail").inner_text()


def test_page_reused_token_refused(world, page, browser):
    url, _ = _open(world, page)
    page.wait_for_selector("body[data-loaded='1']")
    other = browser.new_page()
    resp = other.goto(url)
    assert resp.status == 401
    assert "链接已使用" in other.locator("#message").inner_text()
    assert other.locator(".group").count() == 0 and "张三" not in other.content()
    other.close()


def test_page_expired_token_refused(world, page, clock_restored):
    r = world.launch("ZY001", "P-A", "D01")
    world.clock.advance(seconds=121)
    resp = page.goto(world.url + r.json()["url"])
    assert resp.status == 401 and "链接已过期" in page.locator("#message").inner_text()
    assert page.locator(".group").count() == 0


def test_page_clears_when_authorization_is_revoked(world, page):
    _open(world, page, visit="ZY005", patient="P-E")
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator(".group").count() == 2 and "钱七" in page.content()
    world.revoke("APPT-E")
    page.locator(".item").first.click()                       # the next call
    page.wait_for_selector("body.cleared")
    assert "授权已撤销" in page.locator("#message").inner_text()
    assert page.locator(".group, .item, #detail, #patient").count() == 0 and "钱七" not in page.content()


def test_page_closed_visit_shows_nothing_else(world, page):
    _, resp = _open(world, page, visit="MZ002", patient="P-B")
    assert resp.status == 403
    assert page.locator("#message").inner_text() == "就诊已结束"
    assert page.locator(".group, #patient, #timeline").count() == 0 and "李四" not in page.content()


def test_page_store_down_message(world, page, dead_store_service):
    _, resp = _open(world, page, base=dead_store_service)
    assert resp.status == 200
    page.wait_for_selector("body[data-loaded='1']")
    assert page.locator("#message").inner_text() == "外院数据暂不可用"
    assert page.locator(".item").count() == 0


def test_page_names_a_tampered_row(world, page):
    world.life.ingest(world.clock())                       # G's rows in the encrypted tables (if not yet)
    _tamper_a_lab_report(world, "APPT-G", newest=True)
    _open(world, page, visit="ZY007", patient="P-G")
    page.wait_for_selector("body[data-loaded='1']")
    notice = page.locator("#timeline p.tampered")
    assert notice.is_visible() and "条外院记录未通过完整性校验" in notice.inner_text()
    assert page.locator(".item").count() > 0                # the rest is shown


def test_page_print_allowed_when_configured(world, page):
    """`page.print: true` (config/display.yaml) lets the page print; the default blocks it (test above)."""
    from hipbridge.demo.simulator import ServerThread
    from hipbridge.display.config import display_config
    from hipbridge.workstation.service import DisplayService

    cfg = display_config()
    cfg = cfg.model_copy(update={"page": cfg.page.model_copy(update={"print": True})})
    svc = DisplayService.from_lifecycle(world.life, clock=world.clock, platform_url=world.sim.url, cfg=cfg)
    server = ServerThread(svc.app).start()
    try:
        _open(world, page, base=server.url)
        page.wait_for_selector("body[data-loaded='1']")
        page.emulate_media(media="print")
        assert page.locator(".screen").is_visible() and not page.locator(".print-blocked").is_visible()
        assert page.locator(".item").count() > 0
    finally:
        server.stop()


def test_page_highlights_a_critical_value(world, page):
    """A lab result flagged critical (config/display.yaml abnormal.critical: HH) marks its report on the
    timeline (red bar, 危急值 badge) and its row in the report (white on red)."""
    from hipbridge.display.config import display_config

    from tests.display_world import _filler

    cfg, store = display_config(), world.life.store
    lab, res = cfg.tables["lab"], cfg.tables["lab_result"]
    lt, rt = store.tables[lab.table], store.tables[res.table]
    org, orgn = store.defaults.audit("org_code").name, store.defaults.audit("org_name").name
    when = world.clock() - timedelta(hours=2)
    book = {org: "450100000011", orgn: "广西医科大学第一附属医院", store.cols["auth_id"]: world.auth("APPT-A")["auth_id"],
            store.cols["batch_id"]: "B-CRIT", store.cols["instock_time"]: when, store.cols["data_num"]: 1,
            store.cols["row_digest"]: "0" * 64}

    def row(table, values):
        r = {**book, **values}
        return r | {c.name: _filler(c) for c in table.columns if c.name not in r and not c.nullable
                    and c.autoincrement is not True}
    with store.engine.begin() as c:
        c.execute(lt.insert().values(row(lt, {lab.columns["id"]: "CRIT-1", lab.columns["time"]: when,
                                              lab.columns["title"]: "急诊电解质", lab.columns["hr"]: "1"})))
        c.execute(rt.insert().values(row(rt, {res.columns["id"]: "CRIT-1-1", res.columns["report"]: "CRIT-1",
                                              res.columns["code"]: "2823-3", res.columns["name"]: "钾",
                                              res.columns["value"]: "6.9", res.columns["abnormal"]: "HH",
                                              res.columns["time"]: when})))
    _open(world, page)
    page.wait_for_selector("body[data-loaded='1']")
    item = page.locator(".item.kind-lab", has_text="急诊电解质")
    assert item.count() == 1 and "critical" in item.get_attribute("class").split()
    assert item.locator(".badge.crit").inner_text() == "危急值"
    plain = page.locator(".item.kind-lab:not(.critical)").first
    style = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).borderLeftColor]"
    assert item.evaluate(style) == ["rgb(253, 236, 234)", "rgb(198, 40, 40)"]       # display.css .item.critical
    assert plain.evaluate(style)[0] != "rgb(253, 236, 234)"
    item.click()
    page.wait_for_selector("#detail table.results tr.critical")
    crit = page.locator("#detail table.results tr.critical")
    assert crit.count() == 1 and "钾" in crit.inner_text() and "危急" in crit.inner_text()
    assert crit.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"
