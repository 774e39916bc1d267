"""Benchmark: the external data page's timeline API over a big shared store, against plain SQL.

Setup (inside MariaDB, INSERT … SELECT from the SEQUENCE engine, not row by row): a shared store of
`--results` lab results (default 1,000,000) for `--patients` patients (default 100,000) — per
patient one visit, one diagnosis, two lab reports of five results, one exam report, one
prescription with two items, all under the patient's authorization — plus one patient with 200
reports. Sessions for `--sessions` sampled patients are opened through the real Launcher state
(auth_record ACTIVE, display_launch with a session token) and the push checks recorded. With
`--store encrypted` (the default) the sampled patients' rows and the 200-report patient's are then
moved into the encrypted tables as ingest does (SM4, blind indexes, row MAC; landing copy deleted),
where the display finds a patient's data once a push is older than `landing_max_minutes`; the other
patients' rows stay in the landing tables (they size the indexes; nobody reads them).

Measured in the same run:
- hipbridge: `GET /shared/timeline` through `hipbridge display serve` (a subprocess, as deployed) by
  `--callers` concurrent callers (default 10), each request a random session: p50 / p99 latency;
- baseline: the same rows read by one plain indexed SQL query (UNION ALL of the shared tables by
  auth_id — the encrypted ones with `--store encrypted`, no decryption — PyMySQL), by the same number
  of concurrent callers: p50 / p99;
- the page of the 200-report patient rendered in headless Chromium (navigation → every item drawn).

Output: bench/results/display.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "bench"))
from shared_store import (  # the bench helper
    ANALYTES,
    ORGS,
    _stats,
    build_store,
    elt,
    fill_table,
    load,
    pct,
    start_service,
    stop_service,
)

ADMIN = os.environ.get("HIPBRIDGE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
NOW = datetime(2026, 3, 2, 9, 0, 0)


def add_heavy_patient(store, cfg, pid: int) -> int:
    """One patient with 200 reports: 120 lab (5 results each), 40 exam, 20 visits, 20 prescriptions."""
    org, orgn = store.defaults.audit("org_code").name, store.defaults.audit("org_name").name
    b = store.cols
    t = store.tables
    base = {org: elt("seq", [o[0] for o in ORGS]), orgn: elt("seq", [o[1] for o in ORGS]),
            b["auth_id"]: f"'A{pid}'", b["batch_id"]: f"'B{pid // 1000}'", b["instock_time"]: "'2026-03-01 00:00:00'",
            b["data_num"]: "1", b["row_digest"]: "REPEAT('0', 64)"}
    def c(kind: str, role: str) -> str:
        return cfg.tables[kind].columns[role]
    day = "TIMESTAMP('2024-01-01 08:00:00') + INTERVAL ({}) DAY"
    with store.engine.begin() as conn:
        fill_table(conn, t["op_visit"], 20, {**base, c("visit", "id"): "CONCAT('HV', seq)",
                   c("visit", "start"): day.format("seq * 20"), c("visit", "dept"): "'心血管内科'"})
        fill_table(conn, t["lab_report"], 120, {**base, c("lab", "id"): "CONCAT('HL', seq)",
                   c("lab", "time"): day.format("seq * 5"), c("lab", "title"): "'血常规+血糖'", c("lab", "hr"): "'1'",
                   c("lab", "item_code"): "'BLD-CBC'"})
        fill_table(conn, t["lab_result"], 600, {**base, org: elt("seq DIV 5", [o[0] for o in ORGS]), orgn: elt("seq DIV 5", [o[1] for o in ORGS]),
                   c("lab_result", "id"): "CONCAT('HR', seq)", c("lab_result", "report"): "CONCAT('HL', seq DIV 5)",
                   c("lab_result", "code"): elt("seq", [a[0] for a in ANALYTES]),
                   c("lab_result", "name"): elt("seq", [a[1] for a in ANALYTES]),
                   c("lab_result", "value"): "CAST(ROUND(3 + (seq * 7919 % 1000) / 10, 2) AS CHAR)",
                   c("lab_result", "abnormal"): "ELT(1 + seq % 4, 'N', 'N', 'H', 'L')",
                   c("lab_result", "time"): day.format("(seq DIV 5) * 5")})
        fill_table(conn, t["exam_report"], 40, {**base, c("exam", "id"): "CONCAT('HE', seq)",
                   c("exam", "time"): day.format("seq * 15"), c("exam", "title"): "'腹部彩超'",
                   c("exam", "findings"): "'肝脏实质回声稍增强。'", c("exam", "conclusion"): "'轻度脂肪肝。'", c("exam", "hr"): "'1'"})
        fill_table(conn, t["op_prescription"], 20, {**base, c("rx", "id"): "CONCAT('HP', seq)",
                   c("rx", "time"): day.format("seq * 20 + 1")})
    return 200


def encrypt_patients(life, pids: list[int]) -> int:
    """Move these patients' rows from the landing tables into the encrypted ones, as ingest does
    (SM4 on the personal columns, blind indexes, row MAC; landing copy deleted): where the display
    reads a patient's data once a push is older than `landing_max_minutes`."""
    from hipbridge.sharing.secure import protect_row

    auth = life.store.cols["auth_id"]
    auth_ids = [f"A{pid}" for pid in pids]
    moved = 0
    with life.store.engine.begin() as conn:
        for tid, st in life.secure.tables.items():
            lt = life.store.tables[tid]
            for i in range(0, len(auth_ids), 200):
                chunk = auth_ids[i:i + 200]
                rows = [dict(r) for r in conn.execute(lt.select().where(lt.c[auth].in_(chunk))).mappings()]
                if rows:
                    conn.execute(st.table.insert(), [protect_row(st, r, life.cipher, life.keys) for r in rows])
                    conn.execute(lt.delete().where(lt.c[auth].in_(chunk)))
                    moved += len(rows)
    return moved


