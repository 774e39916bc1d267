"""Front-end tables from the specs: Chinese comments, key order, upgrades, on MariaDB, PostgreSQL and SQLite."""

from __future__ import annotations

import os
import subprocess
import sys

from hipbridge.io.engines import engine_for
from hipbridge.io.frontend import create_frontend
from hipbridge.spec import load_specs
from sqlalchemy import create_engine, inspect, text

from tests.minihospital import MiniHospital


def test_mariadb_tables_carry_chinese_comments_and_the_declared_key(tmp_path, mariadb_url):
    specs = load_specs(MiniHospital(tmp_path / "mini").specs)
    eng = engine_for(mariadb_url, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    report = create_frontend(eng, specs)
    assert sorted(report.created) == ["MZJZJL", "ZDMXBG"]
    insp = inspect(eng)
    assert insp.get_table_comment("MZJZJL")["text"] == "门诊就诊记录"
    cols = {c["name"]: c for c in insp.get_columns("ZDMXBG")}
    assert cols["XYZDDM"]["comment"] == "西医诊断代码"
    assert cols["YLJGDM"]["comment"] == "医疗机构代码"
    assert [c["name"] for c in insp.get_columns("ZDMXBG")][:3] == ["YLJGDM", "YLJGMC", "ZDLSH"]
    assert insp.get_pk_constraint("ZDMXBG")["constrained_columns"] == ["ZDLSH", "YLJGDM"]
    with eng.connect() as c:  # varchar(n) limits characters: four Chinese characters fit varchar(4)
        c.execute(text("INSERT INTO MZJZJL (YLJGDM, JZLSH, XM) VALUES ('1', 'A', '欧阳娜娜')"))
    # the ops schema knows every label too
    with eng.connect() as c:
        labels = dict(c.execute(text(
            f"SELECT column_name, column_label FROM {os.environ['HIPBRIDGE_OPS_SCHEMA']}.frontend_catalog "
            "WHERE table_name = 'MZJZJL'")).all())
    assert labels["JZKSSJ"] == "就诊开始时间" and labels["SJCJSJ"] == "数据采集时间"


def test_upgrade_adds_new_columns_and_never_drops(tmp_path, mariadb_url):
    mini = MiniHospital(tmp_path / "mini")
    eng = engine_for(mariadb_url, os.environ["HIPBRIDGE_OPS_SCHEMA"])
    create_frontend(eng, load_specs(mini.specs))
    spec = mini.specs / "diag.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "  - {name: ZDMC, label: 诊断名称, type: varchar(100), from: icd}\n",
                    encoding="utf-8")
    report = create_frontend(eng, load_specs(mini.specs))
    assert report.upgraded == {"ZDMXBG": ["ZDMC"]}
    cols = {c["name"]: c for c in inspect(eng).get_columns("ZDMXBG")}
    assert cols["ZDMC"]["comment"] == "诊断名称"
    assert create_frontend(eng, load_specs(mini.specs)).upgraded == {}


def test_postgres_frontend(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("HIPBRIDGE_OPS_SCHEMA", "hipbridge_ops")
    specs = load_specs(MiniHospital(tmp_path / "mini").specs)
    eng = engine_for(postgres_url, "hipbridge_ops")
    create_frontend(eng, specs)
    insp = inspect(eng)
    assert insp.get_table_comment("MZJZJL")["text"] == "门诊就诊记录"
    assert "watermark" in insp.get_table_names(schema="hipbridge_ops")


def test_frontend_init_cli_on_sqlite(tmp_path):
    mini = MiniHospital(tmp_path / "mini")
    db = tmp_path / "fe.db"
    env = {**os.environ, "HIPBRIDGE_SPECS": str(mini.specs), "HIPBRIDGE_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "hipbridge.cli", "frontend", "init", "--db", f"sqlite:///{db}"],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "created 2" in out.stdout
    assert set(inspect(create_engine(f"sqlite:///{db}")).get_table_names()) >= {"MZJZJL", "ZDMXBG"}
