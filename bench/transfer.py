"""Transfer benchmark: the full pipeline against two baselines measured in the same run, on this machine's MariaDB.

    python bench/transfer.py [--rows N]          (make bench ROWS=2000000)

1. builds a synthetic 30-column source table of N rows inside MariaDB (INSERT … SELECT from the
   sequence engine, not row by row from Python), with an index on its change-time column;
2. **pipeline**: `sync_table` of a spec written to a temporary spec folder (the project's
   `_defaults.yaml`, three coded columns mapped to GB/T 2261.1, GB/T 2261.2 and GB/T 3304,
   the quality gate on) into a fresh MariaDB front-end — plan, transfer, gate and publish: the
   table's first upload;
   **changed**: then every source row changes and the pipeline runs again into the front-end it
   filled — each row classified against the ledger and rewritten with 修改标志 2 (reported
   beside the required figures, as `changed_*`);
3. **naive**: pandas `read_sql` + `to_sql` (PyMySQL) of the same table into a plain table;
4. **raw copy**: the fastest read (connectorx into Arrow, in the same row-bounded slices), Arrow's
   C++ CSV writer and `LOAD DATA LOCAL INFILE` into a plain table, no transformation at all.

Each phase runs in its own process, so the peak RSS reported is the pipeline's alone.
Results: printed, and written to bench/results/transfer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN = os.environ.get("HIPBRIDGE_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/")
SOURCE_DB, FRONTEND_DB = "hb_bench_source", "hb_bench_frontend"
OPS_DB = f"{FRONTEND_DB}_ops"
CHUNK_ROWS = 50_000

SPEC = """\
table: bench_visit
label: 基准测试就诊记录
source:
  system: his
  connection: bench
  query: "SELECT * FROM bench_visit"
  watermark: {column: update_time, lookback: 10m}
  void: {column: status, values: ["C"]}
  chunk_rows: %(chunk)d
target: {name: BENCH_JZJL, primary_key: [JZLSH, YLJGDM]}
columns:
  - {name: JZLSH, label: 就诊流水号, type: varchar(32), required: true, from: visit_no}
  - {name: HZWYBSH, label: 患者唯一标识号, type: varchar(32), required: true, from: patient_id}
  - {name: XM, label: 姓名, type: varchar(50), required: true, from: patient_name, sensitive: true}
  - {name: XBDM, label: 性别代码, type: varchar(2), required: true, from: sex,
     codes: {domain: GB/T 2261.1, name_column: XBMC}}
  - {name: XBMC, label: 性别名称, type: varchar(20)}
  - {name: HYZKDM, label: 婚姻状况代码, type: varchar(2), from: marital, codes: {domain: GB/T 2261.2}}
  - {name: MZDM, label: 民族代码, type: varchar(2), from: nation, codes: {domain: GB/T 3304}}
  - {name: CSRQ, label: 出生日期, type: date, from: birth_date}
  - {name: ZJHM, label: 证件号码, type: varchar(32), from: id_no, sensitive: true}
  - {name: SJHM, label: 手机号码, type: varchar(20), from: mobile}
  - {name: JZDZ, label: 居住地址, type: varchar(200), from: address}
  - {name: JZKSSJ, label: 就诊开始时间, type: timestamp, required: true, from: visit_time}
  - {name: JZJSSJ, label: 就诊结束时间, type: timestamp, from: visit_end}
  - {name: KSDM, label: 科室代码, type: varchar(20), from: dept_code}
  - {name: KSMC, label: 科室名称, type: varchar(50), from: dept_name}
  - {name: YSGH, label: 医生工号, type: varchar(20), from: doctor_code}
  - {name: YSXM, label: 医生姓名, type: varchar(50), from: doctor_name}
  - {name: ZDDM, label: 诊断代码, type: varchar(20), from: diag_code}
  - {name: ZDMC, label: 诊断名称, type: varchar(100), from: diag_name}
  - {name: GHF, label: 挂号费, type: 'decimal(10,2)', from: reg_fee}
  - {name: ZLF, label: 诊疗费, type: 'decimal(12,2)', from: treat_fee}
  - {name: YPF, label: 药品费, type: 'decimal(12,2)', from: drug_fee}
  - {name: JCF, label: 检查费, type: 'decimal(12,2)', from: exam_fee}
  - {name: ZFY, label: 总费用, type: 'decimal(14,2)', from: total_fee}
  - {name: CFS, label: 处方数, type: integer, from: presc_count}
  - {name: GHXH, label: 挂号序号, type: integer, from: queue_no}
  - {name: ZS, label: 主诉, type: varchar(200), from: complaint}
  - {name: BZ, label: 备注, type: text, from: remark}
  - {name: YWSJSCSJ, label: 业务数据生成时间, type: timestamp, from: create_time}
  - {name: YWSJGXSJ, label: 业务数据更新时间, type: timestamp, required: true, from: update_time}
