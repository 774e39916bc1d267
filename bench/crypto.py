"""Benchmark: field encryption at rest (issue 12), each figure against a baseline of the same run.

1. SM4 field encryption throughput: `FieldCipher.encrypt_many` (SM4-CBC in OpenSSL through
   `cryptography`, random IV, `v1:<key_id>:<iv>:<ct>`) against gmssl's pure-Python `CryptSM4` doing
   the same per value (same IV source, same token). gmssl's ciphertext is decrypted by ours to show
   both compute the same thing. Target ≥ 10×.
2. Transfer slowdown with the sensitive data encrypted where configured: a real `sync_table` from a
   MariaDB source into a MariaDB front-end, with 1 % dirty rows whose raw rows are SM4-encrypted in
   quarantine, against the same transfer with the quarantine protector replaced by the identity in
   this process (baseline). Alternating runs, best of each. Target ≤ 1.2×.
2b. The front-end switch (config/crypto.yaml `frontend.tables`, docs §3.4): the demo hospital's
   27 specs (HIS/LIS/PACS built once, `hipbridge.demo.build`) transferred end to end (`sync_table`
   of every table in dependency order, full mode) into a fresh MariaDB front-end, with every
   spec's `sensitive` columns SM4-encrypted in the business tables ("on") against the switch off
   ("off", the shipped default). Same data; paired per table (each table run into both front-ends
   back to back, alternating which first), best of each table over the repetitions; also this
   process's CPU time. Target ≤ 1.2×.
3. Ingest into the encrypted shared store: `ingest()` (SM4 on the sensitive and encrypt_also
   columns, blind indexes, row MAC, delete of the landing copy) against the same move without any
   cryptography (INSERT … SELECT + DELETE on the server), rows/s.
4. Blind-index lookup latency: `find_rows(id_type, id_no)` over the encrypted store (p50 / p95), against
   an equality query on an indexed plaintext column of the same size.

Output: bench/results/crypto.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
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
sys.path.insert(0, str(ROOT))


def _values(n: int) -> list[str]:
    names = ["张三", "李四", "王小五", "欧阳娜娜", "赵六"]
    out = []
    for i in range(n):
        kind = i % 3
        out.append(names[i % 5] if kind == 0 else (f"45010219{i % 90 + 10:02d}0101{i % 10000:04d}" if kind == 1
                                                   else f"139{i % 100000000:08d}"))
    return out


def bench_sm4(ring, n: int) -> dict:
    from gmssl.sm4 import SM4_DECRYPT, SM4_ENCRYPT, CryptSM4
    from hipbridge.crypto.fields import FieldCipher

    values = _values(n)
    cipher = FieldCipher(ring)
    key_id, key = ring.active("data")
    t0 = time.perf_counter()
    ours = cipher.encrypt_many(values)
    t_ours = time.perf_counter() - t0

    gm = CryptSM4()
    gm.set_key(key, SM4_ENCRYPT)
    t0 = time.perf_counter()
    theirs = []
    for v in values:
        iv = secrets.token_bytes(16)
        ct = gm.crypt_cbc(iv, v.encode("utf-8"))
        theirs.append(f"v1:{key_id}:{base64.b64encode(iv).decode()}:{base64.b64encode(ct).decode()}")
    t_gm = time.perf_counter() - t0
    assert [cipher.decrypt(t) for t in theirs[:500]] == values[:500]     # the same SM4-CBC + PKCS#7
    dec = CryptSM4()
    dec.set_key(key, SM4_DECRYPT)
    _, _, iv, ct = ours[0].split(":")
    assert dec.crypt_cbc(base64.b64decode(iv), base64.b64decode(ct)).decode() == values[0]
    t0 = time.perf_counter()
    for t in ours:
        cipher.decrypt(t)
    t_dec = time.perf_counter() - t0
    return {"values": n, "hipbridge_values_per_s": round(n / t_ours), "gmssl_values_per_s": round(n / t_gm),
            "ratio": round(t_gm / t_ours, 1), "hipbridge_decrypt_values_per_s": round(n / t_dec),
            "target": "≥ 10×", "met": t_gm / t_ours >= 10}


def bench_transfer(admin: str, rows: int, runs: int) -> dict:
    from hipbridge.io.engines import dispose_all
    from hipbridge.pipeline import run as pipeline_run
    from hipbridge.pipeline import transfer as pipeline_transfer
    from hipbridge.pipeline.context import Context

    from tests.transfer_helpers import SourceHospital

    real = pipeline_transfer.quarantine_protector
    times: dict[str, list[float]] = {"encrypted": [], "baseline": []}
    counts = {}
    tmp = Path(tempfile.mkdtemp(prefix="hb_bench_crypto_"))
    src = SourceHospital(admin, f"hbbench_src_{uuid.uuid4().hex[:8]}", tmp / "src", rows=rows, chunk=20_000)
    src.execute("UPDATE visit_src SET name = CONVERT('欧阳娜娜娜' USING utf8mb4), "
                "note = '身份证 450102199001011234 电话 13912345678' WHERE id LIKE '%17' OR id LIKE '%71'")
    os.environ["HIPBRIDGE_CONN_SRC"] = src.url
    try:
        for i in range(runs):
            for variant in ("encrypted", "baseline") if i % 2 == 0 else ("baseline", "encrypted"):
                fe = f"hbbench_fe_{uuid.uuid4().hex[:8]}"
                os.environ["HIPBRIDGE_OPS_SCHEMA"] = f"{fe}_ops"
                eng = create_engine(admin)
                with eng.begin() as c:
                    c.execute(text(f"CREATE DATABASE `{fe}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
                url = f"{admin.rstrip('/')}/{fe}?charset=utf8mb4&local_infile=1"
                try:
                    pipeline_transfer.quarantine_protector = real if variant == "encrypted" else (
                        lambda *_a, **_k: (lambda rows: rows))
                    ctx = Context.create(src.specs, url)
                    ctx.ensure_frontend(["visit"])
                    if variant == "encrypted":
                        real(ctx.engine, ctx.ops_schema, ctx.specs.get("visit"))   # key made before timing
                    t0 = time.perf_counter()
                    r = pipeline_run.sync_table("visit", "full", ctx=ctx)
                    times[variant].append(time.perf_counter() - t0)
                    counts = {"extracted": r.extracted, "quarantined": r.quarantined, "published": r.published}
                finally:
                    pipeline_transfer.quarantine_protector = real
                    dispose_all()
                    with eng.begin() as c:
                        c.execute(text(f"DROP DATABASE IF EXISTS `{fe}`"))
                        c.execute(text(f"DROP DATABASE IF EXISTS `{fe}_ops`"))
                    eng.dispose()
    finally:
        src.drop()
    best = {k: min(v) for k, v in times.items()}
    return {"rows": rows, **counts, "encrypted_s": round(best["encrypted"], 2), "baseline_s": round(best["baseline"], 2),
            "slowdown": round(best["encrypted"] / best["baseline"], 3), "runs": times, "target": "≤ 1.2×",
            "met": best["encrypted"] / best["baseline"] <= 1.2}


def _switch_config(tmp: Path, specs) -> tuple[Path, list[str], int]:
    """A copy of config/ whose crypto.yaml encrypts every spec's sensitive columns in the front-end."""
    import shutil

    config = tmp / "config_on"
    shutil.copytree(ROOT / "config", config)
    tables = sorted(t for t, s in specs.specs.items() if any(c.sensitive for c in s.columns))
    path = config / "crypto.yaml"
    body = path.read_text(encoding="utf-8")
    assert "  tables: {}" in body
    path.write_text(body.replace("  tables: {}", "  tables: {" + ", ".join(f"{t}: sensitive" for t in tables) + "}",
                                 1), encoding="utf-8")
    return config, tables, sum(sum(c.sensitive for c in specs.specs[t].columns) for t in tables)


