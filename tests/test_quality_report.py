"""The report renders (HTML with inline SVG charts, no external resources) and the XLSX opens;
the CLI contract works against a MariaDB database that hipbridge did not create; the page reads
right in a 1,400 px Chromium window (contents, problem list first, no horizontal overflow), in the
hospital's time with the zone named, over a period that matches the data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hipbridge.quality.check import check_database
from hipbridge.quality.engine import STATUS_LABELS
from hipbridge.reporting.quality import write_report
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from tests.test_quality_rules import DOMAINS, ID_M, NOW, ROOT, build_fixture, write_fixture

SECTIONS = ["概述", "总体得分", "数据集明细", "数据元明细", "及时性分析", "问题清单", "趋势", "整改建议"]


def test_html_and_xlsx(tmp_path, hb_home):
    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    for i in range(2):   # two runs: the trend has two points
        out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report",
                             run_id=f"report-{i}")
    paths = write_report(engine, specs, out, cfg, tmp_path / "reports")
    page = paths["html"].read_text(encoding="utf-8")
    for s in SECTIONS:
        assert s in page, s
    assert page.count("<svg") >= 3 and "<polyline" in page        # trend lines drawn
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page
    assert "K04.visit.total" in page and "总费用与费用明细金额合计不一致" in page
    assert "张三" not in page and "4510021980" not in page           # keys only, no personal data
    wb = load_workbook(paths["xlsx"])
    assert wb.sheetnames[:7] == ["概述", "问题清单", "总体得分", "数据集明细", "及时性分析", "每日上传量", "数据元明细"]
    issues = wb["问题清单"]
    ids = [row[0].value for row in issues.iter_rows(min_row=2)]
    assert "S10.patient.YLJGDM" in ids and ids[0] == "S10.patient.YLJGDM"    # fatal first
    for ws in wb.worksheets:   # every sheet filterable, header frozen, figures rounded to 0.01
        assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:"), ws.title
        assert ws.freeze_panes == "A2", ws.title
        floats = [c.value for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, float)]
        assert all(round(v, 2) == v for v in floats), (ws.title, [v for v in floats if round(v, 2) != v][:3])
    results = [[c.value for c in r] for r in wb["规则结果"].iter_rows(min_row=2)]
    assert {r[6] for r in results} <= {"致命", "错误", "警告", "提示"}          # names, not stored codes
    assert {r[7] for r in results} <= set(STATUS_LABELS.values()) and "未通过" in {r[7] for r in results}
    rates = [c.value for c in wb["数据集明细"]["E"][1:] if isinstance(c.value, float)]
    assert rates, "dimension rates exported as numbers"


def test_times_are_the_hospitals_with_the_zone_named(tmp_path, hb_home):
    """Run stamps, the page, the XLSX, the file name and the CLI all use Asia/Shanghai and say so,
    whatever the machine's zone (this machine runs in UTC)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 't.db'}", tmp_path)
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report")
    shanghai = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs((out.finished - shanghai).total_seconds()) < 600      # recorded on the hospital's clock
    assert out.run_id.startswith(f"q-{out.started:%Y%m%dT%H}")
    paths = write_report(engine, specs, out, cfg, tmp_path / "reports")
    assert paths["html"].name == f"quality_{out.finished:%Y%m%d_%H%M%S}_UTC+0800.html"
    assert paths["xlsx"].name.endswith("_UTC+0800.xlsx")
    page = paths["html"].read_text(encoding="utf-8")
    assert f"生成时间 {out.finished:%Y-%m-%d %H:%M:%S} Asia/Shanghai" in page
    assert "Asia/Shanghai (UTC+08:00)" in page
    overview = {r[0].value: r[1].value for r in load_workbook(paths["xlsx"])["概述"].iter_rows(min_row=2)}
    assert overview["生成时间"] == f"{out.finished:%Y-%m-%d %H:%M:%S} Asia/Shanghai"
    assert overview["时区"] == "Asia/Shanghai (UTC+08:00)"


