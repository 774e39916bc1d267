"""A 28th table is YAML and SQL only: added beside the 27 in a spec folder, it loads, gets its DAG and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from hipbridge.pipeline.context import Context
from hipbridge.pipeline.run import sync_table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]

# 收费项目目录 (a runner-up table of tables.md §3), fed from the demo HIS's charge-item dictionary.
CHARGE_ITEM_SPEC = """\
table: charge_item
label: 收费项目目录
description: 医院收费项目字典及其全国医疗服务项目代码。
tags: [his, phase2]
source:
  system: his
  connection: his
  query: sql/his/charge_item.sql
  watermark: {column: update_time, lookback: 10m}
target: {name: SFXMML, primary_key: [YLJGDM, XMDM]}
columns:
  - {name: XMDM, label: 项目代码, type: varchar(32), required: true, from: item_code}
  - {name: XMMC, label: 项目名称, type: varchar(100), required: true, from: item_name}
  - {name: DJ, label: 单价, type: 'decimal(12,4)', required: true, from: price, range: {min: 0}}
  - {name: QGYLFWXMDM, label: 全国医疗服务项目代码, type: varchar(20), from: national_code}
  - {name: JLZT, label: 记录状态, type: varchar(1), value: "0"}
"""

CHARGE_ITEM_SQL = """\
SELECT f.ITEM_CODE AS item_code, f.ITEM_NAME AS item_name, f.PRICE AS price,
       f.NATIONAL_CODE AS national_code, f.UPDATE_TIME AS update_time
FROM FEE_ITEM_DICT f
"""


def test_a_28th_table_needs_only_yaml_and_sql(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HIPBRIDGE_HOME", str(home))
    from hipbridge.demo import build

    build(home / "demo", seed=3, days=1, scale=0.005, register=True)
    specs = tmp_path / "table_specs"
    shutil.copytree(ROOT / "table_specs", specs)
    (specs / "charge_item.yaml").write_text(CHARGE_ITEM_SPEC, encoding="utf-8")
    (specs / "sql" / "his" / "charge_item.sql").write_text(CHARGE_ITEM_SQL, encoding="utf-8")

    ctx = Context.create(specs, f"sqlite:///{tmp_path / 'frontend.db'}")
    assert len(ctx.specs.specs) == 28
    result = sync_table("charge_item", ctx=ctx)
    assert result.status == "published" and result.published == result.extracted > 0
    with ctx.engine.connect() as c:
        n, zero = c.execute(text("SELECT COUNT(*), SUM(CASE WHEN JLZT = '0' THEN 1 ELSE 0 END) FROM SFXMML")).one()
    assert n == result.extracted and zero == n

    # and Airflow sees its DAG, with no Python change
    code = textwrap.dedent(f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag({str(ROOT / 'dags')!r})
        print(len([d for d in bag.dags if d.startswith("hipbridge_") and d[10:] in {sorted(ctx.specs.specs)!r}]))
        print("charge" if "hipbridge_charge_item" in bag.dags else "missing", sorted(bag.import_errors))
    """)
    env = {**os.environ, "HIPBRIDGE_SPECS": str(specs), "AIRFLOW_HOME": str(tmp_path / "af"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    count, seen = out.stdout.strip().splitlines()[-2:]
    assert count == "28" and seen == "charge []"