def bench_frontend_switch(admin: str, scale: float, days: int, runs: int) -> dict:
    """The 27 demo specs into MariaDB with the front-end switch on (sensitive columns) and off.

    Paired per table: each repetition has two fresh front-ends, one per variant, and every table is
    run in both back to back (which goes first alternates), so the load of the shared machine
    falls on both alike. Totals are the best repetition; `paired` sums each table's best."""
    from hipbridge.airflow.embedded import dependency_order
    from hipbridge.crypto.atrest import forget_keyrings, keyring_for
    from hipbridge.demo import build
    from hipbridge.io.engines import dispose_all
    from hipbridge.pipeline import run as pipeline_run
    from hipbridge.pipeline.context import Context

    tmp = Path(tempfile.mkdtemp(prefix="hb_bench_switch_"))
    saved = {k: os.environ.get(k) for k in ("HIPBRIDGE_HOME", "HIPBRIDGE_CONFIG", "HIPBRIDGE_OPS_SCHEMA",
                                            "HIPBRIDGE_FRONTEND_URL")}
    os.environ["HIPBRIDGE_HOME"] = str(tmp / "home")
    os.environ.pop("HIPBRIDGE_CONFIG", None)
    t0 = time.perf_counter()
    build(tmp / "home" / "demo", days=days, scale=scale, register=True)
    build_s = time.perf_counter() - t0
    eng = create_engine(admin)
    wall: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}      # this process's CPU (conform, encryption, …)
    per_table: dict[str, dict[str, float]] = {"on": {}, "off": {}}
    rows: dict[str, int] = {}
    encrypt_runs: list[tuple[float, int]] = []   # (seconds in FrontendEncryptor, values encrypted) per repetition
    config_on, encrypted_ids, n_cols = None, [], 0
    from hipbridge.crypto import frontend as crypto_frontend

    real_call = crypto_frontend.FrontendEncryptor.__call__
    spent = {"s": 0.0, "values": 0}

    def timed_call(self, frame):   # measure only: the encryption conform does in the "on" runs
        t = time.perf_counter()
        try:
            return real_call(self, frame)
        finally:
            spent["s"] += time.perf_counter() - t
            spent["values"] += len(frame) * len(self.columns)

    crypto_frontend.FrontendEncryptor.__call__ = timed_call

    def use(variant: str, fe: str) -> None:   # what the code under test reads at call time
        os.environ["HIPBRIDGE_OPS_SCHEMA"] = f"{fe}_ops"
        if variant == "on":
            os.environ["HIPBRIDGE_CONFIG"] = str(config_on)
        else:
            os.environ.pop("HIPBRIDGE_CONFIG", None)

    try:
        for rep in range(runs + 1):            # repetition 0 warms up (imports, caches, page cache): not timed
            dbs = {v: f"hbbench_fe_{uuid.uuid4().hex[:8]}" for v in ("on", "off")}
            ctxs = {}
            try:
                for variant, fe in dbs.items():
                    with eng.begin() as c:
                        c.execute(text(f"CREATE DATABASE `{fe}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
                    if config_on is None:
                        use("off", fe)
                        config_on, encrypted_ids, n_cols = _switch_config(tmp, Context.create(None, "sqlite://").specs)
                    use(variant, fe)
                    ctx = Context.create(None, f"{admin.rstrip('/')}/{fe}?charset=utf8mb4&local_infile=1")
                    _ = ctx.ops_schema, ctx.encrypted
                    assert bool(ctx.encrypted) == (variant == "on")
                    ctx.ensure_frontend()
                    keyring_for(ctx.engine, ctx.ops_schema).active("data")   # key made before timing
                    ctxs[variant] = ctx
                totals = {"on": [0.0, 0.0], "off": [0.0, 0.0]}
                spent.update(s=0.0, values=0)
                for i, table in enumerate(dependency_order(ctxs["on"].specs)):
                    for variant in ("on", "off") if (rep + i) % 2 == 0 else ("off", "on"):
                        use(variant, dbs[variant])
                        t1, c1 = time.perf_counter(), time.process_time()
                        r = pipeline_run.sync_table(table, "full", ctx=ctxs[variant])
                        dt = time.perf_counter() - t1
                        totals[variant][0] += dt
                        totals[variant][1] += time.process_time() - c1
                        rows[table] = r.extracted
                        if rep:
                            per_table[variant][table] = min(dt, per_table[variant].get(table, dt))
                if rep:
                    for v in ("on", "off"):
                        wall[v].append(totals[v][0])
                        cpu[v].append(totals[v][1])
                    encrypt_runs.append((spent["s"], spent["values"]))
                use("on", dbs["on"])       # the switch really encrypted: a sensitive column of 患者基本信息表
                with ctxs["on"].engine.connect() as c:
                    xm = c.execute(text("SELECT XM FROM HZJBXXB WHERE XM IS NOT NULL LIMIT 1")).scalar()
                assert xm and xm.startswith("v1:"), xm
            finally:
                dispose_all()
                forget_keyrings()
                with eng.begin() as c:
                    for fe in dbs.values():
                        c.execute(text(f"DROP DATABASE IF EXISTS `{fe}`"))
                        c.execute(text(f"DROP DATABASE IF EXISTS `{fe}_ops`"))
    finally:
        crypto_frontend.FrontendEncryptor.__call__ = real_call
        eng.dispose()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    best = {k: min(v) for k, v in wall.items()}
    paired = {k: sum(v.values()) for k, v in per_table.items()}
    enc_on = sum(per_table["on"][t] for t in encrypted_ids if t in per_table["on"])
    enc_off = sum(per_table["off"][t] for t in encrypted_ids if t in per_table["off"])
    added = sorted(((t, per_table["on"][t] - per_table["off"][t]) for t in per_table["on"]), key=lambda x: -x[1])[:5]
    return {"specs": len(rows), "encrypted_tables": len(encrypted_ids), "encrypted_columns": n_cols,
            "rows_extracted": sum(rows.values()), "scale": scale, "days": days, "demo_build_s": round(build_s, 1),
            "on_s": round(best["on"], 2), "off_s": round(best["off"], 2),
            "slowdown": round(best["on"] / best["off"], 3),
            "paired_on_s": round(paired["on"], 2), "paired_off_s": round(paired["off"], 2),
            "paired_slowdown": round(paired["on"] / paired["off"], 3),
            "cpu_on_s": round(min(cpu["on"]), 2), "cpu_off_s": round(min(cpu["off"]), 2),
            "cpu_slowdown": round(min(cpu["on"]) / min(cpu["off"]), 3),
            "encrypted_tables_on_s": round(enc_on, 2), "encrypted_tables_off_s": round(enc_off, 2),
            "encrypted_tables_slowdown": round(enc_on / enc_off, 3) if enc_off else None,
            "encrypt_s": round(min(e[0] for e in encrypt_runs), 3), "values_encrypted": encrypt_runs[0][1],
            "encrypt_values_per_s": round(encrypt_runs[0][1] / min(e[0] for e in encrypt_runs)),
            "encrypt_share_of_on": round(min(e[0] for e in encrypt_runs) / best["on"], 3),
            "most_added_s": {t: round(d, 3) for t, d in added}, "runs": wall, "cpu_runs": cpu,
            "target": "≤ 1.2×", "met": paired["on"] / paired["off"] <= 1.2}


def bench_store(admin: str, rows_per_table: int, lookups: int) -> tuple[dict, dict]:
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.engines import dispose_all
    from hipbridge.sharing.secure import find_rows, ingest
    from hipbridge.sharing.service import Lifecycle
    from hipbridge.sharing.store import row_digest
    from hipbridge.spec import load_specs

    from tests.sharing_sample_specs import write_sample_specs

    tmp = Path(tempfile.mkdtemp(prefix="hb_bench_store_"))
    fe, share = f"hbbench_fe_{uuid.uuid4().hex[:8]}", f"hbbench_share_{uuid.uuid4().hex[:8]}"
    os.environ["HIPBRIDGE_OPS_SCHEMA"] = f"{fe}_ops"
    os.environ["HIPBRIDGE_SHARE_SCHEMA"] = share
    os.environ["HIPBRIDGE_HOME"] = str(tmp / "home")
    eng = create_engine(admin)
    with eng.begin() as c:
        c.execute(text(f"CREATE DATABASE `{fe}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    try:
        specs = load_specs(write_sample_specs(tmp / "specs")).require_valid()
        life = Lifecycle.open(f"{admin.rstrip('/')}/{fe}?charset=utf8mb4", specs, KeyStore(tmp / "keys"))
        store, secure = life.store, life.secure
        table = store.tables["op_visit"]
        data_cols = store.data_columns("op_visit")
        now = datetime(2026, 3, 1, 9)
        ids = [f"45010219{i % 90 + 10:02d}0101{i % 10000:04d}" for i in range(rows_per_table)]

        def fill(batch: str) -> None:
            out = []
            for i in range(rows_per_table):
                r = {"YLJGDM": "450100000011", "YLJGMC": "广西医科大学第一附属医院", "MZJZLSH": f"{batch}{i:08d}",
                     "HZWYBSH": f"P{i:09d}", "XM": "张三", "ZJLXDM": "01", "ZJHM": ids[i],
                     "JZKSSJ": now - timedelta(days=30), "JZJSSJ": now - timedelta(days=30, hours=-1),
                     "XGBZ": "1", "MJ": "0", "SJCJSJ": now, "SJGXSJ": now}
                r = {k: v for k, v in r.items() if k in table.c}
                r.update({"push_batch_id": batch, "auth_id": f"AUTH{i}", "INSTOCK_TIME": now - timedelta(hours=1),
                          "data_num": 1, "row_digest": row_digest(r, data_cols)})
                out.append(r)
            with store.engine.begin() as c:
                for i in range(0, len(out), 5000):
                    c.execute(table.insert(), out[i:i + 5000])

        # baseline: the same move, no cryptography, on the server
        fill("B")
        plain = f"`{share}`.`{table.name}_plain`"
        with store.engine.begin() as c:
            c.execute(text(f"CREATE TABLE {plain} LIKE `{share}`.`{table.name}`"))
        t0 = time.perf_counter()
        with store.engine.begin() as c:
            c.execute(text(f"INSERT INTO {plain} SELECT * FROM `{share}`.`{table.name}`"))
            c.execute(text(f"DELETE FROM `{share}`.`{table.name}`"))
        t_plain = time.perf_counter() - t0
        fill("E")
        t0 = time.perf_counter()
        rep = ingest(secure, life.cipher, life.keys, set(), now, batch_rows=2000)
        t_ing = time.perf_counter() - t0
        moved = rep.moved.get(table.name, 0)
        assert moved == rows_per_table, rep.as_dict()
        ingest_result = {"rows": moved, "ingest_rows_per_s": round(moved / t_ing),
                         "plain_move_rows_per_s": round(rows_per_table / t_plain),
                         "ratio_vs_plain_move": round(t_ing / t_plain, 1)}

        # lookups: blind index over the encrypted table vs an indexed plaintext equality query
        with store.engine.begin() as c:
            c.execute(text(f"CREATE INDEX ix_plain_zjhm ON {plain} (ZJHM)"))
        probe = [ids[(i * 7919) % rows_per_table] for i in range(lookups)]
        lat_bi, lat_plain = [], []
        for v in probe:
            t0 = time.perf_counter()
            found = find_rows(secure, life.keys, id_type="01", id_no=v)
            lat_bi.append(time.perf_counter() - t0)
            assert found.get("op_visit"), v
            t0 = time.perf_counter()
            with store.engine.connect() as c:
                c.execute(text(f"SELECT YLJGDM, MZJZLSH FROM {plain} WHERE ZJHM = :v"), {"v": v}).all()
            lat_plain.append(time.perf_counter() - t0)

        def ms(xs: list[float], q: float) -> float:
            return round(statistics.quantiles(xs, n=100)[int(q) - 1] * 1000, 2)

        lookup_result = {"rows": rows_per_table, "lookups": lookups,
                         "blind_index_p50_ms": ms(lat_bi, 50), "blind_index_p95_ms": ms(lat_bi, 95),
                         "plaintext_index_p50_ms": ms(lat_plain, 50), "plaintext_index_p95_ms": ms(lat_plain, 95),
                         "ratio_p50": round(statistics.median(lat_bi) / statistics.median(lat_plain), 2)}
        return ingest_result, lookup_result
    finally:
        dispose_all()
        with eng.begin() as c:
            for db in (fe, f"{fe}_ops", share, f"{share}_secure"):
                c.execute(text(f"DROP DATABASE IF EXISTS `{db}`"))
        eng.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mariadb", default=os.environ.get("HIPBRIDGE_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/"))
    ap.add_argument("--values", type=int, default=30_000, help="values for the SM4 throughput comparison")
    ap.add_argument("--rows", type=int, default=200_000, help="source rows for the transfer comparison")
    ap.add_argument("--runs", type=int, default=2, help="transfer runs per variant (alternating)")
    ap.add_argument("--switch-scale", type=float, default=0.05, help="demo hospital scale for the front-end switch")
    ap.add_argument("--switch-days", type=int, default=3, help="demo hospital days for the front-end switch")
    ap.add_argument("--switch-runs", type=int, default=2, help="27-spec runs per variant (alternating)")
    ap.add_argument("--only", choices=["switch"], help="run only the front-end switch comparison and merge it into --out")
    ap.add_argument("--store-rows", type=int, default=20_000, help="shared rows for ingest and lookups")
    ap.add_argument("--lookups", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "crypto.json"))
    args = ap.parse_args()

    from hipbridge.crypto.atrest import keyring_for
    from hipbridge.crypto.provider import SoftwareKeyProvider
    from hipbridge.io.engines import engine_for

    if args.only == "switch":
        out = Path(args.out)
        result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        result["frontend_switch"] = {"load_avg_before": os.getloadavg(), **bench_frontend_switch(
            args.mariadb, args.switch_scale, args.switch_days, args.switch_runs), "load_avg_after": os.getloadavg()}
        result["frontend_switch"]["at"] = datetime.now().isoformat(timespec="seconds")
        print(json.dumps(result["frontend_switch"], ensure_ascii=False))
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="hb_bench_keys_"))
    ring = keyring_for(engine_for(f"sqlite:///{tmp / 'fe.db'}", "hbops"), "hbops", SoftwareKeyProvider(tmp / "keys"))
    result = {"machine": "2 cores shared with other jobs", "at": datetime.now().isoformat(timespec="seconds"),
              "load_avg_start": os.getloadavg(),
              "sm4_field_encryption": bench_sm4(ring, args.values)}
    print(json.dumps(result["sm4_field_encryption"], ensure_ascii=False))
    result["transfer"] = bench_transfer(args.mariadb, args.rows, args.runs)
    print(json.dumps(result["transfer"], ensure_ascii=False))
    result["frontend_switch"] = {"load_avg_before": os.getloadavg(), **bench_frontend_switch(
        args.mariadb, args.switch_scale, args.switch_days, args.switch_runs), "load_avg_after": os.getloadavg()}
    print(json.dumps(result["frontend_switch"], ensure_ascii=False))
    result["shared_store_ingest"], result["blind_index_lookup"] = bench_store(args.mariadb, args.store_rows,
                                                                              args.lookups)
    print(json.dumps(result["shared_store_ingest"], ensure_ascii=False))
    print(json.dumps(result["blind_index_lookup"], ensure_ascii=False))
    result["load_avg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
