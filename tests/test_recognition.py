"""互认 reminders (interfaces.md §A10): the recognition engine against MariaDB (front-end, ops, shared
store) with the real catalog files — window edges, eligibility, a missing window, our own
institution, a push-back-rejected batch, NO_MAPPING logged, newest first, the visit's patient found
as the external data page finds it.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import and_, create_engine, insert, select, text

from tests.display_world import DisplayWorld, _filler, standard_world

ADMIN = os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
OUR = "451002000001"           # 百色市人民医院 (三级甲等), the demo hospital
PEER = "450100000011"          # 广西医科大学第一附属医院, 三级甲等
ALLY = "451021000004"          # 田阳区人民医院, 二级甲等, in our 医联体 (config/recognition/alliance.csv)
LOWER = "451099000099"         # not in the code list: level unknown, not in the alliance


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    name = f"hbt_rec_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dbs = [name, f"{name}_ops", f"{name}_share", f"{name}_share_secure"]   # the secure store's too
    admin = create_engine(ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    saved = {k: os.environ.get(k) for k in ("HIPBRIDGE_OPS_SCHEMA", "HIPBRIDGE_SHARE_SCHEMA", "HIPBRIDGE_HOME",
                                            "HIPBRIDGE_FRONTEND_URL")}
    home = tmp_path_factory.mktemp("hbhome")
    os.environ.update({"HIPBRIDGE_OPS_SCHEMA": dbs[1], "HIPBRIDGE_SHARE_SCHEMA": dbs[2], "HIPBRIDGE_HOME": str(home)})
    os.environ.pop("HIPBRIDGE_FRONTEND_URL", None)
    import hipbridge.recognition.state  # noqa: F401 - its ops table exists before the schema is created

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


@pytest.fixture(scope="module")
def rec(world):
    from hipbridge.display.config import display_config, load_catalogs
    from hipbridge.display.records import StoreReader
    from hipbridge.io.ops import ops_for
    from hipbridge.recognition.catalog import load_recognition
    from hipbridge.recognition.engine import Recognizer

    cfg = display_config()
    assert world.org == OUR
    return Recognizer(StoreReader(world.life.store, cfg), load_recognition(), load_catalogs(cfg).institutions,
                      world.org, world.life.frontend, ops_for(world.life.ops.schema))


def put(world, kind: str, auth_id: str, report_no: str, when: datetime, code: str | None, org: str = PEER,
        hr: str = "1", batch: str | None = None, **extra) -> str:
    """One report row in the shared store, as a push would leave it."""
    store = world.life.store
    table = store.tables["lab_report" if kind == "lab" else "exam_report"]
    c = store.cols
    pk = "JYJLLSH" if kind == "lab" else "JCBGLSH"
    row = {store.defaults.audit("org_code").name: org, store.defaults.audit("org_name").name: f"机构{org[-4:]}",
           pk: report_no, "BGSJ": when, "HRBZ": hr, "SHRXMDM": code, c["batch_id"]: batch or f"B-{report_no}",
           c["auth_id"]: auth_id, c["instock_time"]: when, c["data_num"]: 1, c["row_digest"]: "0" * 64, **extra}
    for col in table.columns:
        if col.name not in row and not col.nullable:
            row[col.name] = _filler(col)
    with store.engine.begin() as conn:
        conn.execute(insert(table).values(row))
    return row[c["batch_id"]]


def reject(world, batch: str, table_name: str) -> None:
    pc = world.life.ops.table("push_check")
    with world.life.frontend.begin() as conn:
        conn.execute(insert(pc).values(batch_id=batch, table_name=table_name, status="REJECTED", blocking=1,
                                       warnings=0, checked_at=world.clock()))


def reports(answer) -> list[str]:
    return [c.report_no for c in answer.candidates]


def _auth() -> str:
    return "T-" + uuid.uuid4().hex[:12]


def test_window_edges_day0_last_valid_day_and_one_day_past(world, rec):
    from hipbridge.recognition.catalog import Order

    a = _auth()
    now = world.clock()                              # 2026-03-02 09:00
    # 肝功能 GGN → HRJY0002, 30 days
    put(world, "lab", a, "W-DAY0", now.replace(hour=7), "HRJY0002")
    put(world, "lab", a, "W-LAST", now - timedelta(days=30), "HRJY0002")
    put(world, "lab", a, "W-LAST-LATE", (now - timedelta(days=30)).replace(hour=23, minute=59), "HRJY0002")
    put(world, "lab", a, "W-PAST", (now - timedelta(days=31)).replace(hour=23, minute=59), "HRJY0002")
    [ans] = rec.evaluate([a], [Order("o1", "lab", "GGN")], now)
    assert ans.status == "OK" and ans.item.code == "HRJY0002"
    assert reports(ans) == ["W-DAY0", "W-LAST-LATE", "W-LAST"]           # newest first, W-PAST out
    assert ans.candidates[-1].valid_until == now.date()                  # the last valid day is today
    # a day later the last-day reports fall out too
    [later] = rec.evaluate([a], [Order("o1", "lab", "GGN")], now + timedelta(days=1))
    assert reports(later) == ["W-DAY0"]


def test_eligibility_table_alliance_and_unknown_level(world, rec):
    from hipbridge.recognition.catalog import Order

    a = _auth()
    now = world.clock()
    put(world, "lab", a, "E-PEER", now - timedelta(days=1), "HRJY0002", org=PEER)
    put(world, "lab", a, "E-ALLY", now - timedelta(days=2), "HRJY0002", org=ALLY)
    put(world, "lab", a, "E-LOWER", now - timedelta(days=3), "HRJY0002", org=LOWER)
    put(world, "lab", a, "E-NOTHR", now - timedelta(days=1), "HRJY0002", org=PEER, hr="0")
    [ans] = rec.evaluate([a], [Order("o1", "lab", "GGN")], now)
    assert reports(ans) == ["E-PEER", "E-ALLY"]
    assert ans.candidates[1].org_level == "二级甲等"
    # the table decides: lower level outside the alliance is refused by its last row, not by code
    assert not rec.rec.eligible(scope_mark="1", source_level="二级甲等", our_level="三级甲等", same_alliance=False)
    assert rec.rec.eligible(scope_mark="1", source_level="二级甲等", our_level="三级甲等", same_alliance=True)


def test_eligibility_rules_are_data(tmp_path):
    """An integrator's table changes the answer: no rule matches → not eligible (fail closed)."""
    import shutil

    from hipbridge.platform.config import ConfigError
    from hipbridge.recognition.catalog import load_recognition
    from hipbridge.settings import config_dir

    base = tmp_path / "config"
    (base / "recognition").mkdir(parents=True)
    shutil.copy(config_dir() / "recognition.yaml", base)
    for f in ("alliance.csv", "reasons.csv"):
        shutil.copy(config_dir() / "recognition" / f, base / "recognition")
    (base / "recognition.yaml").write_text((base / "recognition.yaml").read_text(encoding="utf-8").replace(
        "../mappings/recognition/items.csv", str(config_dir().parent / "mappings/recognition/items.csv")),
        encoding="utf-8")
    (base / "recognition" / "eligibility.csv").write_text(
        "scope_mark,source_level,our_level,same_alliance,allowed\n1,二级甲等,三级甲等,0,1\n", encoding="utf-8")
    r = load_recognition(base)
    assert r.eligible(scope_mark="1", source_level="二级甲等", our_level="三级甲等", same_alliance=False)
    assert not r.eligible(scope_mark="1", source_level="三级甲等", our_level="三级甲等", same_alliance=False)
    (base / "recognition" / "eligibility.csv").write_text(
        "scope_mark,source_level,our_level,same_alliance,allowed\n1,*,*,maybe,1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"eligibility.csv:2: same_alliance: expected one of"):
        load_recognition(base)


def test_an_item_without_a_window_is_never_recognisable(world, rec):
    from hipbridge.recognition.catalog import Order

    a = _auth()
    now = world.clock()
    put(world, "lab", a, "N-XCG", now - timedelta(hours=1), "HRJY0001")   # 血常规: items.csv has no window
    put(world, "exam", a, "N-CT", now - timedelta(hours=1), "HRJC0002")   # 胸部CT: no window either
    lab, exam = rec.evaluate([a], [Order("o1", "lab", "XCG"), Order("o2", "exam", "CT02", part="胸部", method="CT")], now)
    assert (lab.status, lab.candidates) == ("NO_WINDOW", [])
    assert (exam.status, exam.candidates) == ("NO_WINDOW", [])
    # and the engine's own pass over the rows drops them too, whatever the caller asks
    assert rec.candidates(rec.reader.patient([a]), None, now) == {}


def test_our_own_institution_is_excluded(world, rec):
    from hipbridge.recognition.catalog import Order

    a = _auth()
    now = world.clock()
    put(world, "lab", a, "O-OURS", now - timedelta(days=1), "HRJY0002", org=OUR)
    put(world, "lab", a, "O-PEER", now - timedelta(days=4), "HRJY0002", org=PEER)
    [ans] = rec.evaluate([a], [Order("o1", "lab", "GGN")], now)
    assert reports(ans) == ["O-PEER"]


def test_a_batch_rejected_by_push_back_verification_is_excluded(world, rec):
    from hipbridge.recognition.catalog import Order

    a = _auth()
    now = world.clock()
    bad = put(world, "lab", a, "Q-BAD", now - timedelta(days=1), "HRJY0002")
    put(world, "lab", a, "Q-GOOD", now - timedelta(days=2), "HRJY0002")
    reject(world, bad, rec.reader.table_name("lab"))
    reject(world, "B-Q-GOOD", "exam_report")     # a rejection of another table of the batch does not count
    [ans] = rec.evaluate([a], [Order("o1", "lab", "GGN")], now)
    assert reports(ans) == ["Q-GOOD"]


def test_exam_matches_item_body_part_and_method(world, rec):
    from hipbridge.recognition.catalog import Order

    a = _auth()
    now = world.clock()
    # 心脏彩超 US04 → HRJC0011 has no window in the shipped list: give one through a catalog copy
    import dataclasses

    items = dict(rec.rec.items)
    items["HRJC0011"] = dataclasses.replace(items["HRJC0011"], validity_days=90)
    r2 = type(rec)(rec.reader, dataclasses.replace(rec.rec, items=items), rec.institutions, rec.org_code,
                   rec.frontend, rec.ops)
    put(world, "exam", a, "X-US", now - timedelta(days=10), "HRJC0011")
    ok, wrong_part, wrong_method = r2.evaluate([a], [Order("o1", "exam", "US04", part="心脏", method="US"),
                                                    Order("o2", "exam", "US04", part="腹部", method="US"),
                                                    Order("o3", "exam", "US04", part="心脏", method="CT")], now)
    assert reports(ok) == ["X-US"] and ok.candidates[0].valid_until == (now - timedelta(days=10)).date() + timedelta(days=90)
    assert (wrong_part.status, wrong_method.status) == ("PART_MISMATCH", "METHOD_MISMATCH")


def test_an_order_without_a_mapping_gets_nothing_and_is_logged(world, rec):
    from hipbridge.recognition.catalog import Order

    now = world.clock()
    g = rec.ops.table("recognition_gap")
    for _ in range(2):
        ans = rec.evaluate([_auth()], [Order("o1", "lab", "XPY"), Order("o2", "lab", "NO-SUCH")], now)
        assert [(x.status, x.candidates) for x in ans] == [("NO_MAPPING", []), ("NO_MAPPING", [])]
    with world.life.frontend.connect() as conn:
        rows = {r.local_code: r.times for r in conn.execute(select(g).where(g.c.reason == "NO_MAPPING"))}
    assert rows["XPY"] == 2 and rows["NO-SUCH"] == 2


def test_unmapped_orders_are_listed_in_the_mapping_gap_report(world, rec, tmp_path):
    """NO_MAPPING orders are gaps of the local set the reminder maps through (lis_panel / pacs_item):
    listed with their frequency, exported for coding staff, imported back, then no longer a gap."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from hipbridge.mapping import load_catalog
    from hipbridge.mapping.gaps import compute_gaps
    from hipbridge.mapping.review import export_csv, import_reviewed
    from hipbridge.recognition.catalog import Order
    from hipbridge.recognition.gaps import add_recognition_gaps
    from hipbridge.spec import load_specs

    now = world.clock()
    for _ in range(3):
        rec.evaluate([_auth()], [Order("o1", "lab", "GAP-TG"), Order("o2", "exam", "GAP-PET", part="全身")], now)
    rec.evaluate([_auth()], [Order("o1", "lab", "XPY"), Order("o2", "lab", "GGN")], now)
    mdir = tmp_path / "mappings"
    shutil.copytree(Path(__file__).resolve().parents[1] / "mappings", mdir, ignore=shutil.ignore_patterns("*_full.csv"))
    catalog = load_catalog(mdir, "demo")
    schema = world.life.ops.schema
    report = add_recognition_gaps(compute_gaps(catalog, load_specs(), "recognition"), catalog, world.life.frontend,
                                  schema, "recognition")
    got = {e.local_code: (e.table, e.column, e.set_id, e.domain, e.frequency, e.status, e.policy) for e in report.entries}
    assert got["GAP-TG"] == ("recognition", "lab", "lis_panel", "GX.HRXM", 3, "missing", "no_reminder")
    assert got["GAP-PET"] == ("recognition", "exam", "pacs_item", "GX.HRXM", 3, "missing", "no_reminder")
    assert "XPY" not in got and "GGN" not in got       # decided `ignored` / mapped: no gap
    # coding staff fill the export like any other; the import writes lis_panel.csv; the gap is gone
    csv_path = tmp_path / "review.csv"
    export_csv(report, csv_path)
    lines = csv_path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if cells[header.index("本地代码")] == "GAP-TG":
            cells[header.index("标准代码")], cells[header.index("状态")] = "HRJY0004", "approved"
        out.append(",".join(cells))
    csv_path.write_text("\n".join(out) + "\n", encoding="utf-8")
    result = import_reviewed(catalog, csv_path, reviewer="检验科")
    assert result.ok and result.updated.get("lis_panel", 0) + result.added.get("lis_panel", 0) == 1, result
    fresh = load_catalog(mdir, "demo")
    again = add_recognition_gaps(compute_gaps(fresh, load_specs(), "recognition"), fresh, world.life.frontend,
                                 schema, "recognition")
    assert {e.local_code for e in again.entries} >= {"GAP-PET"} and "GAP-TG" not in {e.local_code for e in again.entries}
    # the CLI's report reads them from the front-end too
    env = {**os.environ, "HIPBRIDGE_FRONTEND_URL": world.life.frontend_url, "HIPBRIDGE_OPS_SCHEMA": schema,
           "HIPBRIDGE_MAPPINGS": str(mdir), "HIPBRIDGE_HOSPITAL": "demo"}
    cli = subprocess.run([sys.executable, "-m", "hipbridge.cli", "mapping", "gaps", "--table", "recognition", "--json",
                          str(tmp_path / "g.json")], capture_output=True, text=True, env=env, check=False)
    assert "recognition.exam [pacs_item] 'GAP-PET'" in cli.stdout, cli.stdout + cli.stderr
    assert any(d["local_code"] == "GAP-PET" for d in json.loads((tmp_path / "g.json").read_text(encoding="utf-8")))


def test_the_visit_patient_is_found_as_the_display_finds_it(world, rec):
    from hipbridge.display.launch import LaunchRequest
    from hipbridge.recognition.catalog import Order
    from hipbridge.recognition.engine import visit_auth_ids

    now = world.clock()
    launcher = world.svc.app.state.launcher          # the display service's own access decision
    decision, auth_ids = visit_auth_ids(launcher, LaunchRequest(world.org, "ZY001", "P-A", "D01", None, "RECOGNIZE"), now)
    assert decision == "ok" and auth_ids == [world.auth("APPT-A")["auth_id"]]
    put(world, "lab", auth_ids[0], "V-A1", now - timedelta(days=3), "HRJY0004")
    [ans] = rec.evaluate(auth_ids, [Order("o1", "lab", "XZ4")], now)
    assert "V-A1" in reports(ans)
    # patient C has no authorization: nothing is read
    assert visit_auth_ids(launcher, LaunchRequest(world.org, "ZY003", "P-C", "D01", None, "RECOGNIZE"), now) == \
        ("not_authorized", [])


# ---------------------------------------------------------------- the CDS Hooks service (real uvicorn)

PV, OS = "hipbridge-hr-patient-view", "hipbridge-hr-order-select"


def sr(oid: str, code: str, category: str = "laboratory", part: str | None = None, method: str | None = None) -> dict:
    r = {"resourceType": "ServiceRequest", "id": oid, "status": "draft", "intent": "order",
         "category": [{"coding": [{"code": category}]}], "code": {"coding": [{"code": code}]}}
    if part:
        r["bodySite"] = [{"text": part}]
    if method:
        r["orderDetail"] = [{"text": method}]
    return {"resource": r}


def hook(world, service: str, visit: str, patient: str, doctor: str, orders: list | None = None,
         token: str | None = None, base: str | None = None):
    ctx = {"userId": f"Practitioner/{doctor}", "patientId": patient, "encounterId": visit}
    if orders is not None:
        ctx["draftOrders"] = {"resourceType": "Bundle", "entry": orders}
        ctx["selections"] = [f"ServiceRequest/{o['resource']['id']}" for o in orders]
    body = {"hook": "order-select" if service == OS else "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": ctx}
    return world.http.post((base or world.url) + f"/cds-services/{service}", json=body,
                           headers={"Authorization": f"Bearer {token or world.his_token}"})


@pytest.fixture(scope="module")
def patient_a(world):
    """Patient A (ZY001, doctors D01 / D02, authorized) with a qualifying 肝功能 and 血脂 and an own-hospital one."""
    a = world.auth("APPT-A")["auth_id"]
    now = world.clock()
    put(world, "lab", a, "C-GGN-NEW", now - timedelta(days=2), "HRJY0002", org=PEER, LCXMMC="肝功能")
    put(world, "lab", a, "C-GGN-OLD", now - timedelta(days=20), "HRJY0002", org=ALLY, LCXMMC="肝功能")
    put(world, "lab", a, "C-GGN-OURS", now - timedelta(days=1), "HRJY0002", org=OUR, LCXMMC="肝功能")
    return a


def test_discovery_lists_both_hooks(world):
    r = world.http.get(world.url + "/cds-services")
    assert r.status_code == 200
    assert {(s["hook"], s["id"]) for s in r.json()["services"]} == {("patient-view", PV), ("order-select", OS)}


def test_order_select_answers_a_card_with_suggestion_reasons_and_a_recognize_launch(world, patient_a):
    r = hook(world, OS, "ZY001", "P-A", "D01", [sr("o-1", "GGN"), sr("o-2", "XPY")])
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]                      # XPY (血培养) is not a 互认 item: no card
    assert len(card["summary"]) < 140 and "机构0011" in card["summary"] and "有效期至" in card["summary"]
    assert card["indicator"] == "info" and card["source"]["label"]
    assert card["extension"]["hipbridge"]["reportNo"] == "C-GGN-NEW"      # the newest, not ours
    [sugg] = card["suggestions"]
    assert sugg["actions"] == [{"type": "delete", "description": sugg["actions"][0]["description"],
                                "resourceId": ["ServiceRequest/o-1"]}] and "引用" in sugg["label"]
    codes = {x["code"]: x["display"] for x in card["overrideReasons"]}
    assert set(codes) == {"01", "02", "03", "04", "05", "06", "07", "08", "98", "99"}
    assert codes["99"].startswith("由于疾病诊断")
    # the link launches the external data page (one-time token, purpose RECOGNIZE)
    url = card["links"][0]["url"]
    assert url.startswith(world.url + "/shared/ui?t=")
    opened = world.http.get(url)
    assert opened.status_code == 303 and opened.headers["location"] == "/shared/ui"
    dl = world.life.ops.table("display_launch")
    with world.life.frontend.connect() as c:
        last = c.execute(select(dl).order_by(dl.c.id.desc()).limit(1)).mappings().one()
    assert (last["purpose"], last["visit_id"], last["doctor_id"], last["used_at"] is not None) == \
        ("RECOGNIZE", "ZY001", "D01", True)
    assert world.audit_events("HR_REMIND")[-1]["result_code"] == "ok"


def test_the_reminder_row_and_its_remind_id_are_created_once(world, patient_a):
    t = world.life.ops.table("recognition_reminder")
    hook(world, OS, "ZY001", "P-A", "D02", [sr("o-9", "GGN")])
    hook(world, OS, "ZY001", "P-A", "D02", [sr("o-9", "GGN")])
    with world.life.frontend.connect() as c:
        rows = c.execute(select(t).where(and_(t.c.doctor_id == "D02", t.c.order_id == "o-9"))).mappings().all()
    assert len(rows) == 1 and len(rows[0]["remind_id"]) == 32 and rows[0]["search_type"] == "2"


def test_a_repeat_order_select_makes_8_statements_and_2_commits(world, patient_a, monkeypatch):
    """docs/recognition.md, cost of a call: once its reminder exists, an order-select reads the visit, the
    authorization, the store and the visit's reminders, writes launch and cards in one transaction and
    appends the audit (group commit): 8 statements and 2 commits sent to the server — no pre-ping, no
    ROLLBACK (was ~28 round trips and 4 commits). Here the rows' batch has no push-back check yet, so
    its check is asked for too (a checked one is remembered)."""
    import threading

    import pymysql.connections

    svc = world.svc.app.state.recognition
    body = {"hook": "order-select", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/D01", "patientId": "P-A", "encounterId": "ZY001",
                        "draftOrders": {"resourceType": "Bundle", "entry": [sr("o-rt", "GGN")]},
                        "selections": ["ServiceRequest/o-rt"]}}
    assert len(svc.answer(OS, body, world.url, "his")["cards"]) == 1       # creates the reminder row
    # earlier tests' HTTP answers left outbox drains running in the server's thread (module-scoped world):
    # they append to the audit chain too, so wait until none is running before counting
    for _ in range(100):
        assert world.svc._drain_lock.acquire(timeout=30)
        world.svc._drain_lock.release()
        if not world.svc._pending:
            break
    me, sent = threading.get_ident(), []
    real = pymysql.connections.Connection._execute_command

    def counted(self, command, sql):
        if threading.get_ident() == me:
            text = sql.decode("utf-8", "replace") if isinstance(sql, bytes) else str(sql)
            sent.append("PING" if command == pymysql.constants.COMMAND.COM_PING else text.strip()[:90])
        return real(self, command, sql)
    monkeypatch.setattr(pymysql.connections.Connection, "_execute_command", counted)
    out = svc.answer(OS, body | {"hookInstance": str(uuid.uuid4())}, world.url, "his")
    monkeypatch.undo()
    assert len(out["cards"]) == 1
    control = [x for x in sent if x in ("PING", "COMMIT", "ROLLBACK")]
    # not counted: the push-back check of a batch not verified yet (as here), and the audit chain's tail
    # read under lock, made only when another writer appended since (the outbox's drain may have)
    locked_tail = [x for x in sent if x.startswith("SELECT") and "audit_chain" in x]
    statements = [x for x in sent if x not in control and "push_check" not in x and x not in locked_tail]
    # after a locked tail read the chain's tail is moved by one more UPDATE (the conditional one missed)
    assert control == ["COMMIT", "COMMIT"] and len(statements) == (9 if locked_tail else 8), sent


def test_patient_view_banner_lists_every_recognisable_result(world, patient_a):
    r = hook(world, PV, "ZY001", "P-A", "D01")
    [card] = r.json()["cards"]
    nos = [x["reportNo"] for x in card["extension"]["hipbridge"]]
    assert "C-GGN-NEW" in nos and "C-GGN-OLD" in nos and "C-GGN-OURS" not in nos
    assert card["summary"] == f"该患者有 {len(nos)} 份可互认外院检查检验结果"
    assert "suggestions" not in card and card["links"][0]["url"].startswith(world.url + "/shared/ui?t=")


def test_caller_auth_and_who_may_be_reminded(world, patient_a):
    ctx = {"hook": "patient-view", "hookInstance": "x", "context": {"userId": "D01", "patientId": "P-A",
                                                                     "encounterId": "ZY001"}}
    assert world.http.post(world.url + f"/cds-services/{PV}", json=ctx).status_code == 401
    assert world.http.post(world.url + f"/cds-services/{PV}", json=ctx,
                           headers={"Authorization": f"Bearer {world.booking_token}"}).status_code == 403
    # not the treating doctor, another patient's visit, a patient without an authorization: no cards
    assert hook(world, OS, "ZY001", "P-A", "D09", [sr("o-1", "GGN")]).json() == {"cards": []}
    assert hook(world, OS, "ZY001", "P-C", "D01", [sr("o-1", "GGN")]).json() == {"cards": []}
    assert hook(world, OS, "ZY003", "P-C", "D01", [sr("o-1", "GGN")]).json() == {"cards": []}
    assert world.audit_events("HR_REMIND")[-1]["result_code"] == "not_authorized"


def test_cds_services_authenticate_before_reading_the_body_and_limit_it(world, patient_a):
    """Issue 12 item 5 on the CDS Hooks endpoints of the display app: the caller token is checked
    before the body is read (a 1 GB body gets 401 at once, then 403 for a wrong role), an oversized
    body is 413 by its length and while streaming; discovery stays public but limited too."""
    from tests.test_door_security import _raw

    port = int(world.url.rsplit(":", 1)[1])
    for path in (f"/cds-services/{OS}", f"/cds-services/{OS}/feedback", "/recognition/decisions"):
        head = (f"POST {path} HTTP/1.1\r\nHost: display\r\nContent-Type: application/json\r\n"
                f"Content-Length: 1000000000\r\n\r\n").encode()
        assert _raw(port, head, b"{" * 1024).startswith(b"HTTP/1.1 401"), path
        booking = head.replace(b"Host: display", b"Host: display\r\nAuthorization: Bearer " + world.booking_token.encode())
        assert _raw(port, booking, b"{" * 1024).startswith(b"HTTP/1.1 403"), path
        authed = head.replace(b"Host: display", b"Host: display\r\nAuthorization: Bearer " + world.his_token.encode())
        assert _raw(port, authed, b"{" * 1024).startswith(b"HTTP/1.1 413"), path
    discovery = b"POST /cds-services HTTP/1.1\r\nHost: display\r\nContent-Length: 1000000000\r\n\r\n"
    assert _raw(port, discovery, b"{" * 1024).startswith(b"HTTP/1.1 413")
    assert world.http.get(world.url + "/cds-services").status_code == 200

    def chunks():   # no Content-Length: chunked transfer, counted while it streams
        for _ in range(64):
            yield b" " * 4096

    r = world.http.post(world.url + f"/cds-services/{OS}", content=chunks(),
                        headers={"Authorization": f"Bearer {world.his_token}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert hook(world, OS, "ZY001", "P-A", "D01", [sr("o-1", "GGN")]).status_code == 200   # a normal body passes


def test_an_internal_error_answers_no_cards_and_never_blocks(world, patient_a):
    import dataclasses

    from hipbridge.io.engines import engine_for

    dead = dataclasses.replace(world.life.store,
                               engine=engine_for("mysql+pymysql://root@127.0.0.1:1/none?connect_timeout=2"))
    svc, server = world.second_service(dead)
    try:
        r = hook(world, OS, "ZY001", "P-A", "D01", [sr("o-1", "GGN")], base=server.url)
        assert (r.status_code, r.json()) == (200, {"cards": []})
        bad = world.http.post(server.url + f"/cds-services/{OS}", content=b"[1,2",
                              headers={"Authorization": f"Bearer {world.his_token}", "Content-Type": "application/json"})
        assert (bad.status_code, bad.json()) == (200, {"cards": []})
    finally:
        server.stop()
        svc.writer.close()


def test_feedback_accepted_and_overridden_with_a_reason(world, patient_a):
    fb = world.life.ops.table("recognition_feedback")

    def card() -> str:
        return hook(world, OS, "ZY001", "P-A", "D01", [sr("o-1", "GGN")]).json()["cards"][0]["uuid"]

    def send(items):
        return world.http.post(world.url + f"/cds-services/{OS}/feedback", json={"feedback": items},
                               headers={"Authorization": f"Bearer {world.his_token}"})

    c1, c2 = card(), card()
    assert send([{"card": c1, "outcome": "accepted", "outcomeTimestamp": "2026-03-02T01:00:00Z"}]).json() == {"saved": 1}
    assert send([{"card": c1, "outcome": "accepted"}]).json() == {"saved": 0}          # a retry: recorded once
    r99 = send([{"card": c2, "outcome": "overridden", "overrideReason": {"reason": {"code": "99"}}}])
    assert r99.status_code == 422 and "须填写诊断" in r99.json()["message"]
    r00 = send([{"card": c2, "outcome": "overridden", "overrideReason": {"reason": {"code": "00"}}}])
    assert r00.status_code == 422 and "reasons.csv" in r00.json()["message"]
    ok = send([{"card": c2, "outcome": "overridden",
                "overrideReason": {"reason": {"code": "99"}, "userComment": "2型糖尿病 血糖监测"}}])
    assert ok.json() == {"saved": 1}
    assert send([{"card": "no-such", "outcome": "accepted"}]).status_code == 404
    assert send([{"card": c1, "outcome": "maybe"}]).status_code == 422
    with world.life.frontend.connect() as c:
        rows = {r.card_uuid: r for r in c.execute(select(fb).where(fb.c.card_uuid.in_([c1, c2])))}
    assert rows[c1].outcome == "accepted" and rows[c1].outcome_at == datetime(2026, 3, 2, 9, 0)   # UTC → 北京时间
    assert (rows[c2].outcome, rows[c2].reason_code, rows[c2].comment) == ("overridden", "99", "2型糖尿病 血糖监测")
    results = [e["result_code"] for e in world.audit_events("HR_FEEDBACK")]
    assert {"accepted", "duplicate", "overridden"} <= set(results)
    from hipbridge.audit.chain import verify

    assert verify(world.life.frontend, world.life.ops, world.keys).intact   # every reminder / feedback chained


# ---------------------------------------------------------------- decisions and uploads


def decide(world, remind_id: str, doctor: str, action: str, **kw):
    return world.http.post(world.url + "/recognition/decisions",
                           json={"remindId": remind_id, "doctorId": doctor, "action": action, **kw},
                           headers={"Authorization": f"Bearer {world.his_token}"})


def put_result(world, report_no: str, org: str, name: str, value: str, unit: str, auth_id: str) -> None:
    store = world.life.store
    t = store.tables["lab_result"]
    c = store.cols
    row = {store.defaults.audit("org_code").name: org, "JYMXLSH": f"{report_no}-{name}", "JYBGLSH": report_no,
           "JYZBXMMC": name, "JYDLJG": value, "JYJLDW": unit, c["batch_id"]: f"B-{report_no}", c["auth_id"]: auth_id,
           c["instock_time"]: world.clock(), c["data_num"]: 1, c["row_digest"]: "0" * 64}
    for col in t.columns:
        if col.name not in row and not col.nullable:
            row[col.name] = _filler(col)
    with store.engine.begin() as conn:
        conn.execute(insert(t).values(row))


def remind(world, visit: str, patient: str, doctor: str, code: str = "GGN", oid: str = "o-1") -> dict:
    [card] = hook(world, OS, visit, patient, doctor, [sr(oid, code)]).json()["cards"]
    return card["extension"]["hipbridge"]


def outbox_payloads(world, kind: str) -> list[dict]:
    import json

    from hipbridge.crypto.fields import decrypt_field

    return [json.loads(decrypt_field(world.keys, r["payload"])) | {"_status": r["status"], "_code": r["last_code"],
                                                                    "_id": r["id"]}
            for r in world.outbox(kind)]


def test_decline_with_reason_undo_cite_and_undo_again(world, patient_a):
    a = patient_a
    put_result(world, "C-GGN-NEW", PEER, "总蛋白", "68.2", "g/L", a)
    ext = remind(world, "ZY001", "P-A", "D01", oid="o-dec")
    rid = ext["remindId"]
    assert decide(world, rid, "D02", "recognize").status_code == 403                 # not the ordering doctor
    r99 = decide(world, rid, "D01", "decline", reasonCode="99")
    assert r99.status_code == 422 and r99.json()["message"] == "理由 99 须填写诊断 (diagName)"
    assert decide(world, rid, "D01", "decline", reasonCode="00").status_code == 422
    d = decide(world, rid, "D01", "decline", reasonCode="07")
    assert d.status_code == 200 and d.json()["status"] == "0" and "已向患者说明复查的目的和必要性" in d.json()["note"]
    [(svc, mr_id)] = [(u["service"], u["id"]) for u in d.json()["uploads"]]
    assert svc == "hr_recognition"
    again = decide(world, rid, "D01", "decline", reasonCode="07")                     # a double click
    assert again.json()["changed"] is False and again.json()["uploads"] == []
    u = decide(world, rid, "D01", "undo")
    assert u.json()["status"] == "2" and u.json()["uploads"][0]["service"] == "hr_revoke"
    assert decide(world, rid, "D01", "undo").status_code == 409                       # nothing left to undo
    c = decide(world, rid, "D01", "recognize")
    assert c.status_code == 200 and c.json()["status"] == "1"
    cit = c.json()["citation"]
    assert (cit["orgCode"], cit["reportNo"], cit["reportTime"][:10]) == (PEER, "C-GGN-NEW",
                                                                       f"{world.clock() - timedelta(days=2):%Y-%m-%d}")
    assert cit["values"][0]["name"] == "总蛋白" and "总蛋白 68.2g/L" in cit["text"]
    undo = decide(world, rid, "D01", "undo")
    assert undo.json()["uploads"][0]["service"] == "hr_recognition"                   # 撤销互认 (P1: a 不互认-type record)
    # the uploads: each GUID queued once with its record; 撤销不互认 names the declined record's mrId
    revokes = [p for p in outbox_payloads(world, "hr_revoke") if p["gh_id"] == "ZY001"]
    assert revokes[-1]["mr_id"] == mr_id and revokes[-1]["client_type"] == "2"
    quotes = [p for p in outbox_payloads(world, "hr_quote") if p["report_no"] == "C-GGN-NEW"]
    assert len(quotes) == 1 and len(quotes[0]["quote_id"]) == 32
    dec = world.life.ops.table("recognition_decision")
    with world.life.frontend.connect() as conn:
        row = conn.execute(select(dec).where(and_(dec.c.visit_id == "ZY001", dec.c.report_no == "C-GGN-NEW",
                                                   dec.c.doctor_id == "D01"))).mappings().one()
    assert row["status"] == "2" and row["action"] == "undo"
    cites = world.life.ops.table("recognition_citation")
    with world.life.frontend.connect() as conn:
        assert conn.execute(select(cites.c.quote_id).where(cites.c.quote_id == quotes[0]["quote_id"])).scalar()
    assert {"recognize", "decline", "undo"} <= {e["result_code"] for e in world.audit_events("HR_DECISION")}


def test_98_and_99_are_not_counted_as_refusals(world, patient_a):
    dec = world.life.ops.table("recognition_decision")
    r1 = remind(world, "ZY001", "P-A", "D02", oid="o-98")["remindId"]
    assert decide(world, r1, "D02", "decline", reasonCode="99", diagName="慢性肝病 肝功能监测").status_code == 200
    with world.life.frontend.connect() as conn:
        row = conn.execute(select(dec).where(and_(dec.c.doctor_id == "D02", dec.c.report_no == "C-GGN-NEW"))).mappings().one()
    assert (row["reason_code"], row["counted"], row["diag_name"]) == ("99", 0, "慢性肝病 肝功能监测")


def test_uploads_reach_the_platform_once_each_and_a_retry_reuses_the_guid(world, patient_a):
    from tests.display_world import wait

    world.life.drain_outbox(world.client)
    st = world.sim_app.state.sim
    kinds = ("hr_remind", "hr_recognition", "hr_quote", "hr_revoke")

    def rows() -> list[dict]:
        return [p for k in kinds for p in outbox_payloads(world, k)]
    # the service's own drain may hold some rows (SENT) while ours runs: both end ACKED
    assert wait(lambda: rows() and all(p["_status"] == "ACKED" for p in rows()), 30), \
        [(p["_status"], p["_code"]) for p in rows()]
    # retry one (as after a lost answer): the same GUID goes again, the platform keeps one record
    ob = world.life.ops.table("outbox")
    first = outbox_payloads(world, "hr_remind")[0]
    with world.life.frontend.begin() as conn:
        conn.execute(ob.update().where(ob.c.id == first["_id"]).values(status="NEW", next_retry_at=world.clock()))
    posts = st.hr_posts
    world.life.drain_outbox(world.client)
    assert outbox_payloads(world, "hr_remind")[0]["_status"] == "ACKED"
    assert st.hr_posts == posts + 1                       # it was sent again …
    reminds = {p["remind_id"] for p in outbox_payloads(world, "hr_remind")}
    assert {g for (role, g) in st.hr_records if role == "hr_remind"} == reminds     # … and counted once
    sent = st.hr_records[("hr_quote", outbox_payloads(world, "hr_quote")[0]["quote_id"])]
    assert sent["client_type"] == "2" and sent["microbia_mark"] == "0"


def test_a_rejected_upload_is_shown_not_retried_and_the_platform_down_keeps_decisions(world, patient_a):
    from hipbridge.recognition.decisions import enqueue

    # a record missing its fields: the simulated platform answers A1077, the row is FAILED (not retried)
    with world.life.frontend.begin() as conn:
        enqueue(conn, world.life.ops, world.keys, "hr_quote", uuid.uuid4().hex, None, world.clock(),
                {"org_code": world.org, "patient_id": "P-A", "gh_id": "ZY001", "item_type": "LIS"})
    world.life.drain_outbox(world.client)
    bad = outbox_payloads(world, "hr_quote")[-1]
    assert (bad["_status"], bad["_code"]) == ("FAILED", "A1077")
    # platform down: a service whose platform is unreachable saves the decision; its upload waits in the outbox
    from hipbridge.demo.simulator import ServerThread
    from hipbridge.workstation.service import DisplayService

    svc = DisplayService.from_lifecycle(world.life, clock=world.clock, platform_url="http://127.0.0.1:1")
    server = ServerThread(svc.app).start()
    try:
        [card] = hook(world, OS, "ZY001", "P-A", "D01", [sr("o-down", "XZ4")], base=server.url).json()["cards"]
        rid = card["extension"]["hipbridge"]["remindId"]
        r = world.http.post(server.url + "/recognition/decisions",
                            json={"remindId": rid, "doctorId": "D01", "action": "decline", "reasonCode": "01"},
                            headers={"Authorization": f"Bearer {world.his_token}"})
        assert r.status_code == 200 and r.json()["status"] == "0"
        mr_id = r.json()["uploads"][0]["id"]
        row = next(p for p in outbox_payloads(world, "hr_recognition") if p["mr_id"] == mr_id)
        assert row["_status"] != "ACKED"
    finally:
        server.stop()
        svc.writer.close()
    # the platform back: after the back-off the queued record goes with the GUID it was created with
    now = world.clock()
    world.clock.advance(minutes=30)
    try:
        world.life.drain_outbox(world.client)
    finally:
        world.clock.now = now
    assert ("hr_recognition", mr_id) in world.sim_app.state.sim.hr_records


def test_window_rechecked_at_decision_time(world, patient_a):
    a = patient_a
    now = world.clock()
    put(world, "lab", a, "R-LAST", now - timedelta(days=7), "HRJY0006", org=PEER)   # 电解质: 7 days, last day
    rid = remind(world, "ZY001", "P-A", "D01", code="DJZ", oid="o-win")["remindId"]
    world.clock.advance(days=1)
    try:
        r = decide(world, rid, "D01", "recognize")
        assert (r.status_code, r.json()["message"]) == (409, "已过有效期，不可互认")
    finally:
        world.clock.now = now


def test_decisions_lock_once_the_visit_closes(world):
    from hipbridge.platform.outbox import record_visit

    a = world.auth("APPT-D")["auth_id"]
    now = world.clock()
    put(world, "lab", a, "L-D1", now - timedelta(days=1), "HRJY0002", org=PEER)
    rid = remind(world, "ZY004", "P-D", "D01", oid="o-lock")["remindId"]
    record_visit(world.life.frontend, world.life.ops, world.keys, world.org, "APPT-D", now, end=now)
    r = decide(world, rid, "D01", "decline", reasonCode="07")
    assert (r.status_code, r.json()["message"]) == (409, "就诊已结束, 互认决定已锁定")


def test_monthly_kpi_command_counts_reminders_decisions_and_excludes_98_99(world):
    import json
    import subprocess
    import sys

    def kpi() -> dict:
        env = {**os.environ, "HIPBRIDGE_OPS_SCHEMA": world.life.ops.schema, "HIPBRIDGE_HOME": str(world.home)}
        out = subprocess.run([sys.executable, "-m", "hipbridge.cli", "recognition", "kpi", "--month", "2026-03",
                              "--db", world.life.frontend_url, "--json"], capture_output=True, text=True, env=env,
                             check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    before = kpi()
    a = world.auth("APPT-G")["auth_id"]
    now = world.clock()
    for no, code in (("K-1", "HRJY0002"), ("K-2", "HRJY0004"), ("K-3", "HRJY0005")):
        put(world, "lab", a, no, now - timedelta(hours=1), code, org=PEER)     # newer than the pushed ones
    cards = hook(world, OS, "ZY007", "P-G", "D01", [sr("k1", "GGN"), sr("k2", "XZ4"), sr("k3", "KFXT")]).json()["cards"]
    rid = {c["extension"]["hipbridge"]["reportNo"]: c["extension"]["hipbridge"]["remindId"] for c in cards}
    # the banner shows the same reports (not counted twice) and the platform's pushed 肝功能 results
    [banner] = hook(world, PV, "ZY007", "P-G", "D01").json()["cards"]
    shown = {x["reportNo"] for x in banner["extension"]["hipbridge"]}
    assert {"K-1", "K-2", "K-3"} <= shown
    assert decide(world, rid["K-1"], "D01", "recognize").status_code == 200
    assert decide(world, rid["K-2"], "D01", "decline", reasonCode="07").status_code == 200
    assert decide(world, rid["K-3"], "D01", "decline", reasonCode="98").status_code == 200
    after = kpi()
    assert after["reminded"] - before["reminded"] == len(shown)
    assert (after["recognised"] - before["recognised"], after["notRecognised"] - before["notRecognised"],
            after["excluded"] - before["excluded"]) == (1, 1, 1)
    assert after["rate"] == round(after["recognised"] / (after["reminded"] - after["excluded"]), 4)
    r98 = next(r for r in after["byReason"] if r["code"] == "98")
    assert r98["counted"] is False


def test_concurrent_duplicate_feedback_and_decisions_are_recorded_once(world, patient_a):
    from concurrent.futures import ThreadPoolExecutor

    fb = world.life.ops.table("recognition_feedback")
    ext = remind(world, "ZY001", "P-A", "D01", code="GGN", oid="o-conc")
    [card] = hook(world, OS, "ZY001", "P-A", "D01", [sr("o-conc", "GGN")]).json()["cards"]

    def send(_):
        with httpx.Client(trust_env=False, timeout=30) as h:
            return h.post(world.url + f"/cds-services/{OS}/feedback", headers={"Authorization": f"Bearer {world.his_token}"},
                          json={"feedback": [{"card": card["uuid"], "outcome": "accepted"}]})

    def click(_):
        with httpx.Client(trust_env=False, timeout=30) as h:
            return h.post(world.url + "/recognition/decisions", headers={"Authorization": f"Bearer {world.his_token}"},
                          json={"remindId": ext["remindId"], "doctorId": "D01", "action": "decline", "reasonCode": "02"})

    with ThreadPoolExecutor(6) as pool:
        sent = list(pool.map(send, range(6)))
        clicks = list(pool.map(click, range(6)))
    assert [r.status_code for r in sent] == [200] * 6 and sum(r.json()["saved"] for r in sent) == 1
    with world.life.frontend.connect() as conn:
        assert len(conn.execute(select(fb).where(fb.c.card_uuid == card["uuid"])).all()) == 1
    assert [r.status_code for r in clicks] == [200] * 6, [r.text for r in clicks]
    assert sum(len(r.json()["uploads"]) for r in clicks) == 1        # one 互认记录, one mrId


def test_override_reasons_come_from_the_platform_with_a_cached_fallback(world, patient_a):
    from hipbridge.demo.simulator import ServerThread
    from hipbridge.recognition.reasons import ReasonDictionary
    from hipbridge.workstation.service import DisplayService

    from tests.display_world import wait

    sim = world.sim_app.state.sim
    d = world.svc.app.state.recognition.reasons
    live = [{"reasonCode": "01", "reasonDescription": "病情变化 (平台字典)"}, {"reasonCode": "09", "reasonDescription": "平台新增理由"},
            {"reasonCode": "98", "reasonDescription": "未收到外院影像资料"}, {"reasonCode": "99", "reasonDescription": "连续性监测"}]
    sim.hr_reasons = live
    rt = world.life.ops.table("recognition_reason")
    put(world, "lab", patient_a, "RS-THX", world.clock() - timedelta(days=1), "HRJY0011", org=PEER)
    try:
        assert d.refresh() is True and d.source == "platform"
        [card] = hook(world, OS, "ZY001", "P-A", "D01", [sr("o-rs", "THXHDB")]).json()["cards"]
        assert [(x["code"], x["display"]) for x in card["overrideReasons"]] == [
            (r["reasonCode"], r["reasonDescription"]) for r in live]
        # the national flags stay the seed's by code: 98 / 99 not counted, 99 needs a diagnosis; 09 is counted
        cur = d.current()
        assert (cur["98"].counted, cur["99"].needs_diagnosis, cur["09"].counted) == (False, True, True)
        rid = card["extension"]["hipbridge"]["remindId"]
        assert decide(world, rid, "D01", "decline", reasonCode="05").status_code == 422     # no longer offered
        assert decide(world, rid, "D01", "decline", reasonCode="09").status_code == 200     # the platform's new one
        world.life.drain_outbox(world.client)

        def recorded() -> dict:
            return next(p for p in outbox_payloads(world, "hr_recognition") if p.get("report_no") == "RS-THX")
        # the service's own drain may hold the row (SENT) while ours runs: it ends ACKED either way
        assert wait(lambda: recorded()["_status"] == "ACKED", 30), recorded()["_status"]
        mr = recorded()
        assert (mr["reason_code"], mr["reason_name"]) == ("09", "平台新增理由")
        with world.life.frontend.connect() as conn:
            assert [r.code for r in conn.execute(select(rt.c.code).order_by(rt.c.id))] == ["01", "09", "98", "99"]
        # the platform down: a service that cannot reach it answers with the cached list, and the doctor never waits
        svc = DisplayService.from_lifecycle(world.life, clock=world.clock, platform_url="http://127.0.0.1:1")
        server = ServerThread(svc.app).start()
        try:
            down = svc.app.state.recognition.reasons
            assert down.refresh() is False and down.source == "cache"
            [c2] = hook(world, OS, "ZY001", "P-A", "D01", [sr("o-rs", "GGN")], base=server.url).json()["cards"]
            assert [x["code"] for x in c2["overrideReasons"]] == ["01", "09", "98", "99"]
        finally:
            server.stop()
            svc.writer.close()
        # nothing cached yet (a new installation) and the platform down: the shipped seed list
        with world.life.frontend.begin() as conn:
            conn.execute(rt.delete())

        def down_fetch():
            raise OSError("platform down")
        seed = ReasonDictionary(d.rec, world.life.frontend, world.life.ops, fetch=down_fetch)
        assert seed.refresh() is False and seed.source == "seed"
        assert set(seed.current()) == {"01", "02", "03", "04", "05", "06", "07", "08", "98", "99"}
    finally:
        sim.hr_reasons = None
        d.refresh()


# ---------------------------------------------------------------- the reminder page in headless Chromium


@pytest.fixture(scope="module")
def browser():
    from tests.browser import chromium_path

    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, world):
    ctx = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.requests_seen = []
    pg.on("request", lambda r: pg.requests_seen.append(r.url))
    yield pg
    ctx.close()


def open_reminders(world, page, orders, visit="ZY005", patient="P-E", doctor="D01", purpose="RECOGNIZE"):
    r = world.launch(visit, patient, doctor, purpose=purpose, orders=orders)
    assert r.status_code == 201, r.text
    resp = page.goto(world.url + "/shared/remind?t=" + r.json()["launchToken"])
    if resp.status == 200:
        page.wait_for_selector("body[data-loaded='1']")
    return resp


def card(page, report_no: str):
    return page.locator(f".reminder[data-report-no='{report_no}']")


def wait_status(li, label: str) -> None:
    li.locator(".status", has_text=label).wait_for()


def test_page_shows_the_reminder_and_cites_the_result(world, page, tmp_path):
    from tests.browser import assert_screenshot, look  # noqa: F401 - same Chromium as the other page tests
    from tests.display_world import ID_E

    a = world.auth("APPT-E")["auth_id"]
    now = world.clock()
    put(world, "lab", a, "PG-GGN", now - timedelta(days=3), "HRJY0002", org=PEER, LCXMMC="肝功能")
    put_result(world, "PG-GGN", PEER, "丙氨酸氨基转移酶", "42", "U/L", a)
    resp = open_reminders(world, page, [{"orderId": "pg-1", "hisItemId": "GGN", "kind": "lab"},
                                        {"orderId": "pg-2", "hisItemId": "XPY"}])
    assert resp.status == 200 and page.url == world.url + "/shared/remind"      # the token left the address bar
    li = card(page, "PG-GGN")
    assert li.count() == 1
    text = li.inner_text()
    assert "肝功能" in text and "机构0011" in text and "三级甲等" in text and "未处理" in text
    assert f"有效期至 {(now - timedelta(days=3)).date() + timedelta(days=30)}" in text and "本次开单 GGN" in text
    assert "北京时间 (Asia/Shanghai)" in page.locator(".note").inner_text()
    assert "钱七" in page.locator("#patient").inner_text() and ID_E not in page.content()
    assert "XPY" in page.locator("#not-reminded").inner_text()                   # 血培养: no 互认 item, no reminder
    page.screenshot(path=str(tmp_path / "remind.png"), full_page=True)
    assert (tmp_path / "remind.png").stat().st_size > 20_000
    # 查看: the report through the external data page's API (its 调阅记录 goes with it)
    li.locator("button.view").click()
    li.locator(".detail table").wait_for()
    assert "丙氨酸氨基转移酶" in li.locator(".detail").inner_text()
    # 互认 / 引用: the EMR citation comes back and is shown
    li.locator("button.cite").click()
    wait_status(li, "已互认")
    note = li.locator(".note-box").inner_text()
    assert "病历引用" in note and "PG-GGN" in note and "丙氨酸氨基转移酶 42U/L" in note
    assert li.locator("button.undo").is_visible()
    quotes = [p for p in outbox_payloads(world, "hr_quote") if p.get("report_no") == "PG-GGN"]
    assert len(quotes) == 1 and quotes[0]["doctor_id"] == "D01"
    assert all(u.startswith(world.url) for u in page.requests_seen), page.requests_seen     # nothing from outside
    assert not any("P-E" in u or ID_E in u for u in page.requests_seen)                      # no identifier in a URL
    # reopened (a new launch): the decision and its citation are still there
    open_reminders(world, page, [{"orderId": "pg-1", "hisItemId": "GGN", "kind": "lab"}])
    again = card(page, "PG-GGN")
    assert "已互认" in again.locator(".status").inner_text() and "PG-GGN" in again.locator(".note-box").inner_text()


def test_page_99_without_a_diagnosis_is_refused(world, page):
    a = world.auth("APPT-E")["auth_id"]
    put(world, "lab", a, "PG-XZ4", world.clock() - timedelta(days=5), "HRJY0004", org=PEER, LCXMMC="血脂四项")
    open_reminders(world, page, [{"orderId": "pg-3", "hisItemId": "XZ4"}])       # kind found from the local map
    li = card(page, "PG-XZ4")
    li.locator("button.decline").click()
    li.locator("select.reason").select_option("99")
    li.locator("button.confirm-decline").click()
    li.locator(".error", has_text="理由 99 须填写诊断").wait_for()
    assert li.locator(".status").inner_text() == "未处理"
    dec = world.life.ops.table("recognition_decision")
    with world.life.frontend.connect() as conn:
        assert conn.execute(select(dec).where(dec.c.report_no == "PG-XZ4")).first() is None
    li.locator("input.diag").fill("高脂血症 调脂治疗监测")
    li.locator("button.confirm-decline").click()
    wait_status(li, "不互认")
    assert "已向患者说明复查的目的和必要性" in li.locator(".note-box").inner_text()
    with world.life.frontend.connect() as conn:
        row = conn.execute(select(dec).where(dec.c.report_no == "PG-XZ4")).mappings().one()
    assert (row["reason_code"], row["diag_name"], row["counted"]) == ("99", "高脂血症 调脂治疗监测", 0)


def test_page_decline_with_a_reason_then_undo(world, page):
    a = world.auth("APPT-E")["auth_id"]
    put(world, "lab", a, "PG-KFXT", world.clock() - timedelta(days=2), "HRJY0005", org=ALLY, LCXMMC="空腹血糖")
    open_reminders(world, page, [{"orderId": "pg-4", "hisItemId": "KFXT", "category": "laboratory"}])
    li = card(page, "PG-KFXT")
    assert li.locator("button.undo").is_hidden()                                 # nothing to undo yet
    li.locator("button.decline").click()
    li.locator("select.reason").select_option("02")
    li.locator("button.confirm-decline").click()
    wait_status(li, "不互认")
    assert "理由: 检查检验结果在疾病发展演变过程中变化较快的" in li.locator(".note-box").inner_text()
    [mr] = [p for p in outbox_payloads(world, "hr_recognition") if p.get("report_no") == "PG-KFXT"]
    assert (mr["reason_code"], mr["recognise"]) == ("02", "0")
    from tests.display_world import wait

    # the service drains the outbox itself after an answer that queued an upload
    assert wait(lambda: next(p for p in outbox_payloads(world, "hr_recognition")
                             if p.get("report_no") == "PG-KFXT")["_status"] == "ACKED", 30)
    li.locator("button.undo").click()
    wait_status(li, "未处理")
    assert li.locator("button.undo").is_hidden() and li.locator(".note-box").inner_text() == ""
    [rv] = [p for p in outbox_payloads(world, "hr_revoke") if p.get("mr_id") == mr["mr_id"]]   # 撤销不互认 names it
    assert rv["gh_id"] == "ZY005" and rv["doctor_id"] == "D01"
    # the visit closes: the decision is locked, and the page says so
    li.locator("button.cite").click()
    wait_status(li, "已互认")
    from hipbridge.platform.outbox import record_visit

    record_visit(world.life.frontend, world.life.ops, world.keys, world.org, "APPT-E", world.clock(),
                 end=world.clock())
    try:
        li.locator("button.undo").click()
        li.locator(".error", has_text="就诊已结束, 互认决定已锁定").wait_for()
        assert li.locator(".status").inner_text() == "已互认"
    finally:
        ar = world.life.ops.table("auth_record")
        with world.life.frontend.begin() as c:
            c.execute(ar.update().where(ar.c.appointment_id == "APPT-E").values(visit_end=None))


def test_page_refuses_a_view_launch_and_a_reused_token(world, page):
    resp = open_reminders(world, page, [], purpose="VIEW")
    assert resp.status == 403 and "不是互认提醒" in page.locator("#message").inner_text()
    assert page.locator(".reminder, #patient").count() == 0
    r = world.launch("ZY005", "P-E", "D01", purpose="RECOGNIZE")
    url = world.url + "/shared/remind?t=" + r.json()["launchToken"]
    assert page.goto(url).status == 200
    assert page.goto(url).status == 401 and "链接已使用" in page.locator("#message").inner_text()


def test_page_without_orders_lists_every_recognisable_result(world, patient_a):
    """An API check of the page's data: no orders → 接诊 mode (searchType 1), every result of the patient."""
    r = world.launch("ZY001", "P-A", "D01", purpose="RECOGNIZE")
    tok = r.json()["launchToken"]
    first = world.http.get("/shared/remind?t=" + tok)
    assert first.status_code == 303
    import httpx

    with httpx.Client(base_url=world.url, trust_env=False, timeout=30,
                      cookies={"hb_display_session": first.cookies["hb_display_session"]}) as h:
        body = h.get("/shared/remind/items").json()
        assert body["mode"] == "visit" and {"C-GGN-NEW", "C-GGN-OLD"} <= {i["reportNo"] for i in body["items"]}
        assert "C-GGN-OURS" not in {i["reportNo"] for i in body["items"]}
        assert {x["code"] for x in body["reasons"]} >= {"01", "98", "99"}
        t = world.life.ops.table("recognition_reminder")
        with world.life.frontend.connect() as conn:
            st = conn.execute(select(t.c.search_type).where(t.c.remind_id == body["items"][0]["remindId"])).scalar()
        assert st == "1"
        other = h.post("/shared/remind/decide", json={"remindId": remind(world, "ZY001", "P-A", "D02", oid="o-pg")
                                                      ["remindId"], "action": "ignore"})
        assert other.status_code == 404                          # another doctor's reminder: not this session's


def test_zz_citations_survive_the_shared_data_purge(world):
    """Runs last: purges every shared row of the module's patients."""
    cites = world.life.ops.table("recognition_citation")
    with world.life.frontend.connect() as conn:
        before = conn.execute(select(cites.c.quote_id)).scalars().all()
    assert before
    world.life.purge(world.clock() + timedelta(days=400), dry_run=False)
    store = world.life.store
    with store.engine.connect() as conn:
        left = conn.execute(select(store.tables["lab_report"].c.JYJLLSH).where(
            store.tables["lab_report"].c.JYJLLSH == "C-GGN-NEW")).all()
    with world.life.frontend.connect() as conn:
        after = conn.execute(select(cites.c.quote_id)).scalars().all()
    assert left == [] and after == before
