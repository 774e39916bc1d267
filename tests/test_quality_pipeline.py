"""A fatal rule blocks a publish through the real pipeline (`sync_table`): the target stays untouched."""

from __future__ import annotations

import shutil

import pytest
from hipbridge.io import state
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.run import sync_table
from hipbridge.quality.store import load_results
from sqlalchemy import inspect, text

from tests.minihospital import MiniHospital
from tests.test_quality_rules import ROOT

FATAL = """
rules:
  - id: X90.visit.fee_cap
    table: visit
    columns: [挂号费]
    severity: fatal
    dimension: 准确性
    filter: "{挂号费} IS NOT NULL"
    violation: "{挂号费} > 15"
    message: 挂号费超过15元(测试用致命规则)
"""


@pytest.fixture(params=["sqlite", "mariadb"])
def ctx(request, tmp_path, hb_home, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fe.db'}" if request.param == "sqlite" else request.getfixturevalue("mariadb_url")
    mini = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", mini.url)
    exp = tmp_path / "expectations"
    exp.mkdir()
    for name in ("_rules.yaml", "_scoring.yaml"):
        shutil.copy(ROOT / "expectations" / name, exp / name)
    (exp / "fatal.yaml").write_text(FATAL, encoding="utf-8")
    monkeypatch.setenv("HIPBRIDGE_EXPECTATIONS", str(exp))
    c = Context.create(mini.specs, url)
    c.mini = mini
    return c


def test_fatal_rule_blocks_publish_and_leaves_target_untouched(ctx):
    r = sync_table("visit", ctx=ctx)          # V2 has a fee of 20 > 15: fatal
    assert r.status == "blocked", r
    assert "X90.visit.fee_cap" in (r.message or "")
    with ctx.engine.connect() as c:
        assert "MZJZJL" in inspect(ctx.engine).get_table_names()
        assert c.execute(text("SELECT COUNT(*) FROM MZJZJL")).scalar() == 0
    assert state.get_watermark(ctx.engine, ctx.ops, "visit") is None
    stored = {x["rule_id"]: x for x in load_results(ctx.engine, ctx.ops_schema, r.batch_id)}
    assert stored["X90.visit.fee_cap"]["status"] == "Failed" and stored["X90.visit.fee_cap"]["violated"] == 1

    ctx.mini.execute("UPDATE CLINIC_VISIT SET FEE = 10, UPDATE_TIME = '2026-11-20 09:06:00' WHERE VISIT_NO = 'V2'")
    r2 = sync_table("visit", ctx=ctx)
    assert r2.status == "published" and r2.published == 3  # V3 was voided before its first upload: not sent