"""

SOURCE_DDL = """
CREATE TABLE bench_visit (
  visit_no VARCHAR(32) NOT NULL PRIMARY KEY, patient_id VARCHAR(32), patient_name VARCHAR(50), sex VARCHAR(2),
  marital VARCHAR(2), nation VARCHAR(2), birth_date DATE, id_no VARCHAR(18), mobile VARCHAR(20),
  address VARCHAR(200), visit_time DATETIME, visit_end DATETIME, dept_code VARCHAR(20), dept_name VARCHAR(50),
  doctor_code VARCHAR(20), doctor_name VARCHAR(50), diag_code VARCHAR(20), diag_name VARCHAR(100),
  reg_fee DECIMAL(10,2), treat_fee DECIMAL(12,2), drug_fee DECIMAL(12,2), exam_fee DECIMAL(12,2),
  total_fee DECIMAL(14,2), presc_count INT, queue_no INT, complaint VARCHAR(200), remark TEXT,
  create_time DATETIME, update_time DATETIME NOT NULL, status CHAR(1),
  KEY ix_update_time (update_time)
) CHARACTER SET utf8mb4
"""

# 30 columns generated inside MariaDB; change times spread over one year
SOURCE_FILL = """
INSERT INTO bench_visit
SELECT CONCAT('MZ', LPAD(seq, 12, '0')), CONCAT('P', seq %% 400000),
       ELT(1 + seq %% 6, '张伟', '王芳', '李娜', '刘洋', '陈静', '欧阳建国'),
       ELT(1 + seq %% 3, '1', '2', '9'), ELT(1 + seq %% 4, '10', '20', '21', '90'),
       ELT(1 + seq %% 5, '01', '02', '03', '04', '05'),
       DATE '1940-01-01' + INTERVAL (seq * 7919) %% 30000 DAY,
       CONCAT('45100219', LPAD(seq %% 100000000, 10, '0')), CONCAT('13', LPAD(seq %% 1000000000, 9, '0')),
       CONCAT('广西壮族自治区百色市右江区城东路', seq %% 500, '号'),
       TIMESTAMP '2025-01-01 00:00:00' + INTERVAL (seq * 31536 DIV %(scale)d) SECOND,
       TIMESTAMP '2025-01-01 00:20:00' + INTERVAL (seq * 31536 DIV %(scale)d) SECOND,
       CONCAT('KS', seq %% 60), ELT(1 + seq %% 4, '内科', '外科', '儿科', '妇产科'),
       CONCAT('YS', seq %% 900), ELT(1 + seq %% 3, '黄医生', '韦医生', '农医生'),
       ELT(1 + seq %% 4, 'J06.900', 'I10.x00', 'E11.900', 'K29.700'),
       ELT(1 + seq %% 4, '急性上呼吸道感染', '高血压', '2型糖尿病', '慢性胃炎'),
       ROUND((seq %% 50) + 0.5, 2), ROUND((seq %% 3000) / 7, 2), ROUND((seq %% 9000) / 3, 2),
       ROUND((seq %% 5000) / 9, 2), ROUND((seq %% 17000) / 3, 2), seq %% 7, seq %% 200,
       ELT(1 + seq %% 3, '发热三天，伴咳嗽', '头晕乏力一周', '复诊取药'),
       IF(seq %% 10 = 0, NULL, CONCAT('备注', seq %% 1000)),
       TIMESTAMP '2025-01-01 00:00:00' + INTERVAL (seq * 31536 DIV %(scale)d) SECOND,
       TIMESTAMP '2025-01-01 01:00:00' + INTERVAL (seq * 31536 DIV %(scale)d) SECOND,
       IF(seq %% 50 = 0, 'C', 'N')
