"""互认 reminders (interfaces.md §A10): the recognition engine against MariaDB (front-end, ops, shared
store) with the real catalog files — window edges, eligibility, a missing window, our own
institution, a push-back-rejected batch, NO_MAPPING logged, newest first, the visit's patient found
as the external data page finds it.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select, text

from tests.display_world import DisplayWorld, _filler, standard_world

ADMIN = os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
OUR = "451002000001"           # 百色市人民医院 (三级甲等), the demo hospital
PEER = "450100000011"          # 广西医科大学第一附属医院, 三级甲等
ALLY = "451021000004"          # 田阳区人民医院, 二级甲等, in our 医联体 (config/recognition/alliance.csv)
LOWER = "451099000099"         # not in the code list: level unknown, not in the alliance


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    name = f"hbt_rec_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dbs = [name, f"{name}_ops", f"{name}_share"]
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
    shutil.copy(config_dir() / "recognition" / "alliance.csv", base / "recognition")
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
