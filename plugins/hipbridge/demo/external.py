"""`make demo`'s external data: other hospitals' data for some demo patients, through the simulator.

For a few open inpatient stays of the demo hospital (config/display/demo_patients.sql) the patient
is booked with consent, the simulated platform grants and pushes that patient's data from other
hospitals into the shared store, the visit is recorded and the pushes verified: exactly the path
a real authorization takes. A workstation caller token for `hipbridge display open` is kept in
`$HIPBRIDGE_HOME/demo/display_demo.json` (mode 0600; demo only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hipbridge.crypto.keys import KeyStore, provision_pair
from hipbridge.demo.simulator import ServerThread, create_app
from hipbridge.display.config import display_config
from hipbridge.io.engines import home
from hipbridge.platform.config import config_dir
from hipbridge.platform.outbox import Booking, enqueue_grant, record_visit
from hipbridge.sharing.callers import CallerStore
from hipbridge.sharing.service import Lifecycle

DEMO_FILE = "display_demo.json"


def demo_file() -> Path:
    return home() / "demo" / DEMO_FILE


def platform_keys():
    return KeyStore(home() / "platform_keys")


def fill_shared_demo(patients: int = 3, seed: int = 7) -> dict[str, Any]:
    life = Lifecycle.open()
    pk = platform_keys()
    provision_pair(life.keys, pk)
    sql = text((config_dir() / "display" / "demo_patients.sql").read_text(encoding="utf-8"))
    with life.frontend.connect() as conn:
        rows = [dict(r) for r in conn.execute(sql, {"org_code": life.org_code, "limit": patients}).mappings()]
    now = life.now()
    visits = []
    with ServerThread(create_app(pk, life.store, clock=life.now, seed=seed)) as sim:
        client = life.client(base_url=sim.url)
        for r in rows:
            appointment = f"DEMO-{r['visit_id']}"[:32]
            enqueue_grant(life.frontend, life.ops, life.keys, life.org_code, life.org_name, Booking(
                appointment_id=appointment, patient_name=r["patient_name"], patient_id_type=r["id_type"],
                patient_id_no=r["id_no"], visit_date=now, visit_type="inpatient", consent_time=now), now)
        rep = life.drain_outbox(client)
        client.close()
    for r in rows:
        record_visit(life.frontend, life.ops, life.keys, life.org_code, f"DEMO-{r['visit_id']}"[:32], now,
                     visit_no=r["visit_id"], start=now)
        visits.append({"visitId": r["visit_id"], "patientId": r["patient_id"], "doctorId": r["doctor_id"],
                       "name": r["patient_name"]})
    verified = life.verify(now)
    token = CallerStore.for_keys(life.keys).create("demo-workstation", ["workstation"])
    cfg = display_config()
    out = {"url": f"http://{cfg.server.host}:{cfg.server.port}", "token": token, "visits": visits,
           "granted": rep.acked, "batches": len(verified.batches)}
    path = demo_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=2)
    return out