FROM seq_1_to_%(rows)d
"""


def _admin():
    from sqlalchemy import create_engine

    return create_engine(ADMIN, connect_args={"local_infile": True})


def _url(db: str) -> str:
    return f"{ADMIN.rstrip('/')}/{db}?charset=utf8mb4&local_infile=1"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_source(rows: int) -> float:
    from sqlalchemy import text

    started = time.perf_counter()
    admin = _admin()
    with admin.begin() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS `{SOURCE_DB}`"))
        c.execute(text(f"CREATE DATABASE `{SOURCE_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        c.execute(text(f"USE `{SOURCE_DB}`"))
        c.execute(text(SOURCE_DDL))
        # fill in blocks so one INSERT … SELECT never holds millions of rows of undo
        block = 500_000
        for lo in range(0, rows, block):
            hi = min(rows, lo + block)
            sql = SOURCE_FILL % {"rows": hi, "scale": max(rows // 1000, 1)}
            sql = sql.replace(f"FROM seq_1_to_{hi}", f"FROM seq_{lo + 1}_to_{hi}")
            c.exec_driver_sql(sql.replace("%", "%%"))  # the driver formats once more
    admin.dispose()
    return time.perf_counter() - started


def _fresh_db(name: str) -> None:
    from sqlalchemy import text

    admin = _admin()
    with admin.begin() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    admin.dispose()


# ---------------------------------------------------------------- phases (each in its own process)


def phase_pipeline(rows: int) -> dict:
    return _pipeline(rows, changed=False)


def phase_changed(rows: int) -> dict:
    """The same table again into the front-end the first run filled, after every source row changed.

    The first run is a table's first upload (empty ledger: every key new); this one takes the
    path of a populated front-end — classify each row against the ledger, update every row.
    """
    from sqlalchemy import text

    admin = _admin()
    with admin.begin() as c:  # not timed: the hospital's own change
        c.execute(text(f"UPDATE `{SOURCE_DB}`.bench_visit SET treat_fee = treat_fee + 1"))
    admin.dispose()
    return _pipeline(rows, changed=True)


def _pipeline(rows: int, changed: bool) -> dict:
    from hipbridge.pipeline import run
    from hipbridge.pipeline.run import Context
    from sqlalchemy import text

    if not changed:
        _fresh_db(FRONTEND_DB)
        _fresh_db(OPS_DB)
    specs = Path(tempfile.mkdtemp(prefix="hb_bench_specs_"))
    # every row is written, as in earlier runs of this benchmark: a row voided before its first upload
    # is sent as 3, not skipped
    defaults = (ROOT / "table_specs" / "_defaults.yaml").read_text(encoding="utf-8")
    (specs / "_defaults.yaml").write_text(defaults.replace("first_seen_voided: skip", "first_seen_voided: send"),
                                          encoding="utf-8")
    (specs / "bench_visit.yaml").write_text(SPEC % {"chunk": CHUNK_ROWS}, encoding="utf-8")
    os.environ["HIPBRIDGE_CONN_BENCH"] = _url(SOURCE_DB)
    os.environ["HIPBRIDGE_OPS_SCHEMA"] = OPS_DB
    ctx = Context.create(specs, _url(FRONTEND_DB))
    _ = ctx.catalog  # loading the mapping CSVs is start-up, not transfer
    ctx.ensure_frontend(["bench_visit"])
    # the steps of sync_table, timed one by one
    started = time.perf_counter()
    batch = run.plan(ctx, "bench_visit", "full")
    moved = run.transfer(ctx, batch)
    t_transfer = time.perf_counter()
    outcome = run.gate(ctx, batch)
    t_gate = time.perf_counter()
    assert not outcome["blocked"], outcome["message"]
    counts = run.publish(ctx, batch)
    seconds = time.perf_counter() - started
    steps = {"plan_and_transfer": round(t_transfer - started, 1), "quality_gate": round(t_gate - t_transfer, 1),
             "publish": round(started + seconds - t_gate, 1)}
    result = run.BatchResult("bench_visit", batch.batch_id, "full", batch.window_start, batch.window_end,
                             "published", extracted=moved["extracted"], published=counts.written,
                             quarantined=moved["quarantined"], mapping_counts=moved["mapping"])
    with ctx.engine.connect() as c:
        target_rows = c.execute(text("SELECT COUNT(*) FROM BENCH_JZJL")).scalar()
        gate_rules = c.execute(text(f"SELECT COUNT(*) FROM `{OPS_DB}`.quality_result WHERE run_id = :b"),
                               {"b": result.batch_id}).scalar() if _has_table(c, OPS_DB, "quality_result") else None
    shutil.rmtree(specs, ignore_errors=True)
    assert result.status == "published", result.message
    assert result.extracted == rows and target_rows == rows - result.quarantined, (result, target_rows)
    if changed:  # every row was rewritten with 修改标志 2 (3 for the voided ones, unchanged voids aside)
        assert counts.updated + counts.voided == rows and counts.inserted == 0, counts
    else:
        assert counts.inserted + counts.voided == rows, counts
    return {"seconds": seconds, "steps": steps, "rows": result.extracted, "published": result.published,
            "quarantined": result.quarantined, "mapping": result.mapping_counts, "gate_results": gate_rules,
            "peak_rss_mb": _peak_rss_mb()}


def _has_table(conn, schema: str, name: str) -> bool:
    from sqlalchemy import text

    return bool(conn.execute(text("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :s "
                                  "AND table_name = :t"), {"s": schema, "t": name}).scalar())


def phase_naive(rows: int) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    _fresh_db("hb_bench_naive")
    src = create_engine(_url(SOURCE_DB))
    dst = create_engine(_url("hb_bench_naive"))
    started = time.perf_counter()
    frame = pd.read_sql(f"SELECT * FROM bench_visit LIMIT {rows}", src)
    frame.to_sql("bench_visit_copy", dst, index=False, chunksize=10_000)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(frame), "peak_rss_mb": _peak_rss_mb()}


def phase_raw(rows: int) -> dict:
    """connectorx into Arrow (no pandas, no Python objects per value), Arrow's C++ CSV writer, LOAD DATA."""
    import connectorx as cx
    import pyarrow.csv as pcsv
    from hipbridge.io.engines import engine_for
    from hipbridge.io.extract import connectorx_url, count_sql, literal_window_sql, slices
    from hipbridge.io.load import LOADER_NULL, MYSQL_LOAD_FORMAT
    from sqlalchemy import create_engine, text

    _fresh_db("hb_bench_raw")
    src = engine_for(_url(SOURCE_DB))
    dst = create_engine(_url("hb_bench_raw"), connect_args={"local_infile": True})
    with dst.begin() as c:
        c.execute(text(f"CREATE TABLE bench_visit_copy LIKE `{SOURCE_DB}`.bench_visit"))
        c.execute(text("ALTER TABLE bench_visit_copy DROP INDEX ix_update_time"))
    cx_url = connectorx_url(src)
    sql = "SELECT * FROM bench_visit"
    from datetime import datetime

    def count(a, b):
        with src.connect() as c:
            return int(c.execute(text(count_sql(literal_window_sql(sql, "update_time", src.dialect, a, b))))
                       .scalar())

    options = pcsv.WriteOptions(include_header=False, delimiter="\t", null_string=LOADER_NULL,
                                quoting_style="all_valid")
    started = time.perf_counter()
    moved = 0
    spool = "/dev/shm" if os.path.isdir("/dev/shm") else None
    for a, b, _ in slices(count, datetime(1900, 1, 1), datetime(2100, 1, 1), CHUNK_ROWS):
        table = cx.read_sql(cx_url, literal_window_sql(sql, "update_time", src.dialect, a, b), return_type="arrow")
        fd, path = tempfile.mkstemp(suffix=".tsv", dir=spool)
        with os.fdopen(fd, "wb") as f:
            pcsv.write_csv(table, f, options)
        with dst.begin() as c:
            c.exec_driver_sql(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE bench_visit_copy {MYSQL_LOAD_FORMAT}")
        os.unlink(path)
        moved += table.num_rows
    seconds = time.perf_counter() - started
    with dst.connect() as c:
        landed = c.execute(text("SELECT COUNT(*) FROM bench_visit_copy")).scalar()
    assert landed == moved == rows, (landed, moved, rows)
    return {"seconds": seconds, "rows": moved, "peak_rss_mb": _peak_rss_mb()}


PHASES = {"pipeline": phase_pipeline, "changed": phase_changed, "naive": phase_naive, "raw": phase_raw}


def run_phase(name: str, rows: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--rows", str(rows)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"bench phase {name} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="source rows (default 1,000,000)")
    ap.add_argument("--naive-rows", type=int, default=None,
                    help="rows for the naive baseline (default: all; its rows/s is a rate, so a sample is fair)")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.rows), default=str))
        return 0
    rows = args.rows
    print(f"building a {rows:,}-row, 30-column source table in MariaDB …", flush=True)
    built = build_source(rows)
    print(f"  built in {built:.1f}s", flush=True)
    pipe = run_phase("pipeline", rows)
    print(f"pipeline : {pipe['rows']:,} rows in {pipe['seconds']:.1f}s = {pipe['rows'] / pipe['seconds']:,.0f} rows/s, "
          f"peak RSS {pipe['peak_rss_mb']:.0f} MB (quarantined {pipe['quarantined']}); steps {pipe['steps']}",
          flush=True)
    again = run_phase("changed", rows)
    print(f"pipeline, every row changed, into the populated front-end: {again['rows'] / again['seconds']:,.0f} rows/s "
          f"in {again['seconds']:.1f}s; steps {again['steps']}", flush=True)
    raw = run_phase("raw", rows)
    print(f"raw copy : {raw['rows']:,} rows in {raw['seconds']:.1f}s = {raw['rows'] / raw['seconds']:,.0f} rows/s",
          flush=True)
    naive = run_phase("naive", args.naive_rows or rows)
    print(f"naive    : {naive['rows']:,} rows in {naive['seconds']:.1f}s = "
          f"{naive['rows'] / naive['seconds']:,.0f} rows/s", flush=True)
    p, n, r = (pipe["rows"] / pipe["seconds"], naive["rows"] / naive["seconds"], raw["rows"] / raw["seconds"])
    result = {"pipeline_rows_per_s": round(p), "naive_rows_per_s": round(n), "raw_copy_rows_per_s": round(r),
              "ratio_vs_naive": round(p / n, 2), "ratio_vs_raw": round(p / r, 2),
              "peak_rss_mb": round(pipe["peak_rss_mb"], 1), "rows": rows,
              "naive_rows": naive["rows"], "chunk_rows": CHUNK_ROWS,
              "seconds": {"pipeline": round(pipe["seconds"], 1), "changed": round(again["seconds"], 1),
                          "naive": round(naive["seconds"], 1),
                          "raw_copy": round(raw["seconds"], 1)},
              "pipeline_steps_seconds": pipe["steps"],
              # the same N rows again, all changed, into the front-end the first run filled
              "changed_rows_per_s": round(again["rows"] / again["seconds"]),
              "changed_ratio_vs_naive": round(again["rows"] / again["seconds"] / n, 2),
              "changed_ratio_vs_raw": round(again["rows"] / again["seconds"] / r, 2),
              "changed_steps_seconds": again["steps"],
              "changed_peak_rss_mb": round(again["peak_rss_mb"], 1),
              "machine": {"cpus": os.cpu_count()}}
    print(f"ratio vs naive {result['ratio_vs_naive']} (target ≥ 5), ratio vs raw copy {result['ratio_vs_raw']} "
          f"(target ≥ 0.6), peak RSS {result['peak_rss_mb']} MB (target ≤ 500 at 2,000,000 rows)")
    out = ROOT / "bench" / "results" / "transfer.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    if not args.keep:
        from sqlalchemy import text

        admin = _admin()
        with admin.begin() as c:
            for db in (SOURCE_DB, FRONTEND_DB, OPS_DB, "hb_bench_naive", "hb_bench_raw"):
                c.execute(text(f"DROP DATABASE IF EXISTS `{db}`"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
