"""The gate on a staged batch: fatal failures block, other failures are recorded, results stored by batch id."""

from __future__ import annotations

from hipbridge.io.dialects import frontend_dialect
from hipbridge.io.frontend import target_table
from hipbridge.io.staging import batch_staging_table
from hipbridge.quality.gate import run_gate
from hipbridge.quality.store import load_results, past_runs
from hipbridge.settings import ops_schema_name
from sqlalchemy import MetaData, func, insert, select

from tests.test_quality_rules import DOMAINS, ORG, build_fixture, patient_rows


def _stage(engine, specs, rows, batch):
    """Stage rows as transfer does: into the batch's own staging table."""
    ops = ops_schema_name(specs.defaults, engine)
    spec = specs.get("patient")
    stg = batch_staging_table(spec, specs.defaults, ops, batch, frontend_dialect(engine))
    stg.create(engine)
    staged = [{**r, "hb_batch": batch, "hb_rownum": i, "hb_digest": f"d{i}", "hb_void": 0} for i, r in enumerate(rows)]
    if staged:
        with engine.begin() as conn:
            conn.execute(insert(stg), staged)
    return spec, stg


def _check(url, tmp_path):
    engine, specs, cfg = build_fixture(url, tmp_path)
    ops = ops_schema_name(specs.defaults, url)
    rows = patient_rows()
    rows[3]["XM"] = "司马相"    # the fixture's staging follows the checking spec: varchar(4)
    # batch A: the fixture rows (row 9 carries another hospital's 医疗机构代码 → S10 fatal)
    spec, stg = _stage(engine, specs, rows, "batch-A")
    # batch B: the same rows without the fatal fault, in its own staging table beside A's
    clean = [r for r in rows if r["YLJGDM"] == ORG]
    _, stg_b = _stage(engine, specs, [{**r, "HZWYBSH": r["HZWYBSH"] + "b"} for r in clean], "batch-B")

    a = run_gate(engine, spec, specs, "batch-A", stg, cfg=cfg, domains=DOMAINS.get)
    assert a.blocked
    assert "S10.patient.YLJGDM" in a.message
    by_id = {r.rule_id: r for r in a.results}
    assert (by_id["S10.patient.YLJGDM"].violated, by_id["S10.patient.YLJGDM"].denominator) == (1, 10)
    assert (by_id["S03.patient.ZJHM"].violated, by_id["S03.patient.ZJHM"].denominator) == (1, 9)
    assert by_id["C01.patient.XM"].violated == 2
    # batch-level only: no coverage / references / timeliness in the gate
    assert not any(r.template in ("C04", "R01", "T01") for r in a.results)

    b = run_gate(engine, spec, specs, "batch-B", stg_b, cfg=cfg, domains=DOMAINS.get)
    assert not b.blocked and b.message is None
    assert any(r.status == "Failed" for r in b.results)          # errors recorded, but not blocking
    by_id = {r.rule_id: r for r in b.results}
    assert by_id["S10.patient.YLJGDM"].denominator == 9         # only batch B's rows

    stored = {r["rule_id"]: r for r in load_results(engine, ops, "batch-A")}
    assert stored["S10.patient.YLJGDM"]["status"] == "Failed"
    runs = {r["run_id"]: r for r in past_runs(engine, ops, kind="gate")}
    assert runs["batch-A"]["blocked"] == "1" and runs["batch-B"]["blocked"] == "0"
    # a rerun of the same batch replaces its results
    run_gate(engine, spec, specs, "batch-A", stg, cfg=cfg, domains=DOMAINS.get)
    assert len(load_results(engine, ops, "batch-A")) == len(a.results)
    # the gate never writes the target
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(target_table(spec, specs.defaults, MetaData()))).scalar()
    assert n == 10


def test_gate_blocks_fatal_sqlite(tmp_path, hb_home):
    _check(f"sqlite:///{tmp_path / 'g.db'}", tmp_path)


def test_gate_blocks_fatal_mariadb(tmp_path, hb_home, mariadb_url):
    _check(mariadb_url, tmp_path)


def test_gate_empty_batch_is_not_applicable_and_passes(tmp_path, hb_home):
    engine, specs, cfg = build_fixture(f"sqlite:///{tmp_path / 'e.db'}", tmp_path)
    spec, stg = _stage(engine, specs, [], "empty-batch")  # a batch that read nothing: its table is empty
    out = run_gate(engine, spec, specs, "empty-batch", stg, cfg=cfg, domains=DOMAINS.get)
    assert not out.blocked
    assert {r.status for r in out.results} == {"Not Applicable"}