def test_assessment_period_matches_the_data(tmp_path, hb_home):
    """Uploads on three days: the 评估周期 is those three days (not 30 with 27 gap days), and a table
    that skipped the middle day shows exactly that one 断档日."""
    from datetime import timedelta

    from hipbridge.reporting.quality import build_context

    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'p.db'}", tmp_path)
    col = specs.defaults.audit("extracted_at").name
    day = [NOW.replace(hour=9, minute=0, second=0) - timedelta(days=k) for k in (2, 1, 0)]
    stamp = [f"{d:%Y-%m-%d %H:%M:%S}" for d in day]
    name = {t: specs.get(t).target.name for t in ("patient", "visit", "fee", "lab")}
    with engine.begin() as c:
        for t in ("fee", "lab"):
            c.execute(text(f"UPDATE {name[t]} SET {col} = :d"), {"d": stamp[2]})
        keys = [r[0] for r in c.execute(text(f"SELECT HZWYBSH FROM {name['patient']} ORDER BY HZWYBSH"))]
        for i, k in enumerate(keys):
            c.execute(text(f"UPDATE {name['patient']} SET {col} = :d WHERE HZWYBSH = :k"), {"d": stamp[i % 3], "k": k})
        c.execute(text(f"UPDATE {name['visit']} SET {col} = :d"), {"d": stamp[0]})
        c.execute(text(f"UPDATE {name['visit']} SET {col} = :d WHERE rowid % 2 = 0"), {"d": stamp[2]})
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report", store=False)
    ctx = build_context(engine, specs, out, cfg, days=30)
    p = ctx["period_info"]
    assert (p["start"], p["end"], p["days"]) == (day[0].date(), NOW.date(), 3)
    assert ctx["period"] == f"{day[0]:%Y-%m-%d} 至 {NOW:%Y-%m-%d}"
    assert ctx["gap_days"]["patient"] == [] and ctx["gap_days"]["visit"] == [f"{day[1]:%Y-%m-%d}"]
    assert list(p["daily"]) == [f"{d:%Y-%m-%d}" for d in day]
    narrow = build_context(engine, specs, out, cfg, days=2)["period_info"]      # --days still caps it
    assert (narrow["start"], narrow["days"]) == (day[1].date(), 2)


def _foreign_mariadb(url: str) -> None:
    """Front-end tables as another vendor would create them: plain DDL, no ops schema, one column missing."""
    eng = create_engine(url)
    ID_OK = ID_M
    with eng.begin() as c:
        c.execute(text("""CREATE TABLE HZJBXXB (HZWYBSH VARCHAR(64), YLJGDM VARCHAR(30), YLJGMC VARCHAR(100),
            XM VARCHAR(50), XBDM VARCHAR(10), XBMC VARCHAR(20), CSRQ DATE, ZJLXDM VARCHAR(4), ZJHM VARCHAR(40),
            SJHM VARCHAR(20), SG DECIMAL(6,1), BM VARCHAR(20), YWSJSCSJ DATETIME, XGBZ VARCHAR(2), MJ VARCHAR(16),
            SJCJSJ DATETIME, SJGXSJ DATETIME) DEFAULT CHARSET=utf8mb4"""))
        c.execute(text(f"""INSERT INTO HZJBXXB VALUES
            ('P1','451002000001','院','欧阳娜娜','1','男性','1980-01-01','01','{ID_OK}','13800138000',
             170.0,'BA1','2024-01-01 10:00:00','1','0','2024-01-01 11:00:00','2024-01-01 10:30:00'),
            ('P2','451002000001','院','李四','3','男性','1980-01-01','01','451002198001010013','138',
             170.0,'BA2','2024-01-01 10:00:00','1','0','2024-01-01 11:00:00','2024-01-01 10:30:00')"""))
    eng.dispose()


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", "quality", *args], check=False, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_cli_run_json_on_foreign_mariadb(tmp_path, hb_home, mariadb_url):
    _foreign_mariadb(mariadb_url)
    specs_dir, exp_dir = write_fixture(tmp_path)
    out_json = tmp_path / "q.json"
    p = _cli("run", "--db", mariadb_url, "--tables", "patient,visit", "--json", str(out_json),
             "--specs", str(specs_dir), "--expectations", str(exp_dir))
    assert p.returncode == 0, p.stderr
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert data["run_id"] and data["tables"] == ["patient", "visit"]
    keys = {"rule_id", "table", "target", "columns", "dimension", "severity", "status", "violated", "denominator",
            "threshold"}
    assert all(keys <= set(r) for r in data["results"])
    by_id = {r["rule_id"]: r for r in data["results"]}
    assert by_id["S01.patient.XBDM"]["violated"] == 1 and by_id["S01.patient.XBDM"]["target"] == "HZJBXXB"
    assert by_id["S06.patient.XM"]["violated"] == 0          # 欧阳娜娜: 4 characters, 12 bytes
    assert by_id["S03.patient.ZJHM"]["violated"] == 1
    assert by_id["S07.patient.SJHM"]["violated"] == 1
    assert by_id["S08.patient.XZQH"]["status"] == "Error"    # the column does not exist there
    assert by_id["C04.visit"]["status"] == "Failed"          # table absent
    assert by_id["C01.visit.JZLSH"]["status"] == "Not Applicable"
    assert data["scores"]["overall"] is not None


