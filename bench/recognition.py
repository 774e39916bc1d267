"""Benchmark: the 互认 reminder's `order-select` hook over a big shared store, against plain SQL.

Setup: the shared store of bench/display.py (`shared_store.build_store`: `--results` lab results,
default 1,000,000, for `--patients` patients, default 100,000), its lab reports carrying 互认 item codes
(肝功能 / 血脂四项 / 空腹血糖, 30-day windows, and 血常规 without a window) and report dates spread over
the last 45 days, all HR-marked, from two other hospitals. `--sessions` sampled patients (default 500)
get an open outpatient visit in the front-end (HZJBXXB / MZJZJL), doctor D01, and an ACTIVE
authorization, as a real grant leaves them; push checks are recorded PASSED.

Measured in the same run, by `--callers` concurrent callers (default 10): first each patient's first call
(its reminder rows created, 提醒记录 queued and uploaded), then — the uploads drained — calls for
random patients for `--seconds`:
- hipbridge: `POST /cds-services/hipbridge-hr-order-select` through `hipbridge display serve
  --simulate-platform` (a subprocess, as deployed; 提醒记录 uploads go to the simulated platform) with
  3 draft orders (GGN, XZ4, KFXT): the display's access decision, the store read, the engine, the
  reminder rows, the launch link, the audit — p50 / p99;
- baseline: the same question as one plain indexed SQL query (the patient's HR-marked lab reports of
  the three items inside the window, not ours, batch not rejected, newest first), PyMySQL: p50 / p99.

Output: bench/results/recognition.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import MetaData, create_engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "bench"))
from shared_store import _stats, build_store, elt, load, pct, start_service, stop_service  # the bench helper

ADMIN = os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
ORDERS = [("GGN", "HRJY0002"), ("XZ4", "HRJY0004"), ("KFXT", "HRJY0005")]   # lis_panel → 互认 item (30 days)
ITEMS = [code for _, code in ORDERS] + ["HRJY0001"]                         # + 血常规: no window
OS = "hipbridge-hr-order-select"


def _value(col):
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
    return "X1"[: getattr(col.type, "length", None) or 2]


def hospital_side(life, specs, pids: list[int], now: datetime) -> None:
    """Each sampled patient: HZJBXXB + an open MZJZJL visit (doctor D01) + an ACTIVE authorization A<pid>."""
    from hipbridge.io.frontend import create_frontend, target_table

    tables = ["patient_info", "staff_info", "op_visit", "ip_admission", "ip_discharge", "ip_order"]
    create_frontend(life.frontend, specs, tables=tables)
    md = MetaData()
    t = {k: target_table(specs.get(k), specs.defaults, md, life.frontend.dialect.name) for k in tables}
    org = specs.defaults.audit("org_code").name

    def row(table, **values):
        r = {org: life.org_code, "XGBZ": "1", **values}
        for c in table.columns:
            if c.name not in r and not c.nullable:
                r[c.name] = _value(c)
        return r
    ar = life.ops.table("auth_record")
    with life.frontend.begin() as conn:
        conn.execute(insert(t["staff_info"]).values(row(t["staff_info"], ZGDM="SD01", ZGGH="D01", XM="李医生")))
        conn.execute(insert(t["patient_info"]), [row(t["patient_info"], HZWYBSH=f"P{p}", XM="测试患者", ZJLXDM="01",
                                                     ZJHM=f"4510021980{p:08d}") for p in pids])
        conn.execute(insert(t["op_visit"]), [row(t["op_visit"], MZJZLSH=f"OV{p}", GHLSH=f"GH{p}", HZWYBSH=f"P{p}",
                                                 JZYSGH="D01", JZKSDM="0101", JZKSMC="内分泌科",
                                                 JZKSSJ=now - timedelta(hours=1), JZJSSJ=now + timedelta(days=1))
                                             for p in pids])
        conn.execute(ar.insert(), [{
            "org_code": life.org_code, "appointment_id": f"BENCH{p}", "status": "ACTIVE", "auth_id": f"A{p}",
            "patient_key": life.keys.patient_key("01", f"4510021980{p:08d}"), "visit_type": "outpatient",
            "visit_date": now, "visit_no": f"OV{p}", "expire_time": now + timedelta(days=365), "legal_hold": False,
            "created_at": now, "updated_at": now} for p in pids])
        batches = sorted({f"B{p // 1000}" for p in pids})
        pc = life.ops.table("push_check")
        conn.execute(pc.insert(), [{"batch_id": bt, "table_name": tn.name, "table_id": None, "status": "PASSED",
                                    "blocking": 0, "warnings": 0, "checked_at": now}
                                   for bt in batches for tn in life.store.tables.values()])


def each_once(fn, args_list: list, callers: int) -> list[float]:
    """`callers` threads share `args_list`, each argument called once; latencies in ms."""
    import threading

    todo, lat, lock = list(args_list), [], threading.Lock()

    def worker() -> None:
        state = fn.setup() if hasattr(fn, "setup") else None
        while True:
            with lock:
                if not todo:
                    return
                a = todo.pop()
            t0 = time.perf_counter()
            fn(a, state)
            with lock:
                lat.append((time.perf_counter() - t0) * 1000)
    threads = [threading.Thread(target=worker) for _ in range(callers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat


def wait_uploads(life, seconds: float = 300) -> int:
    """Wait until the 提醒记录 the first calls queued have left the outbox; the rows still waiting."""
    ob = life.ops.table("outbox")
    from sqlalchemy import func, select

    deadline = time.monotonic() + seconds
    while True:
        with life.frontend.connect() as c:
            n = c.execute(select(func.count()).select_from(ob).where(ob.c.kind == "hr_remind",
                                                                     ob.c.status.in_(["NEW", "SENT"]))).scalar()
        if not n or time.monotonic() > deadline:
            return int(n or 0)
        time.sleep(1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--sessions", type=int, default=500, help="patients with an open visit the callers pick from")
    ap.add_argument("--callers", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "recognition.json"))
    args = ap.parse_args()

    name = f"hbbench_rec_{os.getpid()}_{uuid.uuid4().hex[:4]}"
    dbs = [name, f"{name}_ops", f"{name}_share", f"{name}_share_secure"]
    admin = create_engine(ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    home = Path(tempfile.mkdtemp(prefix="hbbench_rec_"))
    env = {**os.environ, "HIPBRIDGE_OPS_SCHEMA": dbs[1], "HIPBRIDGE_SHARE_SCHEMA": dbs[2], "HIPBRIDGE_HOME": str(home),
           "PYTHONPATH": str(ROOT / "plugins")}
    os.environ.update({k: env[k] for k in ("HIPBRIDGE_OPS_SCHEMA", "HIPBRIDGE_SHARE_SCHEMA", "HIPBRIDGE_HOME")})
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4&local_infile=1"
    server = None
    try:
        import hipbridge.display.state
        import hipbridge.recognition.state  # noqa: F401
        from hipbridge.crypto.keys import KeyStore, provision_pair
        from hipbridge.demo.external import platform_keys
        from hipbridge.display.config import display_config
        from hipbridge.io.ops import ensure_ops
        from hipbridge.sharing.door import add_caller
        from hipbridge.sharing.service import Lifecycle
        from hipbridge.spec import load_specs

        cfg = display_config()
        specs = load_specs().require_valid()
        keys = KeyStore(home / "keys")
        provision_pair(keys, platform_keys())
        life = Lifecycle.open(url, specs, keys)
        ensure_ops(life.frontend, life.ops.schema)
        now = life.now()
        lab = cfg.tables["lab"].columns
        t0 = time.perf_counter()
        days_back = f"TIMESTAMP('{now:%Y-%m-%d %H:%M:%S}') - INTERVAL (seq % 45) DAY - INTERVAL (seq % 7) HOUR"
        counts = build_store(life.store, cfg, args.patients, args.results, extra={"lab_report": {
            lab["recognition_code"]: elt("seq", ITEMS), lab["time"]: days_back}})
        with life.store.engine.begin() as c:
            for tb in life.store.tables.values():
                c.execute(text(f"ANALYZE TABLE `{tb.name}`"))
        build_s = time.perf_counter() - t0
        print(f"shared store built in {build_s:.1f} s: {counts}", flush=True)
        pids = random.Random(1).sample(range(args.patients), args.sessions)
        hospital_side(life, specs, pids, now)
        token = add_caller(keys, "bench-his", roles=("workstation",))

        log_path = home / "serve.log"
        server, base = start_service(url, env, log_path, "--simulate-platform")
        import httpx

        def body(pid: int) -> dict:
            entries = [{"resource": {"resourceType": "ServiceRequest", "id": f"o{i}", "status": "draft",
                                     "intent": "order", "category": [{"coding": [{"code": "laboratory"}]}],
                                     "code": {"coding": [{"code": local}]}}} for i, (local, _) in enumerate(ORDERS)]
            return {"hook": "order-select", "hookInstance": uuid.uuid4().hex,
                    "context": {"userId": "Practitioner/D01", "patientId": f"P{pid}", "encounterId": f"OV{pid}",
                                "draftOrders": {"resourceType": "Bundle", "entry": entries},
                                "selections": [f"ServiceRequest/o{i}" for i in range(len(ORDERS))]}}

        cards_seen: list[int] = []

        def hook(pid, client):
            r = client.post(f"/cds-services/{OS}", json=body(pid))
            assert r.status_code == 200, r.text
            cards_seen.append(len(r.json()["cards"]))
            return r
        hook.setup = lambda: httpx.Client(base_url=base, trust_env=False, timeout=30,   # type: ignore[attr-defined]
                                          headers={"Authorization": f"Bearer {token}"})

        # the same question, one plain indexed query: the patient's HR-marked reports of the three items,
        # inside the 30-day window, not ours, batch not rejected by push-back verification, newest first
        lr = life.store.tables[cfg.tables["lab"].table]
        org_col = specs.defaults.audit("org_code").name
        q = (f"SELECT r.`{lab['recognition_code']}`, r.`{lab['id']}`, r.`{org_col}`, r.`{lab['time']}` "
             f"FROM `{dbs[2]}`.`{lr.name}` r WHERE r.`{life.store.cols['auth_id']}` = %s AND r.`{lab['recognition_code']}` IN (%s, %s, %s) "
             f"AND r.`{lab['hr']}` = '1' AND r.`{lab['time']}` >= %s AND r.`{org_col}` <> %s "
             f"AND NOT EXISTS (SELECT 1 FROM `{dbs[1]}`.push_check pc WHERE pc.batch_id = r.`{life.store.cols['batch_id']}` "
             f"AND pc.table_name = %s AND pc.status = 'REJECTED') ORDER BY r.`{lab['time']}` DESC")
        import pymysql

        since = datetime.combine(now.date() - timedelta(days=30), datetime.min.time())

        def sql(pid, conn):
            with conn.cursor() as cur:
                cur.execute(q, [f"A{pid}", *[c for _, c in ORDERS], since, life.org_code, lr.name])
                return cur.fetchall()
        sql.setup = lambda: pymysql.connect(host="127.0.0.1", user="root", database=dbs[2],  # type: ignore[attr-defined]
                                            charset="utf8mb4", autocommit=True)
        check = [len(sql(p, sql.setup())) for p in pids[:50]]
        print(f"first call for each of the {len(pids)} patients ({args.callers} callers) …", flush=True)
        first_lat = each_once(hook, pids, args.callers)
        first_cards = list(cards_seen)
        left = wait_uploads(life)
        print(f"提醒记录 uploads drained ({left} left); warm-up …", flush=True)
        load(hook, pids, args.callers, 3)
        load(sql, pids, args.callers, 2)
        cards_seen.clear()
        print(f"order-select, {args.callers} callers, {args.seconds:.0f} s …", flush=True)
        api_lat = load(hook, pids, args.callers, args.seconds)
        cards = list(cards_seen)
        print(f"plain SQL, {args.callers} callers, {args.seconds:.0f} s …", flush=True)
        sql_lat = load(sql, pids, args.callers, args.seconds)
        single_api = load(hook, pids, 1, 5)
        single_sql = load(sql, pids, 1, 5)
        out = {
            "store": {"results": counts["lab_result"], "patients": args.patients, "rows": sum(counts.values()),
                      "lab_reports": counts["lab_report"], "build_s": round(build_s, 1)},
            "callers": args.callers, "seconds": args.seconds, "orders_per_call": len(ORDERS),
            "sessions": args.sessions, "cards_per_call_mean": round(statistics.mean(cards), 2) if cards else None,
            "rows_per_query_mean": round(statistics.mean(check), 2),
            "first_call": _stats(first_lat) | {"cards_mean": round(statistics.mean(first_cards), 2),
                                               "note": "each patient's first order-select: reminder rows created, "
                                                       "提醒记录 queued and uploaded (SM2) in the same process"},
            "uploads_left_after_first_calls": left,
            "order_select": _stats(api_lat), "plain_sql": _stats(sql_lat),
            "ratio_p50": round(statistics.median(api_lat) / statistics.median(sql_lat), 2),
            "ratio_p99": round(pct(api_lat, 99) / pct(sql_lat, 99), 2),
            "single_caller": {"order_select": _stats(single_api), "plain_sql": _stats(single_sql),
                              "ratio_p50": round(statistics.median(single_api) / statistics.median(single_sql), 2)},
            "targets": {"p99_ms": 100, "ratio": 2},
            "machine": {"cpus": os.cpu_count()},     # the load it shared the cores with: loadavg_at_end
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    finally:
        if server is not None:
            stop_service(server)
            print(f"server log: {log_path}", flush=True)
        if not args.keep:
            from hipbridge.io.engines import dispose_all

            dispose_all()
            with admin.begin() as c:
                for d in dbs:
                    c.execute(text(f"DROP DATABASE IF EXISTS `{d}`"))


if __name__ == "__main__":
    sys.exit(main())
