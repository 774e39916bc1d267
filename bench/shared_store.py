"""Shared by the benchmarks over a big shared store (bench/display.py, bench/recognition.py).

`build_store` fills the shared store inside MariaDB (INSERT … SELECT from the SEQUENCE engine, not row
by row): per patient one visit, one diagnosis, two lab reports of `results / (2 × patients)` results,
one exam report, one prescription with two items, all under the patient's authorization `A<n>`.
`extra` adds or overrides columns per table (SQL over `seq`). `load` runs concurrent callers back to
back for a time and returns their latencies.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from datetime import datetime

from sqlalchemy import text

ORGS = [("450100000011", "广西医科大学第一附属医院"), ("451000000002", "右江民族医学院附属医院")]
ANALYTES = [("6690-2", "白细胞计数", "10^9/L", 3.5, 9.5), ("789-8", "红细胞计数", "10^12/L", 4.3, 5.8),
            ("718-7", "血红蛋白", "g/L", 130, 175), ("777-3", "血小板计数", "10^9/L", 125, 350),
            ("2345-7", "葡萄糖", "mmol/L", 3.9, 6.1)]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def elt(expr: str, values: list[str]) -> str:
    """SQL: the (expr mod n)-th of `values`."""
    return f"ELT(1 + ({expr}) % {len(values)}, " + ", ".join(f"'{v}'" for v in values) + ")"


def _filler(col) -> str:
    """A constant SQL literal for a NOT NULL column the benchmark does not care about."""
    try:
        t = col.type.python_type
    except NotImplementedError:
        t = str
    if t is datetime:
        return "'2026-01-01 08:00:00'"
    if t.__name__ == "date":
        return "'1980-01-01'"
    if t in (int, float) or t.__name__ == "Decimal":
        return "1"
    return "'1'"


def _fill_table(conn, table, n: int, exprs: dict[str, str]) -> None:
    """INSERT … SELECT over seq_0_to_{n-1}: `exprs` gives column → SQL over `seq`; other NOT NULL columns a constant."""
    cols, vals = [], []
    for c in table.columns:
        if c.name in exprs:
            cols.append(c.name)
            vals.append(exprs[c.name])
        elif not c.nullable and not c.autoincrement is True:
            cols.append(c.name)
            vals.append(_filler(c))
    sql = (f"INSERT INTO `{table.name}` ({', '.join('`' + c + '`' for c in cols)}) "
           f"SELECT {', '.join(vals)} FROM seq_0_to_{n - 1}")
    conn.execute(text(sql))


def build_store(store, cfg, patients: int, results: int,
                extra: dict[str, dict[str, str]] | None = None) -> dict[str, int]:
    """The shared store: per patient 1 visit, 1 diagnosis, 2 lab reports × 5 results, 1 exam, 1 rx + 2 items.
    `extra`: table id → column → SQL over `seq` (the row number of that table), added last (overrides)."""
    extra = extra or {}
    org, orgn = store.defaults.audit("org_code").name, store.defaults.audit("org_name").name
    b = store.cols
    per_report = max(1, results // (2 * patients))

    def common(patient_expr: str, org_expr: str = "seq") -> dict[str, str]:
        return {org: f"ELT(1 + ({org_expr}) % 2, '{ORGS[0][0]}', '{ORGS[1][0]}')",
                orgn: f"ELT(1 + ({org_expr}) % 2, '{ORGS[0][1]}', '{ORGS[1][1]}')",
                b["auth_id"]: f"CONCAT('A', {patient_expr})", b["batch_id"]: f"CONCAT('B', ({patient_expr}) DIV 1000)",
                b["instock_time"]: "'2026-03-01 00:00:00'", b["data_num"]: "1", b["row_digest"]: "REPEAT('0', 64)"}

    def col(kind: str, role: str) -> str:
        return cfg.tables[kind].columns[role]

    day = "TIMESTAMP('2025-04-01 08:00:00') + INTERVAL ({}) HOUR"
    def analytes(i: int) -> str:
        return elt("{}", [a[i] for a in ANALYTES])
    counts = {}
    t = store.tables

    def fill_table(conn, table, n: int, exprs: dict[str, str]) -> None:
        tid = next(k for k, v in t.items() if v is table)
        _fill_table(conn, table, n, {**exprs, **extra.get(tid, {})})
    with store.engine.begin() as conn:
        fill_table(conn, t["op_visit"], patients, {**common("seq"), col("visit", "id"): "CONCAT('V', seq)",
                   col("visit", "start"): day.format("seq % 7000"), col("visit", "end"): day.format("seq % 7000 + 1"),
                   col("visit", "dept"): "'内分泌科'", col("visit", "diagnosis"): "'2型糖尿病'"})
        fill_table(conn, t["diagnosis_detail"], patients, {**common("seq"), "ZDLSH": "CONCAT('D', seq)",
                   col("diagnosis", "visit"): "CONCAT('V', seq)", col("diagnosis", "name"): "'2型糖尿病'",
                   col("diagnosis", "code"): "'E11.900'", col("diagnosis", "time"): day.format("seq % 7000")})
        fill_table(conn, t["lab_report"], 2 * patients, {**common("seq DIV 2", "seq DIV 2"),
                   col("lab", "id"): "CONCAT('L', seq)", col("lab", "time"): day.format("(seq DIV 2) % 7000 + 2 + seq % 2 * 240"),
                   col("lab", "title"): "'血常规+血糖'", col("lab", "item_code"): "'BLD-CBC'", col("lab", "hr"): "'1'",
                   col("lab", "critical"): "'0'", col("lab", "visit"): "CONCAT('V', seq DIV 2)"})
        n = 2 * patients * per_report
        fill_table(conn, t["lab_result"], n, {**common(f"seq DIV {2 * per_report}", f"seq DIV {2 * per_report}"),
                   col("lab_result", "id"): "CONCAT('R', seq)", col("lab_result", "report"): f"CONCAT('L', seq DIV {per_report})",
                   col("lab_result", "code"): analytes(0).format(f"seq % {per_report}"),
                   col("lab_result", "name"): analytes(1).format(f"seq % {per_report}"),
                   col("lab_result", "unit"): analytes(2).format(f"seq % {per_report}"),
                   col("lab_result", "value"): "CAST(ROUND(3 + (seq * 7919 % 1000) / 10, 2) AS CHAR)",
                   col("lab_result", "abnormal"): "ELT(1 + seq % 4, 'N', 'N', 'H', 'L')",
                   col("lab_result", "time"): day.format(f"(seq DIV {2 * per_report}) % 7000 + 2")})
        fill_table(conn, t["exam_report"], patients, {**common("seq"), col("exam", "id"): "CONCAT('E', seq)",
                   col("exam", "time"): day.format("seq % 7000 + 5"), col("exam", "title"): "'胸部CT平扫'",
                   col("exam", "findings"): "'双肺纹理清晰, 未见明确实质性病变。'", col("exam", "conclusion"): "'未见明显异常。'",
                   col("exam", "hr"): "'1'", col("exam", "item_code"): "'CT-CHEST'", col("exam", "visit"): "CONCAT('V', seq)"})
        fill_table(conn, t["op_prescription"], patients, {**common("seq"), col("rx", "id"): "CONCAT('P', seq)",
                   col("rx", "time"): day.format("seq % 7000 + 1"), col("rx", "visit"): "CONCAT('V', seq)",
                   col("rx", "cancelled"): "'0'"})
        fill_table(conn, t["op_prescription_item"], 2 * patients, {**common("seq DIV 2", "seq DIV 2"),
                   col("rx_item", "id"): "CONCAT('PI', seq)", col("rx_item", "prescription"): "CONCAT('P', seq DIV 2)",
                   "MZJZLSH": "CONCAT('V', seq DIV 2)", col("rx_item", "drug"): "ELT(1 + seq % 2, '盐酸二甲双胍片', '阿托伐他汀钙片')"})
        for k in ("op_visit", "diagnosis_detail", "lab_report", "lab_result", "exam_report", "op_prescription",
                  "op_prescription_item"):
            counts[k] = conn.execute(text(f"SELECT COUNT(*) FROM `{t[k].name}`")).scalar_one()
    return counts



fill_table = _fill_table


def load(fn, args_list: list, callers: int, duration_s: float) -> list[float]:
    """`callers` threads call fn(arg) back to back for duration_s; latencies in ms."""
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + duration_s

    def worker(k: int) -> None:
        rng = random.Random(k)
        local = []
        state = fn.setup() if hasattr(fn, "setup") else None
        while time.perf_counter() < stop:
            a = rng.choice(args_list)
            t0 = time.perf_counter()
            fn(a, state)
            local.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(local)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(callers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat


def _stats(lat: list[float]) -> dict[str, float]:
    return {"requests": len(lat), "p50_ms": round(statistics.median(lat), 2), "p99_ms": round(pct(lat, 99), 2),
            "max_ms": round(max(lat), 2)}


def start_service(url: str, env: dict[str, str], log_path, *args: str):
    """`hipbridge display serve --db url` as deployed (a subprocess in its own session, `args` added, e.g.
    `--workers 2` or `--simulate-platform`), stderr to `log_path` (a file: a pipe nobody reads blocks the
    server once full); waits for /healthz. Returns (process, base URL); stop it with `stop_service`."""
    import subprocess
    import sys

    import httpx
    from hipbridge.demo.simulator import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "hipbridge.cli", "display", "serve", "--db", url, "--port", str(port), *args]
    with open(log_path, "wb") as log:      # the child keeps its own descriptor
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1, trust_env=False).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_service(server)
    with open(log_path, errors="replace") as log:
        raise RuntimeError("display service did not start: " + log.read()[-2000:])


def stop_service(server) -> None:
    """SIGTERM to the service's process group (uvicorn and its workers), SIGKILL if it does not stop."""
    import os
    import signal
    import subprocess

    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=20)
