"""The report renders (HTML with inline SVG charts, no external resources) and the XLSX opens;
the CLI contract works against a MariaDB database that hipbridge did not create."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hipbridge.quality.check import check_database
from hipbridge.quality.report import write_report
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
    assert wb.sheetnames[:6] == ["概述", "总体得分", "数据集明细", "数据元明细", "及时性分析", "问题清单"]
    issues = wb["问题清单"]
    ids = [row[0].value for row in issues.iter_rows(min_row=2)]
    assert "S10.patient.YLJGDM" in ids and ids[0] == "S10.patient.YLJGDM"    # fatal first


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


def test_report_renders_in_headless_chromium(tmp_path, hb_home):
    import shutil as _sh

    import pytest

    browser = _sh.which("chromium") or _sh.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    out = check_database(engine, specs, cfg=cfg, domains=DOMAINS.get, now=NOW, kind="report")
    page = write_report(engine, specs, out, cfg, tmp_path / "reports")["html"]
    shot = tmp_path / "shot.png"
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,3000",
                        f"--screenshot={shot}", page.as_uri()], check=False, capture_output=True, text=True,
                       timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 50_000
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         check=False, capture_output=True, text=True, timeout=90).stdout
    assert "总体得分" in dom and dom.count("<svg") >= 3 and "<circle" in dom


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
