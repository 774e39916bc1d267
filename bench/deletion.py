"""Benchmark: a 15-day deletion run over N shared rows in MariaDB (default N = 10,000,000).

Setup happens inside MariaDB (INSERT … SELECT from the SEQUENCE engine's seq_1_to_N), not row by
row from Python: N rows spread over the shared tables, `rows_per_auth` rows per authorization,
and one auth_record per authorization in the operations schema; `--due-pct` of the
authorizations are past their purge time (visit ended 20 days ago).

Two deletions of the same size run in the same database, so the result compares against a
baseline in the same run:
- baseline: half of the due authorizations, one unbatched `DELETE … WHERE auth_id IN (…)` per table;
- hipbridge: the other half through `purge_shared` (counted safety cap, batched deletes, re-count,
  deletion log, audit).
While each runs, a probe thread writes like a re-push (UPDATE of a live authorization's rows, one
short transaction every 10 ms) and records the slowest: `max_lock_wait_s`.

Output: bench/results/deletion.json with {"rows", "deleted", "seconds", "rows_per_s",
"max_lock_wait_s"} for the hipbridge run, plus the baseline and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT))   # tests.sharing_sample_specs

WEIGHTS = {"op_visit": 1, "diagnosis_detail": 2, "lab_report": 2, "lab_result": 8, "exam_report": 1,
           "op_prescription": 1, "op_prescription_item": 3,
           "lab_bacteria": 1, "lab_susceptibility": 1}


class Probe(threading.Thread):
    """Small concurrent writes on rows the purge does not touch; records the slowest one."""

    def __init__(self, engine, table: str, live_auths: list[str]):
        super().__init__(daemon=True)
        self.engine, self.table, self.live_auths = engine, table, live_auths
        self.stop_flag = threading.Event()
        self.max_wait = 0.0
        self.count = 0

    def run(self) -> None:
        while not self.stop_flag.is_set():
            t0 = time.perf_counter()
            with self.engine.begin() as c:   # a re-push touching live authorizations' rows
                for a in self.live_auths:
                    c.execute(text(f"UPDATE {self.table} SET data_num = data_num + 1 WHERE auth_id = :a LIMIT 5"),
                              {"a": a})
            self.max_wait = max(self.max_wait, time.perf_counter() - t0)
            self.count += 1
            time.sleep(0.01)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rows-per-auth", type=int, default=100)
    ap.add_argument("--due-pct", type=float, default=10.0)
    ap.add_argument("--batch-rows", type=int, default=5000)
    ap.add_argument("--mariadb", default=os.environ.get("HIPBRIDGE_BENCH_MARIADB",
                                                        "mysql+pymysql://root@127.0.0.1:3306/"))
    ap.add_argument("--keep", action="store_true", help="keep the bench databases")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "deletion.json"))
    args = ap.parse_args()

    tag = f"hbbench_del_{os.getpid()}"
    db, ops_schema, share = tag, f"{tag}_ops", f"{tag}_share"
    home = Path(tempfile.mkdtemp(prefix="hbbench-"))
    os.environ.update({"HIPBRIDGE_HOME": str(home), "HIPBRIDGE_OPS_SCHEMA": ops_schema,
                       "HIPBRIDGE_SHARE_SCHEMA": share})
    from hipbridge.spec import load_specs

    from tests.sharing_sample_specs import write_sample_specs

    specs_dir = home / "specs"
    real = load_specs(ROOT / "table_specs")
    if all(t in real.specs for t in WEIGHTS):
        specs = real          # the full specs have landed: bench their layout
    else:
        specs = load_specs(write_sample_specs(specs_dir)).require_valid()
    admin = create_engine(args.mariadb)
    with admin.begin() as c:
        for name in (db, ops_schema, share):
            c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        c.execute(text(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    url = args.mariadb.rstrip("/") + f"/{db}?charset=utf8mb4"
    try:
        result = run(args, url, specs, ops_schema, share)
    finally:
        if not args.keep:
            with admin.begin() as c:
                for name in (db, ops_schema, share):
                    c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _fill_sql(table, spec, defaults, n: int, offset: int, n_auth: int, share: str) -> str:
    """INSERT … SELECT of n rows from seq_1_to_n; every column typed, auth_id = seq mod n_auth."""
    from hipbridge.io.frontend import target_columns

    exprs = []
    names = []
    pk = set(spec.target.primary_key)
    for c in target_columns(spec, defaults):
        names.append(c.name)
        k = c.ctype.kind
        if c.role == "org_code":
            exprs.append("'450100000011'")
        elif c.name in pk or (spec.column(c.name) and spec.column(c.name).reference_target):
            exprs.append(f"CONCAT('K', s.seq + {offset})")
        elif c.role == "org_name":
            exprs.append("'450100000011'")
        elif k == "varchar":
            exprs.append(f"LEFT(CONCAT('v', s.seq), {c.ctype.length})")
        elif k == "decimal":
            exprs.append("(s.seq % 97) / 7")
        elif k == "integer":
            exprs.append("s.seq % 100")
        elif k in ("date", "timestamp"):
            exprs.append("TIMESTAMP('2025-06-01') + INTERVAL (s.seq % 300) DAY")
        else:
            exprs.append("'t'")
    names += ["push_batch_id", "auth_id", "INSTOCK_TIME", "data_num", "row_digest"]
    exprs += [f"CONCAT('PB', (s.seq + {offset}) % {n_auth})", f"CONCAT('AUTH', (s.seq + {offset}) % {n_auth})",
              "NOW()", "1", "SHA2(s.seq, 256)"]
    cols = ", ".join(f"`{n}`" for n in names)
    return (f"INSERT INTO `{share}`.`{table.name}` ({cols}) SELECT {', '.join(exprs)} "
            f"FROM seq_1_to_{n} s")


def run(args, url: str, specs, ops_schema: str, share: str) -> dict:
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.sharing.retention import purge_shared
    from hipbridge.sharing.service import Lifecycle
    from sqlalchemy import bindparam

    life = Lifecycle.open(url, specs, KeyStore(Path(os.environ["HIPBRIDGE_HOME"]) / "keys"))
    store = life.store
    n_auth = max(1, args.rows // args.rows_per_auth)
    total_w = sum(WEIGHTS[t] for t in store.tables)
    t_setup = time.perf_counter()
    eng = store.engine
    offset = 0
    with eng.connect() as c:
        c.execute(text("SET SESSION unique_checks = 0"))
        remaining = args.rows
        tids = list(store.tables)
        for i, tid in enumerate(tids):
            n = remaining if i == len(tids) - 1 else args.rows * WEIGHTS[tid] // total_w
            remaining -= n
            done = 0
            while done < n:   # 2M-row slices keep the undo log bounded
                step = min(2_000_000, n - done)
                c.execute(text(_fill_sql(store.tables[tid], store.specs[tid], specs.defaults, step, offset,
                                         n_auth, share)))
                c.commit()
                offset += step
                done += step
    now = datetime(2026, 6, 1, 2, 0)
    due_n = int(n_auth * args.due_pct / 100)
    ar = life.ops.table("auth_record")
    with life.frontend.begin() as c:
        c.execute(text(
            f"INSERT INTO `{ops_schema}`.auth_record (org_code, appointment_id, patient_key, status, auth_id, "
            "visit_type, visit_date, visit_end, expire_time, legal_hold, created_at, updated_at) "
            f"SELECT '451002000001', CONCAT('AP', s.seq - 1), SHA2(CONCAT('p', s.seq - 1), 256), 'ACTIVE', "
            f"CONCAT('AUTH', s.seq - 1), 'outpatient', :vd, IF(s.seq <= {due_n}, :ve, NULL), :exp, 0, :vd, :vd "
            f"FROM seq_1_to_{n_auth} s"),
            {"vd": now - timedelta(days=21), "ve": now - timedelta(days=20), "exp": now + timedelta(days=30)})
    setup_s = time.perf_counter() - t_setup
    with eng.connect() as c:
        rows = sum(c.execute(text(f"SELECT COUNT(*) FROM `{share}`.`{t.name}`")).scalar_one()
                   for t in store.tables.values())
    print(f"setup: {rows:,} shared rows, {n_auth:,} authorizations ({due_n:,} due) in {setup_s:.0f} s", flush=True)

    # baseline: first half of the due authorizations, one unbatched DELETE per table
    half = due_n // 2
    base_ids = [f"AUTH{i}" for i in range(half)]
    probe_table = f"`{share}`.`{store.tables['lab_result'].name}`" if "lab_result" in store.tables else None
    # live authorizations whose index entries neighbour each run's due ones ('AUTH1000' < 'AUTH10000' <
    # 'AUTH1001'; 'AUTH5000' < 'AUTH50000'), so both runs meet the same gap-lock exposure
    live = [f"AUTH{10 * half}", f"AUTH{10 * (half + 1)}"] if 10 * (half + 1) < n_auth else [f"AUTH{n_auth - 1}"]
    # each probe also touches one due authorization of the run under test: it waits as long as the
    # transaction that deletes that authorization's rows holds their locks
    probe = Probe(eng, probe_table, [*live, f"AUTH{half - 1}"]) if probe_table else None
    if probe:
        probe.start()
    t0 = time.perf_counter()
    base_deleted = 0
    with eng.begin() as c:
        for t in reversed(list(store.tables.values())):
            base_deleted += c.execute(text(f"DELETE FROM `{share}`.`{t.name}` WHERE auth_id IN :ids")
                                      .bindparams(bindparam("ids", expanding=True)), {"ids": base_ids}).rowcount
    base_s = time.perf_counter() - t0
    if probe:
        probe.stop_flag.set()
        probe.join()
    base_wait = probe.max_wait if probe else None
    with life.frontend.begin() as c:   # the baseline's authorizations are done
        c.execute(ar.update().where(ar.c.auth_id.in_(base_ids)).values(purged_at=now))
    print(f"baseline (unbatched): {base_deleted:,} rows in {base_s:.1f} s, max lock wait {base_wait:.3f} s", flush=True)

    probe = Probe(eng, probe_table, [*live, f"AUTH{due_n - 1}"]) if probe_table else None
    if probe:
        probe.start()
    t0 = time.perf_counter()
    rep = purge_shared(life.frontend, life.ops, store, life.keys, now, batch_rows=args.batch_rows,
                       max_share_pct=max(20.0, args.due_pct), cap_min_rows=1000)
    secs = time.perf_counter() - t0
    if probe:
        probe.stop_flag.set()
        probe.join()
    wait = probe.max_wait if probe else None
    assert rep.status == "OK", rep.message
    print(f"hipbridge purge_shared (batched {args.batch_rows}): {rep.deleted:,} rows in {secs:.1f} s, "
          f"max lock wait {wait:.3f} s", flush=True)
    out = {
        "rows": rows, "deleted": rep.deleted, "seconds": round(secs, 2),
        "rows_per_s": round(rep.deleted / secs) if secs else None,
        "max_lock_wait_s": round(wait, 4) if wait is not None else None,
        "patients": rep.candidates, "phase_seconds": {k: round(v, 2) for k, v in rep.timings.items()}, "batch_rows": args.batch_rows, "setup_seconds": round(setup_s, 1),
        "baseline_unbatched": {"deleted": base_deleted, "seconds": round(base_s, 2),
                               "rows_per_s": round(base_deleted / base_s) if base_s else None,
                               "max_lock_wait_s": round(base_wait, 4) if base_wait is not None else None},
        "ratios": {
            "throughput_vs_baseline": round((rep.deleted / secs) / (base_deleted / base_s), 3)
            if secs and base_s and base_deleted else None,
            "max_lock_wait_vs_baseline": round(wait / base_wait, 3) if wait and base_wait else None,
        },
        "probe_updates": probe.count if probe else 0,
        "database": "MariaDB " + _version(eng),
        "measured_at": datetime.now().isoformat(timespec="seconds"),
    }
    return out


def _version(eng) -> str:
    with eng.connect() as c:
        return c.execute(text("SELECT VERSION()")).scalar_one()


if __name__ == "__main__":
    sys.exit(main())