def open_sessions(life, pids: list[int]) -> list[str]:
    """The state a redeemed launch leaves behind: ACTIVE authorization, display_launch with a session token."""
    from hipbridge.crypto.fields import encrypt_field
    from hipbridge.crypto.sm import sm3_hex

    ar, dl, pc = life.ops.table("auth_record"), life.ops.table("display_launch"), life.ops.table("push_check")
    tokens = []
    with life.frontend.begin() as conn:
        for pid in pids:
            res = conn.execute(ar.insert().values(
                org_code=life.org_code, appointment_id=f"BENCH{pid}", patient_key=f"{pid:064d}", status="ACTIVE",
                auth_id=f"A{pid}", visit_type="outpatient", visit_date=NOW, visit_no=f"HV{pid}",
                expire_time=NOW + timedelta(days=365), legal_hold=False, created_at=NOW, updated_at=NOW))
            tok = secrets.token_urlsafe(32)
            conn.execute(dl.insert().values(
                launch_sm3=sm3_hex(secrets.token_bytes(16)), session_sm3=sm3_hex(tok.encode()), caller="bench",
                org_code=life.org_code, visit_id=f"HV{pid}", doctor_id="D01", dept_id="0101", purpose="VIEW",
                patient_key=f"{pid:064d}", auth_record_id=res.inserted_primary_key[0], auth_id=f"A{pid}", decision="ok",
                context=encrypt_field(life.keys, json.dumps({"patientId": f"P{pid}", "patientName": "测试患者",
                                                               "idNoMasked": "**************1234", "doctorName": "李医生"},
                                                              ensure_ascii=False)),
                created_at=NOW, expires_at=NOW, used_at=NOW, session_expires_at=NOW + timedelta(days=3650)))
            tokens.append(tok)
        batches = sorted({f"B{pid // 1000}" for pid in pids})
        tables = [t.name for t in life.store.tables.values()]
        conn.execute(pc.insert(), [{"batch_id": bt, "table_name": tn, "table_id": None, "status": "PASSED",
                                    "blocking": 0, "warnings": 0, "checked_at": NOW} for bt in batches for tn in tables])
    return tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--callers", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=1,
                    help="uvicorn worker processes of the display service (`hipbridge display serve --workers`, "
                         "default 1: faster than 2 on this 2-core machine, see docs/display.md)")
    ap.add_argument("--store", choices=("encrypted", "landing"), default="encrypted",
                    help="where the sessions' patients' rows are: the encrypted tables (after ingest, the usual "
                         "case) or the landing tables (the first minutes after a push)")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "display.json"))
    args = ap.parse_args()

    name = f"hbbench_display_{os.getpid()}_{uuid.uuid4().hex[:4]}"
    dbs = [name, f"{name}_ops", f"{name}_share", f"{name}_share_secure"]
    admin = create_engine(ADMIN)
    with admin.begin() as c:
        c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    home = Path(tempfile.mkdtemp(prefix="hbbench_display_"))
    env = {**os.environ, "HIPBRIDGE_OPS_SCHEMA": dbs[1], "HIPBRIDGE_SHARE_SCHEMA": dbs[2], "HIPBRIDGE_HOME": str(home),
           "PYTHONPATH": str(ROOT / "plugins")}
    os.environ.update({k: env[k] for k in ("HIPBRIDGE_OPS_SCHEMA", "HIPBRIDGE_SHARE_SCHEMA", "HIPBRIDGE_HOME")})
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4&local_infile=1"
    server = None
    try:
        import hipbridge.display.state  # noqa: F401
        from hipbridge.crypto.keys import KeyStore
        from hipbridge.display.config import display_config
        from hipbridge.sharing.service import Lifecycle
        from hipbridge.spec import load_specs

        cfg = display_config()
        life = Lifecycle.open(url, load_specs().require_valid(), KeyStore(home / "keys"))
        dbs.append(life.secure.schema)
        t0 = time.perf_counter()
        counts = build_store(life.store, cfg, args.patients, args.results)
        heavy = args.patients
        add_heavy_patient(life.store, cfg, heavy)
        with life.store.engine.begin() as c:
            for tb in life.store.tables.values():
                c.execute(text(f"ANALYZE TABLE `{tb.name}`"))
        build_s = time.perf_counter() - t0
        print(f"shared store built in {build_s:.1f} s: {counts}", flush=True)
        rng = random.Random(1)
        pids = rng.sample(range(args.patients), args.sessions)
        tokens = open_sessions(life, pids)
        heavy_token = open_sessions(life, [heavy])[0]
        encrypted_rows = 0
        if args.store == "encrypted":
            t0 = time.perf_counter()
            encrypted_rows = encrypt_patients(life, [*pids, heavy])
            print(f"{encrypted_rows} rows of {len(pids) + 1} patients encrypted in {time.perf_counter() - t0:.1f} s",
                  flush=True)

        server, base = start_service(url, env, home / "serve.log", "--workers", str(args.workers))
        import httpx

        def api(tok, client):
            r = client.get("/shared/timeline", headers={"X-HB-Session": tok})
            assert r.status_code == 200, r.text
            return r
        api.setup = lambda: httpx.Client(base_url=base, trust_env=False, timeout=30)   # type: ignore[attr-defined]
        sample = api(tokens[0], api.setup()).json()
        items_per_patient = len(sample["items"])

        # the same rows by one plain indexed query: every shared table by auth_id (rows as JSON, the
        # tables differ in width), no session, no shaping, no audit
        parts = []
        for k in ("visit", "diagnosis", "lab", "lab_result", "exam", "rx", "rx_item"):
            tid = cfg.tables[k].table
            tb = life.secure.tables[tid].table if args.store == "encrypted" else life.store.tables[tid]
            cols = ", ".join(f"'{c.name}', `{c.name}`" for c in tb.columns)
            parts.append(f"SELECT '{k}' AS kind, JSON_OBJECT({cols}) AS row_json FROM `{tb.schema or dbs[2]}`.`{tb.name}` "
                         f"WHERE auth_id = %s")
        union = " UNION ALL ".join(parts)
        import pymysql

        def sql(pid, conn):
            with conn.cursor() as cur:
                cur.execute(union, [f"A{pid}"] * len(parts))
                return cur.fetchall()
        sql.setup = lambda: pymysql.connect(host="127.0.0.1", user="root", database=dbs[2], charset="utf8mb4",  # type: ignore[attr-defined]
                                            autocommit=True)
        rows_per_patient = len(sql(pids[0], sql.setup()))

        print("warm-up …", flush=True)
        load(api, tokens, args.callers, 3)
        load(sql, pids, args.callers, 2)
        print(f"timeline API, {args.callers} callers, {args.seconds:.0f} s …", flush=True)
        api_lat = load(api, tokens, args.callers, args.seconds)
        print(f"plain SQL, {args.callers} callers, {args.seconds:.0f} s …", flush=True)
        sql_lat = load(sql, pids, args.callers, args.seconds)
        single_api = load(api, tokens, 1, 5)
        single_sql = load(sql, pids, 1, 5)

        page_ms = render_page(base, cfg.launch.cookie, heavy_token)
        out = {
            "store": {"results": counts["lab_result"], "patients": args.patients, "rows": sum(counts.values()),
                      "tables": counts, "build_s": round(build_s, 1)},
            "store_read": args.store, "encrypted_rows": encrypted_rows,
            "callers": args.callers, "seconds": args.seconds, "workers": args.workers,
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "items_per_patient": items_per_patient, "rows_per_patient": rows_per_patient,
            "timeline_api": _stats(api_lat), "plain_sql": _stats(sql_lat),
            "ratio_p50": round(statistics.median(api_lat) / statistics.median(sql_lat), 2),
            "ratio_p99": round(pct(api_lat, 99) / pct(sql_lat, 99), 2),
            "single_caller": {"timeline_api": _stats(single_api), "plain_sql": _stats(single_sql),
                              "ratio_p50": round(statistics.median(single_api) / statistics.median(single_sql), 2)},
            "page_200_reports_ms": page_ms,
            "targets": {"p99_ms": 100, "ratio": 2, "page_ms": 1000},
            "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    finally:
        if server is not None:
            stop_service(server)
        if not args.keep:
            from hipbridge.io.engines import dispose_all

            dispose_all()
            with admin.begin() as c:
                for d in dbs:
                    c.execute(text(f"DROP DATABASE IF EXISTS `{d}`"))


def render_page(base: str, cookie: str, token: str, runs: int = 5) -> dict[str, float]:
    """Navigation to every one of the 200 items drawn, in headless Chromium (median of `runs`)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        ctx = b.new_context()
        ctx.add_cookies([{"name": cookie, "value": token, "url": base + "/shared/"}])
        page = ctx.new_page()
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            page.goto(base + "/shared/ui")
            page.wait_for_selector("body[data-loaded='1']")
            times.append((time.perf_counter() - t0) * 1000)
            n = page.locator(".item").count()
            assert n == 200, n
        b.close()
    times = times[1:]   # the first navigation also starts the renderer
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1), "items": 200, "runs": runs}


if __name__ == "__main__":
    sys.exit(main())