def test_cli_exit_code_when_it_cannot_run(tmp_path, hb_home):
    specs_dir, exp_dir = write_fixture(tmp_path)
    p = _cli("run", "--db", "mysql+pymysql://nobody:x@127.0.0.1:1/none", "--specs", str(specs_dir),
             "--expectations", str(exp_dir), "--json", str(tmp_path / "x.json"))
    assert p.returncode != 0 and "error" in p.stderr
    p = _cli("run", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--specs", str(specs_dir),
             "--expectations", str(tmp_path / "nowhere"))
    assert p.returncode != 0 and "_rules.yaml" in p.stderr


def test_dag_file_parses_without_pandas_gx_or_database():
    code = (
        "import importlib.util, sys\n"
        "s = importlib.util.spec_from_file_location('q', 'dags/hipbridge_quality.py')\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "assert m.dag.dag_id == 'hipbridge_quality_report', m.dag.dag_id\n"
        "heavy = [x for x in ('pandas', 'great_expectations', 'hipbridge.quality', 'pymysql') if x in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    body = (ROOT / "dags" / "hipbridge_quality.py").read_text(encoding="utf-8").lower()
    assert "airflow" in body and "dag" in body


def test_report_reads_right_in_a_1400px_chromium_window(tmp_path, hb_home):
    """Contents first with the problem list as its first entry; the problem list is the first section,
    above the long element table; nothing wider than the window; a real screenshot."""
    from tests.browser import assert_fits, assert_screenshot, look

    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report")
    page = write_report(engine, specs, out, cfg, tmp_path / "reports")["html"]
    seen = look(page.as_uri(), tmp_path / "quality_report.png")
    assert_fits(seen)
    assert_screenshot(seen)
    for heading in ("一、问题清单", "二、概述", "三、总体得分", "六、趋势", "七、数据元明细"):
        assert heading in seen.headings, (heading, list(seen.headings))
    order = sorted(seen.headings, key=seen.headings.get)
    assert order[1] == "一、问题清单", order                     # right under the title
    assert seen.headings["一、问题清单"] < 600                   # on the first screen
    assert seen.headings["一、问题清单"] < seen.headings["七、数据元明细"]
    assert seen.text.index("目录") < seen.text.index("一、问题清单")
    assert "K04.visit.total" in seen.text and "Asia/Shanghai" in seen.text
    # a table without data is not "all elements up to standard"
    assert "空表 (KB) · 6 个数据元 · 无数据，未评估" in seen.text and "空表 (KB) · 6 个数据元 · 全部达标" not in seen.text


def _project_rules_run_cleanly(url: str) -> None:
    from hipbridge.io.engines import engine_for
    from hipbridge.io.frontend import create_frontend
    from hipbridge.quality.config import load_config
    from hipbridge.settings import ops_schema_name
    from hipbridge.spec import load_specs

    specs = load_specs(ROOT / "table_specs").require_valid()
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    create_frontend(engine, specs)
    out = check_database(engine, specs, cfg=load_config(ROOT / "expectations"), store=False)
    errors = [(r.rule_id, r.error) for r in out.results if r.status == "Error"]
    assert not errors, errors[:5]
    assert {r.status for r in out.results} <= {"Not Applicable", "Failed"}     # empty: only C04 fails


def test_every_project_rule_is_valid_sql_on_sqlite(tmp_path, hb_home):
    """Each rule generated from table_specs/ + expectations/ runs (no Error) on the embedded front-end."""
    _project_rules_run_cleanly(f"sqlite:///{tmp_path / 'all.db'}")


def test_every_project_rule_is_valid_sql_on_mariadb(hb_home, mariadb_url):
    _project_rules_run_cleanly(mariadb_url)


def test_report_has_the_recognition_kpi_section(tmp_path, hb_home):
    """八、检查检验结果互认: the report month's figures, the same as `hipbridge recognition kpi` counts them."""
    from hipbridge.io.ops import ensure_ops
    from hipbridge.recognition import state  # noqa: F401 - the reminder's ops tables
    from hipbridge.recognition.catalog import recognition_config
    from hipbridge.recognition.kpi import monthly_kpi
    from hipbridge.settings import ops_schema_name, org_code
    from sqlalchemy import insert

    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'k.db'}", tmp_path)
    schema = ops_schema_name(specs.defaults, engine)
    ops = ensure_ops(engine, schema)
    org = org_code(specs.defaults)
    rem, dec = ops.table("recognition_reminder"), ops.table("recognition_decision")
    decided = {"R1": ("1", None), "R2": ("0", "07"), "R3": ("0", "98"), "R4": None}
    with engine.begin() as c:
        for i, (no, d) in enumerate(decided.items(), start=1):
            c.execute(insert(rem).values(remind_id=f"{i:032x}", org_code=org, visit_id="ZY1", patient_id="P1",
                                         doctor_id="D1", search_type="2", order_id=f"o{i}", kind="lab",
                                         item_code="HRJY0002", report_org_code="450100000011", report_no=no,
                                         report_time=NOW, valid_until=NOW, created_at=NOW))
            if d:
                c.execute(insert(dec).values(org_code=org, visit_id="ZY1", patient_id="P1", doctor_id="D1",
                                             report_org_code="450100000011", report_no=no, reminder_id=i, status=d[0],
                                             action="decline" if d[0] == "0" else "recognize", reason_code=d[1],
                                             counted=0 if d[1] == "98" else 1, decided_at=NOW))
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report", store=False)
    paths = write_report(engine, specs, out, cfg, tmp_path / "reports")
    page = paths["html"].read_text(encoding="utf-8")
    k = monthly_kpi(engine, ops, recognition_config(), org, f"{NOW:%Y-%m}")
    assert (k["reminded"], k["recognised"], k["notRecognised"], k["excluded"], k["undecided"]) == (4, 1, 1, 1, 1)
    section = page[page.index('id="recognition"'):page.index('id="notes"')]
    assert f"{NOW:%Y-%m}" in section and "提醒<b>4 份</b>" in section and "互认<b>1</b>" in section
    assert "33.33%" in section                                   # 1 / (4 − 1 excluded)
    assert "诊治医师认为有必要进行再次检查的" in section and "医院未收到或患者未能提供外院检查影像资料" in section
    sheet = {r[0].value: r[1].value for r in load_workbook(paths["xlsx"])["检查检验结果互认"].iter_rows(min_row=2)}
    assert (sheet["提醒(份)"], sheet["互认"], sheet["不计入(98/99)"], sheet["互认率(%)"]) == (4, 1, 1, 33.33)
