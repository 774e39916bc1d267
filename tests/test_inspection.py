"""The weekly 巡检报告 from what hipbridge recorded in a real MariaDB front-end: runs and durations,
volumes, quality trend, errors and quarantine, outbox and authorizations, deletion certificates,
configuration drift against last week's stored report, database and disk health, recommendations;
HTML (inline charts, no external resource, fits 1,400 px in Chromium) and XLSX; the CLI as a
subprocess; the weekly DAG parses cheaply."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hipbridge.inspection.config import InspectionConfig, InspectionConfigError, load_inspection_config
from hipbridge.inspection.report import write_inspection
from hipbridge.io.ops import ensure_ops
from hipbridge.settings import ops_schema_name
from openpyxl import load_workbook

from tests.test_quality_rules import ROOT, build_fixture

MON = datetime(2026, 3, 2)          # ISO week 2026-W10: Monday 2 March … Sunday 8 March
NOW = datetime(2026, 3, 8, 20, 0)   # Sunday evening, hospital time


def _batch(i: int, table: str, start: datetime, status: str = "published", extracted: int = 100,
           published: int | None = None, quarantined: int = 0, seconds: int = 30, message: str | None = None) -> dict:
    return {"batch_id": f"b{i:04d}", "table_id": table, "mode": "incremental", "status": status,
            "started_at": start, "finished_at": start + timedelta(seconds=seconds), "extracted": extracted,
            "published": extracted - quarantined if published is None else published, "inserted": 0, "updated": 0,
            "voided": 0, "unchanged": 0, "quarantined": quarantined, "skipped": 0, "deleted": 0, "message": message}


def _record_a_week(engine, schema: str) -> None:
    """What a week of hipbridge leaves in the ops schema, with one of each kind of trouble."""
    ops = ensure_ops(engine, schema)
    day = [MON + timedelta(days=k, hours=1) for k in range(7)]
    batches = [_batch(i, "patient", d) for i, d in enumerate(day)]
    batches += [_batch(10 + i, "visit", d, seconds=40) for i, d in enumerate(day[:5])]
    batches.append(_batch(20, "visit", day[5], status="failed", extracted=0, published=0,
                          message="OperationalError: (2003) source database unreachable"))
    batches += [_batch(30 + i, "fee", d, extracted=1000, quarantined=100 if i == 0 else 0, seconds=3600 if i == 1 else 60)
                for i, d in enumerate(day)]
    batches.append(_batch(99, "patient", MON - timedelta(hours=5)))      # the week before: not counted
    batches[0]["skipped"] = 5                                            # rows without a change time: shown
    quarantine = [{"batch_id": "b0030", "table_id": "fee", "row_key": f"F{i}", "reason": reason, "raw": "{}",
                   "created_at": day[0]} for i, reason in enumerate(["未对码: XMLBDM=99"] * 70 + ["日期无效: FYRQ"] * 30)]
    reports = [("q-w08", MON - timedelta(days=13), 95.0), ("q-w09", MON - timedelta(days=6), 94.0),
               ("q-w10a", day[2], 91.5), ("q-w10b", day[5], 90.5)]
    runs = [{"run_id": rid, "kind": "report", "started_at": t, "finished_at": t, "overall": s, "grade": "良",
             "scores": '{"dimensions": {"完整性": {"rate": 99.5}}}'} for rid, t, s in reports]
    runs += [{"run_id": f"g{i}", "kind": "gate", "started_at": day[i], "finished_at": day[i],
              "blocked": "1" if i == 0 else "0", "scores": "{}"} for i in range(3)]
    out = [{"kind": "grant", "org_code": "451002000001", "appointment_id": f"A{i}", "patient_key": "k" * 64,
            "payload": "v1:x", "status": st, "attempts": n, "next_retry_at": t, "last_code": code, "last_error": err,
            "created_at": t, "updated_at": t}
           for i, (st, n, t, code, err) in enumerate([
               ("NEW", 3, datetime(2026, 3, 7, 8, 0), None, None),
               ("ACKED", 1, day[1], "0", None),
               ("FAILED", 8, day[2], "500", "平台应答 500: 内部错误")])]
    auth = [{"org_code": "451002000001", "appointment_id": f"A{i}", "patient_key": "k" * 64, "status": st,
             "visit_type": "outpatient", "visit_date": day[3], "created_at": day[1], "updated_at": day[1]}
            for i, st in enumerate(["ACTIVE", "REVOKED"])]
    deletion_runs = [{"run_id": "d1", "scope": "shared", "dry_run": False, "status": "OK", "started_at": day[3],
                      "finished_at": day[3] + timedelta(minutes=2), "candidates": 3, "deleted_rows": 12},
                     {"run_id": "d2", "scope": "shared", "dry_run": False, "status": "FAILED", "started_at": day[4],
                      "finished_at": day[4], "candidates": 1, "deleted_rows": 0, "message": "lock wait timeout"}]
    deletion_log = [{"run_id": "d1", "scope": "shared", "patient_key": f"p{i}", "reason": "visit_end",
                     "table_counts": "{}", "rows_deleted": 6, "dry_run": False, "result": "DELETED",
                     "executed_at": day[3]} for i in range(2)]
    deletion_log.append({"run_id": "d2", "scope": "shared", "patient_key": "p9", "reason": "revoked",
                         "table_counts": "{}", "rows_deleted": 0, "dry_run": False, "result": "PURGE_FAILED",
                         "executed_at": day[4]})
    alerts = [{"alert_key": k, "rule": rule, "severity": "error", "title": title, "first_seen": first,
               "last_seen": first + timedelta(hours=1), "resolved_at": resolved, "sent_count": 1}
              for k, rule, title, first, resolved in [
                  ("a1", "watermark_lag", "门诊就诊记录 水位落后 50 小时", day[5], None),
                  ("a2", "platform", "平台不可达", day[1], day[1] + timedelta(hours=2)),
                  ("a3", "outbox", "上周的积压", MON - timedelta(days=3), MON - timedelta(days=2))]]
    with engine.begin() as c:
        for name, rows in (("alert_state", alerts), ("batch_log", batches), ("quarantine", quarantine), ("quality_run", runs), ("outbox", out),
                           ("auth_record", auth), ("deletion_run", deletion_runs), ("deletion_log", deletion_log)):
            keys = {k for r in rows for k in r}      # one statement, so every row names every column
            c.execute(ops.table(name).insert(), [{k: r.get(k) for k in keys} for r in rows])


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "table_specs").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "table_specs" / "a.yaml").write_text("table: a\n", encoding="utf-8")
    (root / "config" / "platform.yaml").write_text("base_url: x\n", encoding="utf-8")
    return root


def test_weekly_report_from_what_was_recorded(tmp_path, hb_home, mariadb_url):
    engine, specs, _ = build_fixture(mariadb_url, tmp_path)
    schema = ops_schema_name(specs.defaults, engine)
    _record_a_week(engine, schema)
    root = _project(tmp_path)
    cfg = InspectionConfig(watched=("table_specs", "config"),
                           thresholds={**InspectionConfig().thresholds, "disk_free_pct": 101})   # every disk is "full"
    out = write_inspection(engine, specs, tmp_path / "out", "2026-W10", cfg=cfg, root=root, now=NOW,
                           disks={"测试目录": tmp_path})
    assert out["week"] == "2026-W10" and out["html"].name.startswith("inspection_2026-W10_")
    assert out["html"].name.endswith("_UTC+0800.html")
    s = out["summary"]
    assert (s["batches"], s["failed"]) == (7 + 6 + 7, 1)                  # the batch of the week before is not counted
    assert s["published"] == 7 * 100 + 5 * 100 + 7 * 1000 - 100 and s["quarantined"] == 100
    assert s["overall"] == 90.5                                          # the week's last report run
    found = {(a["level"], a["area"].split(" · ")[0], a["area"].split(" · ")[-1]) for a in out["advice"]}
    label = {t: specs.get(t).label for t in ("patient", "visit", "fee", "lab")}
    assert ("严重", "运行", label["visit"]) in found                       # the failed batch
    assert ("严重", "数据断传", label["visit"]) in found                   # last published 6 March, > 2 days
    assert ("注意", "数据断传", label["lab"]) in found                     # never uploaded
    assert ("注意", "隔离", label["fee"]) in found                         # 100 of 7,000 extracted rows: 1.43 % > 1 %
    assert ("注意", "质控", "质控") in found and ("严重", "数据删除", "数据删除") in found
    assert ("注意", "平台交互", "平台交互") in found and ("严重", "磁盘", "磁盘") in found
    assert ("提示", "运行", label["fee"]) in found                         # one batch took an hour
    assert ("注意", "告警", "告警") in found                                 # one alert still open at the week's end
    assert not any(a["area"].endswith(label["patient"]) for a in out["advice"])   # a healthy table says nothing
    assert [a["level"] for a in out["advice"]] == sorted((a["level"] for a in out["advice"]),
                                                         key=["严重", "注意", "提示"].index)
    assert out["drift"] is None                                          # first report: no baseline yet
    page = out["html"].read_text(encoding="utf-8")
    for heading in ("一、巡检结论与整改建议", "二、运行情况", "三、数据量", "四、数据质量趋势", "五、错误与隔离",
                    "六、平台交互与授权", "七、数据删除证明", "八、配置漂移", "九、数据库与磁盘"):
        assert heading in page, heading
    assert "source database unreachable" in page and "未对码: XMLBDM=99" in page and "平台应答 500" in page
    assert "水位落后 50 小时" in page and "平台不可达" in page and "上周的积压" not in page
    assert page.count("<svg") >= 4 and "Asia/Shanghai (UTC+08:00)" in page
    # stored codes are shown by their Chinese names
    assert "本周调用 · 已确认" in page and "本周授权 · 已撤销" in page and "ACKED" not in page
    assert "已删除：就诊结束 2" in page and "删除失败：授权撤销 1" in page and "<td>失败</td>" in page
    assert "<td>外院共享数据</td>" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    wb = load_workbook(out["xlsx"])
    assert wb.sheetnames[:3] == ["概述", "整改建议", "运行情况"]
    assert all(ws.auto_filter.ref for ws in wb.worksheets)
    runs = {r[0].value: [c.value for c in r] for r in wb["运行情况"].iter_rows(min_row=2)}
    assert runs["visit"][2:4] == [6, 1] and runs["fee"][12] == 3600 and runs["patient"][13] == 5   # 跳过
    certs = [[c.value for c in r] for r in wb["删除证明"].iter_rows(min_row=2)]
    assert [r[3] for r in certs] == ["完成", "失败"] and certs[0][7] == 12 and certs[0][1] == "外院共享数据"
    # the workbook, like the page, names stored codes in Chinese
    cells = {str(c.value) for ws in wb.worksheets for row in ws.iter_rows(min_row=2) for c in row if c.value}
    assert not cells & {"OK", "FAILED", "ACKED", "REVOKED", "ACTIVE", "shared", "failed", "blocked", "grant"}
    sharing = [r[0].value for r in wb["平台交互"].iter_rows(min_row=2)]
    assert "本周新建调用 · 已确认" in sharing and "本周授权 · 已撤销" in sharing

    # next week: one file changed, one added; the drift names them, the trends carry last week on
    (root / "table_specs" / "a.yaml").write_text("table: a\nlabel: 改了\n", encoding="utf-8")
    (root / "config" / "new.yaml").write_text("x: 1\n", encoding="utf-8")
    nxt = write_inspection(engine, specs, tmp_path / "out", "2026-W11", cfg=cfg, root=root,
                           now=NOW + timedelta(weeks=1), disks={"测试目录": tmp_path})
    assert nxt["drift"] == {"added": ["config/new.yaml"], "removed": [], "changed": ["table_specs/a.yaml"]}
    assert any(a["area"] == "配置漂移" for a in nxt["advice"])
    page = nxt["html"].read_text(encoding="utf-8")
    assert "table_specs/a.yaml" in page and "上次巡检 2026-W10" in page
    again = write_inspection(engine, specs, tmp_path / "out", "2026-W11", cfg=cfg, root=root,
                             now=NOW + timedelta(weeks=1), disks={"测试目录": tmp_path})
    assert again["drift"] == nxt["drift"]                  # a rerun compares with W10, not with itself


def test_inspection_config_errors_name_file_and_key(tmp_path):
    p = tmp_path / "inspection.yaml"
    p.write_text("thresholds:\n  disk_free: 10\n", encoding="utf-8")
    try:
        load_inspection_config(p)
        raise AssertionError("an unknown threshold was accepted")
    except InspectionConfigError as exc:
        assert str(p) in str(exc) and "thresholds.disk_free" in str(exc)
    p.write_text("thresholds:\n  disk_free_pct: lots\n", encoding="utf-8")
    try:
        load_inspection_config(p)
        raise AssertionError("a non-numeric threshold was accepted")
    except InspectionConfigError as exc:
        assert "disk_free_pct" in str(exc) and "'lots'" in str(exc)
    assert load_inspection_config(ROOT / "config" / "inspection.yaml").thresholds["stale_table_days"] == 2


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", "inspection", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=180, check=False)


def test_cli_writes_the_report_and_rejects_a_bad_week(tmp_path, hb_home):
    url = f"sqlite:///{tmp_path / 'fe.db'}"
    engine, specs, _ = build_fixture(url, tmp_path)
    _record_a_week(engine, ops_schema_name(specs.defaults, engine))
    engine.dispose()
    env = {"HIPBRIDGE_HOME": str(hb_home), "HIPBRIDGE_REPORT_DIR": str(tmp_path / "r")}   # where the DAG writes
    p = _cli("report", "--week", "2026-W10", "--db", url, "--specs", str(tmp_path / "specs"), env=env)
    assert p.returncode == 0, p.stderr
    assert "巡检报告 2026-W10" in p.stdout and "Asia/Shanghai" in p.stdout and "[严重]" in p.stdout
    html = next((tmp_path / "r").glob("inspection_2026-W10_*_UTC+0800.html"))
    assert html.with_suffix(".xlsx").exists()
    bad = _cli("report", "--week", "2026-49", "--db", url, "--specs", str(tmp_path / "specs"), env=env)
    assert bad.returncode == 2 and "2026-W49" in bad.stderr and "'2026-49'" in bad.stderr


def test_weekly_report_in_a_1400px_chromium_window(tmp_path, hb_home):
    from tests.browser import assert_fits, assert_screenshot, look

    engine, specs, _ = build_fixture(f"sqlite:///{tmp_path / 'fe.db'}", tmp_path)
    _record_a_week(engine, ops_schema_name(specs.defaults, engine))
    out = write_inspection(engine, specs, tmp_path / "out", "2026-W10", root=_project(tmp_path), now=NOW,
                           disks={"测试目录": tmp_path})
    seen = look(out["html"].as_uri(), tmp_path / "weekly_inspection.png")
    assert_fits(seen)
    assert_screenshot(seen)
    order = sorted(seen.headings, key=seen.headings.get)
    assert order[1] == "一、巡检结论与整改建议", order
    for heading in ("二、运行情况", "四、数据质量趋势", "七、数据删除证明", "八、配置漂移", "九、数据库与磁盘"):
        assert heading in seen.headings, heading
    assert "目录" in seen.text and "每周巡检报告 2026-W10" in seen.text and "严重" in seen.text


def test_dag_file_parses_without_hipbridge_or_database():
    code = (
        "import importlib.util, sys\n"
        "s = importlib.util.spec_from_file_location('i', 'dags/hipbridge_inspection.py')\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "assert m.dag.dag_id == 'hipbridge_inspection_report', m.dag.dag_id\n"
        "assert m.dag.timetable._expression == '0 7 * * 1', m.dag.timetable._expression\n"
        "heavy = [x for x in ('pandas', 'hipbridge.inspection', 'hipbridge.quality', 'pymysql') if x in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
def test_database_health_names_the_server_version_and_sizes_both_schemas(kind, tmp_path, hb_home, request):
    """The health section's version and sizes come from the front-end dialect (io/dialects.py) on each database."""
    from hipbridge.inspection.collect import database_health

    url = {"sqlite": f"sqlite:///{tmp_path / 'fe.db'}"}.get(kind) or request.getfixturevalue(
        {"mariadb": "mariadb_url", "postgresql": "postgres_url"}[kind])
    engine, specs, _ = build_fixture(url, tmp_path)
    ops = ops_schema_name(specs.defaults, url)
    health = database_health(engine, ops)
    assert health["ok"], health
    assert set(health["sizes"]) == {"前置机库", f"运行库 {ops}"}
    assert all(n > 0 for n in health["sizes"].values()), health["sizes"]
    version = health["version"]
    assert {"sqlite": version[:2] == "3.", "mariadb": "MariaDB" in version,
            "postgresql": version.startswith("PostgreSQL")}[kind], version
