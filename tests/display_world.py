"""A hospital for the external data page tests: MariaDB front-end + ops + shared store, the simulated
platform (real HTTP), the display service (real HTTP), a movable clock. Real table specs throughout.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import MetaData, insert

FRONTEND_TABLES = ["patient_info", "staff_info", "op_visit", "ip_admission", "ip_discharge", "ip_order"]


def valid_id(prefix17: str) -> str:
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return prefix17 + "10X98765432"[sum(int(a) * b for a, b in zip(prefix17, w, strict=True)) % 11]


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def _filler(col):
    try:
        t = col.type.python_type
    except NotImplementedError:
        t = str
    if t is datetime:
        return datetime(2026, 1, 1, 8, 0)
    if t is date:
        return date(1980, 1, 1)
    if t in (int, float, Decimal):
        return 1
    length = getattr(col.type, "length", None) or 8
    return "0"[:length] if length < 2 else "X1"[:length]


def wait(pred, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class DisplayWorld:
    def __init__(self, home, frontend_url: str, clock: Clock | None = None, start_servers: bool = True):
        from hipbridge.crypto.keys import KeyStore, provision_pair
        from hipbridge.demo.simulator import ServerThread, create_app
        from hipbridge.io.frontend import create_frontend, target_table
        from hipbridge.sharing.door import add_caller
        from hipbridge.sharing.service import Lifecycle
        from hipbridge.spec import load_specs
        from hipbridge.workstation.service import DisplayService

        self.clock = clock or Clock(datetime(2026, 3, 2, 9, 0, 0))
        self.keys, self.platform_keys = KeyStore(home / "keys"), KeyStore(home / "platform_keys")
        provision_pair(self.keys, self.platform_keys)
        self.specs = load_specs().require_valid()
        self.life = Lifecycle.open(frontend_url, self.specs, self.keys)
        create_frontend(self.life.frontend, self.specs, tables=FRONTEND_TABLES)
        md = MetaData()
        self.tables = {t: target_table(self.specs.get(t), self.specs.defaults, md, self.life.frontend.dialect.name)
                       for t in FRONTEND_TABLES}
        self.org = self.life.org_code
        self.sim_app = create_app(self.platform_keys, self.life.store, clock=self.clock, seed=7)
        self.sim = ServerThread(self.sim_app)
        self.svc = DisplayService.from_lifecycle(self.life, clock=self.clock, platform_url=self.sim.url)
        self.server = ServerThread(self.svc.app)
        self.client = self.life.client(clock=self.clock, base_url=self.sim.url)
        self.his_token = add_caller(self.keys, "his-workstation", roles=("workstation",))
        self.booking_token = add_caller(self.keys, "booking-system", roles=("booking",))
        if start_servers:
            self.sim.start()
            self.server.start()
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=30, follow_redirects=False)

    def close(self) -> None:
        self.http.close()
        self.client.close()
        self.server.stop()
        self.sim.stop()
        self.svc.writer.close()

    def second_service(self, store=None, writer=None):
        """Another display service on the same databases, reading `store` / writing the audit through
        `writer` (e.g. unreachable ones)."""
        from hipbridge.demo.simulator import ServerThread
        from hipbridge.workstation.service import DisplayService

        svc = DisplayService.from_lifecycle(self.life, clock=self.clock, platform_url=self.sim.url, store=store,
                                            writer=writer)
        return svc, ServerThread(svc.app).start()

    # ------------------------------------------------------------ the hospital's own tables

    def insert(self, table_id: str, **values) -> None:
        t = self.tables[table_id]
        row = {self.specs.defaults.audit("org_code").name: self.org, "XGBZ": "1", **values}
        for c in t.columns:
            if c.name not in row and not c.nullable:
                row[c.name] = _filler(c)
        with self.life.frontend.begin() as conn:
            conn.execute(insert(t).values(row))

    def add_patient(self, patient_id: str, name: str, id_no: str, phone: str = "13907761234") -> None:
        self.insert("patient_info", HZWYBSH=patient_id, XM=name, ZJLXDM="01", ZJHM=id_no, SJHM=phone,
                    CSRQ=date(1980, 1, 1))

    def add_staff(self, job_no: str, name: str) -> None:
        self.insert("staff_info", ZGDM=f"S{job_no}", ZGGH=job_no, XM=name, ZJHM=valid_id("45100219700101000"))

    def add_outpatient(self, visit_no: str, patient_id: str, doctor: str, start: datetime, end: datetime) -> None:
        self.insert("op_visit", MZJZLSH=visit_no, GHLSH=f"GH{visit_no}", HZWYBSH=patient_id, JZYSGH=doctor,
                    JZKSDM="0101", JZKSMC="心血管内科", JZKSSJ=start, JZJSSJ=end)

    def add_inpatient(self, visit_no: str, patient_id: str, name: str, id_no: str, doctors: list[str],
                      admitted: datetime, discharged: datetime | None = None) -> None:
        self.insert("ip_admission", ZYJZLSH=visit_no, HZWYBSH=patient_id, XM=name, ZJLXDM="01", ZJHM=id_no,
                    ZYH=f"Z{visit_no}", RYKSDM="0201", RYKSMC="内分泌科", RYSJ=admitted, ZFBZ="0")
        for i, d in enumerate(doctors):
            self.insert("ip_order", YZMXLSH=f"{visit_no}-{i}", ZYJZLSH=visit_no, HZWYBSH=patient_id, KSDM="0201",
                        KLYSGH=d, YZKLSJ=admitted, YZKSSJ=admitted, ZFBZ="0")
        if discharged:
            self.discharge(visit_no, patient_id, admitted, discharged)

    def discharge(self, visit_no: str, patient_id: str, admitted: datetime, when: datetime) -> None:
        self.insert("ip_discharge", ZYJZLSH=visit_no, HZWYBSH=patient_id, ZYH=f"Z{visit_no}", RYSJ=admitted,
                    CYKSDM="0201", CYSJ=when)

    # ------------------------------------------------------------ authorization (booking → platform → push)

    def authorize(self, appointment_id: str, id_no: str, visit_no: str, name: str = "张三",
                  visit_type: str = "inpatient") -> dict:
        from hipbridge.platform.outbox import Booking, enqueue_grant, record_visit

        now = self.clock()
        enqueue_grant(self.life.frontend, self.life.ops, self.keys, self.org, self.life.org_name,
                      Booking(appointment_id=appointment_id, patient_name=name, patient_id_type="01",
                              patient_id_no=id_no, patient_phone="13907761234", visit_date=now,
                              visit_type=visit_type, consent_time=now), now)
        rep = self.life.drain_outbox(self.client)
        assert rep.acked >= 1, rep
        record_visit(self.life.frontend, self.life.ops, self.keys, self.org, appointment_id, now,
                     visit_no=visit_no, start=now)
        self.life.verify(now, run_quality=False)
        return self.auth(appointment_id)

    def auth(self, appointment_id: str) -> dict:
        from sqlalchemy import select

        ar = self.life.ops.table("auth_record")
        with self.life.frontend.connect() as c:
            return dict(c.execute(select(ar).where(ar.c.appointment_id == appointment_id)).mappings().one())

    def revoke(self, appointment_id: str) -> None:
        from hipbridge.platform.outbox import enqueue_revoke

        enqueue_revoke(self.life.frontend, self.life.ops, self.keys, self.org, appointment_id, "2", self.clock(),
                       reason="患者撤回")

    # ------------------------------------------------------------ HIS side

    def launch(self, visit_id: str, patient_id: str, doctor_id: str, purpose: str = "VIEW", token: str | None = None,
               base_url: str | None = None, **extra) -> httpx.Response:
        body = {"orgCode": self.org, "visitId": visit_id, "patientId": patient_id, "doctorId": doctor_id,
                "deptId": "0201", "purpose": purpose, **extra}
        return self.http.post((base_url or self.url) + "/shared/launch", json=body,
                              headers={"Authorization": f"Bearer {token or self.his_token}"})

    def session(self, launch_token: str) -> httpx.Client:
        """An API client (HIS vendor rendering the data itself) holding a page session."""
        r = self.http.post("/shared/session", json={"launchToken": launch_token})
        assert r.status_code == 200, r.text
        return httpx.Client(base_url=self.url, trust_env=False, timeout=30,
                            headers={"X-HB-Session": r.json()["session"]})

    def audit_events(self, action: str | None = None) -> list[dict]:
        from sqlalchemy import select

        ev = self.life.ops.table("audit_event")
        q = select(ev).order_by(ev.c.id)
        if action:
            q = q.where(ev.c.action == action)
        with self.life.frontend.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def outbox(self, kind: str) -> list[dict]:
        from sqlalchemy import select

        ob = self.life.ops.table("outbox")
        with self.life.frontend.connect() as c:
            return [dict(r) for r in c.execute(select(ob).where(ob.c.kind == kind).order_by(ob.c.id)).mappings()]


ID_A = valid_id("45100219800101123")
ID_B = valid_id("45100219900202234")
ID_C = valid_id("45100219750303345")
ID_D = valid_id("45100219850404456")
ID_E = valid_id("45100219650505567")
ID_G = valid_id("45100219550707789")


def standard_world(w: DisplayWorld) -> None:
    """Patients A (inpatient, open, authorized), B (outpatient visit closed, authorized), C (not authorized),
    D and E (open, authorized: their authorizations get revoked by tests), G (open, authorized, never revoked)."""
    w.add_staff("D01", "李医生")
    w.add_staff("D02", "王医生")
    w.add_staff("D09", "赵医生")
    now = w.clock()
    w.add_patient("P-A", "张三", ID_A, phone="13907761234")
    w.add_patient("P-B", "李四", ID_B, phone="13807760000")
    w.add_patient("P-C", "王五", ID_C)
    w.add_inpatient("ZY001", "P-A", "张三", ID_A, ["D01", "D02"], admitted=now - timedelta(days=1))
    w.add_outpatient("MZ002", "P-B", "D01", start=now - timedelta(hours=3), end=now - timedelta(hours=1))
    w.add_inpatient("ZY003", "P-C", "王五", ID_C, ["D01"], admitted=now - timedelta(hours=5))
    w.add_patient("P-D", "赵六", ID_D)
    w.add_inpatient("ZY004", "P-D", "赵六", ID_D, ["D01"], admitted=now - timedelta(hours=6))
    w.add_patient("P-E", "钱七", ID_E)
    w.add_inpatient("ZY005", "P-E", "钱七", ID_E, ["D01"], admitted=now - timedelta(hours=7))
    w.authorize("APPT-A", ID_A, "ZY001", name="张三")
    w.authorize("APPT-B", ID_B, "MZ002", name="李四", visit_type="outpatient")
    w.authorize("APPT-D", ID_D, "ZY004", name="赵六")
    w.add_patient("P-G", "周九", ID_G)
    w.add_inpatient("ZY007", "P-G", "周九", ID_G, ["D01"], admitted=now - timedelta(hours=8))
    w.authorize("APPT-E", ID_E, "ZY005", name="钱七")
    w.authorize("APPT-G", ID_G, "ZY007", name="周九")
