"""Spec errors name the file, line and key, and a broken spec never hides the other tables' DAGs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hipbridge.spec import load_specs

from tests.minihospital import MiniHospital

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def specs_dir(tmp_path):
    return MiniHospital(tmp_path / "mini").specs


def write(specs_dir: Path, name: str, body: str) -> Path:
    path = specs_dir / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def only_error(specs_dir: Path):
    result = load_specs(specs_dir)
    assert len(result.errors) == 1, [str(e) for e in result.errors]
    return result.errors[0], result


def test_valid_specs_load(specs_dir):
    result = load_specs(specs_dir)
    assert result.errors == [] and set(result.specs) == {"visit", "diag"}


def test_yaml_syntax_error_names_file_and_line(specs_dir):
    write(specs_dir, "broken.yaml", """\
        table: broken
        label: 坏表
        columns:
          - {name: A, label: 甲, type: varchar(2)
        """)
    err, result = only_error(specs_dir)
    assert err.file.endswith("broken.yaml") and err.key == "(syntax)"
    assert err.line in (4, 5) and "YAML syntax error" in err.message
    assert set(result.specs) == {"visit", "diag"}  # the others still load


def test_misspelled_key_is_an_error_with_its_line(specs_dir):
    path = specs_dir / "diag.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "type: varchar(20), required: true", "type: varchar(20), requried: true"), encoding="utf-8")
    err, _ = only_error(specs_dir)
    assert err.file.endswith("diag.yaml") and err.line == 12
    assert err.key == "columns[2] (XYZDDM).requried"
    assert "unknown key (misspelled?)" in err.message
    assert str(err).startswith(f"{path}:12: columns[2] (XYZDDM).requried: unknown key")


def test_wrong_type_names_value_and_expectation(specs_dir):
    path = specs_dir / "diag.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("type: varchar(20)", "type: string(20)"),
                    encoding="utf-8")
    err, _ = only_error(specs_dir)
    assert (err.line, err.key, err.value) == (12, "columns[2] (XYZDDM).type", "string(20)")
    assert "expected varchar(n), decimal(p[,s]), integer, date, timestamp or text" in err.message


def test_wrong_scalar_type(specs_dir):
    path = specs_dir / "visit.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("lookback: 10m", "lookback: ten minutes"),
                    encoding="utf-8")
    result = load_specs(specs_dir)
    (err,) = result.errors
    assert err.key == "source.watermark.lookback" and err.line == 7
    assert "expected a number and a unit" in err.message
    # diag references visit: a warning naming the broken parent, and diag stays valid (it keeps uploading)
    (warning,) = result.warnings
    assert warning.file.endswith("diag.yaml") and (warning.line, warning.key) == (11, "columns[1] (JZLSH).references")
    assert warning.message.startswith("references table visit, whose spec visit.yaml is invalid: this table still "
                                      "uploads")
    assert "warning: references table visit" in str(warning)
    assert set(result.specs) == {"diag"}


def test_duplicate_table_id_names_both_files(specs_dir):
    write(specs_dir, "diag_copy.yaml", (specs_dir / "diag.yaml").read_text(encoding="utf-8"))
    err, result = only_error(specs_dir)
    assert err.file.endswith("diag_copy.yaml") and (err.key, err.line, err.value) == ("table", 1, "diag")
    assert err.message.startswith("duplicate table id: diag.yaml already declares table 'diag'")
    assert "diag" in result.specs


def test_reference_to_missing_table_and_column(specs_dir):
    path = specs_dir / "diag.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("references: visit.JZLSH", "references: vist.JZLSH"),
                    encoding="utf-8")
    err, result = only_error(specs_dir)
    assert (err.line, err.key, err.value) == (11, "columns[1] (JZLSH).references", "vist.JZLSH")
    assert err.message == "references a table that has no spec"
    assert "diag" not in result.specs and "visit" in result.specs
    path.write_text(path.read_text(encoding="utf-8").replace("vist.JZLSH", "visit.NOPE"), encoding="utf-8")
    err, _ = only_error(specs_dir)
    assert err.message == "table visit has no column NOPE"


def test_unknown_primary_key_column(specs_dir):
    path = specs_dir / "diag.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("[ZDLSH, YLJGDM]", "[ZDLSHX, YLJGDM]"),
                    encoding="utf-8")
    err, _ = only_error(specs_dir)
    assert (err.key, err.value, err.line) == ("target.primary_key[0]", "ZDLSHX", 8)


def test_decimal_in_flow_mapping_hint(specs_dir):
    path = specs_dir / "visit.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("'decimal(6,2)'", "decimal(6,2)"), encoding="utf-8")
    errors = load_specs(specs_dir).errors
    assert any("quote it" in e.message for e in errors)


def test_spec_check_cli_exit_codes(specs_dir):
    env = {**os.environ, "HIPBRIDGE_SPECS": str(specs_dir)}
    ok = subprocess.run([sys.executable, "-m", "hipbridge.cli", "spec", "check"], env=env,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    write(specs_dir, "bad.yaml", "table: bad\nlabel: 坏\nsource: {}\n")
    bad = subprocess.run([sys.executable, "-m", "hipbridge.cli", "spec", "check"], env=env,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "bad.yaml:3: source.system: required key is missing" in bad.stderr


def test_dagbag_keeps_good_dags_and_reports_the_broken_spec(specs_dir, tmp_path):
    path = specs_dir / "diag.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("required: true, from: icd",
                                                             "required: true, frm: icd"), encoding="utf-8")
    code = textwrap.dedent(f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag({str(ROOT / 'dags')!r})
        print("DAGS", sorted(bag.dags))
        for f, e in bag.import_errors.items():
            print("ERR", f, "::", e.replace(chr(10), " | "))
    """)
    env = {**os.environ, "HIPBRIDGE_SPECS": str(specs_dir), "AIRFLOW_HOME": str(tmp_path / "af"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    dags_line = next(line for line in out.stdout.splitlines() if line.startswith("DAGS"))
    assert "hipbridge_visit" in dags_line and "hipbridge_diag" not in dags_line
    err = next(line for line in out.stdout.splitlines() if line.startswith("ERR"))
    assert "hipbridge_spec_errors.py" in err
    assert f"{path}:12: columns[2] (XYZDDM).frm: unknown key" in err


# ---------------------------------------------------------------- one bad file hides only itself (issue 11.5)


def test_gbk_spec_is_an_error_naming_the_file_not_a_crash(specs_dir):
    path = specs_dir / "lab.yaml"
    path.write_bytes("table: lab\nlabel: 检验报告\nsource: {system: lis}\n".encode("gbk"))
    err, result = only_error(specs_dir)
    assert (err.file, err.line, err.key, err.table) == (str(path), 2, "(encoding)", "lab")
    assert "not UTF-8" in err.message and "GBK/GB18030" in err.message
    assert set(result.specs) == {"visit", "diag"}
    assert list(result.invalid_tables()) == ["lab"]


def test_gbk_sql_file_makes_only_its_table_invalid(specs_dir):
    sql = specs_dir / "sql" / "visit.sql"
    sql.write_bytes(("-- 门诊就诊\n" + sql.read_text(encoding="utf-8")).encode("gbk"))
    result = load_specs(specs_dir)
    (err,) = result.errors
    assert (err.file, err.line, err.key, err.table) == (str(sql), 1, "(encoding)", "visit")
    assert set(result.specs) == {"diag"}  # diag references visit: a warning, it still runs
    assert [w.table for w in result.warnings] == ["diag"]
    with pytest.raises(Exception, match="visit.sql:1: \\(encoding\\): file is not UTF-8"):
        result.get("visit")


def test_utf8_with_bom_is_fine(specs_dir):
    path = specs_dir / "diag.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_specs(specs_dir).errors == []


def test_key_written_twice_is_an_error_with_file_and_line(specs_dir):
    path = specs_dir / "diag.yaml"
    text = path.read_text(encoding="utf-8")
    # a second `label:` at the top and a second `watermark:` inside `source:`
    path.write_text(text.replace("label: 诊断明细报告\n", "label: 诊断明细报告\nphase: 1\nlabel: 诊断\n"),
                    encoding="utf-8")
    err, result = only_error(specs_dir)
    assert (err.file, err.line, err.key) == (str(path), 4, "label")
    assert err.message.startswith("written twice in one mapping (first on line 2)")
    assert str(err).startswith(f"{path}:4: label: written twice")
    assert "diag" not in result.specs and "visit" in result.specs
    path.write_text(text.replace("  watermark: {column: upd}\n", "  watermark: {column: upd}\n  watermark: {column: x}\n"),
                    encoding="utf-8")
    err, _ = only_error(specs_dir)
    assert (err.line, err.key) == (8, "source.watermark") and "first on line 7" in err.message
    # inside a flow mapping too
    path.write_text(text.replace("{name: XYZDDM, label: 西医诊断代码,", "{name: XYZDDM, label: 西医诊断代码, label: 诊断,"),
                    encoding="utf-8")
    err, _ = only_error(specs_dir)
    assert (err.line, err.key) == (12, "columns[2] (XYZDDM).label") and "first on line 12" in err.message


def _cli(specs_dir: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIPBRIDGE_SPECS": str(specs_dir), "HIPBRIDGE_HOME": str(home),
           "HIPBRIDGE_CONN_MINI": f"sqlite:///{specs_dir.parent / 'his.db'}"}
    env.pop("HIPBRIDGE_FRONTEND_URL", None)
    env.pop("HIPBRIDGE_OPS_SCHEMA", None)
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", *args], env=env, capture_output=True, text=True,
                          check=False)


def test_cli_run_all_and_status_run_every_valid_table_beside_a_broken_spec(specs_dir, tmp_path):
    visit = specs_dir / "visit.yaml"
    visit.write_text(visit.read_text(encoding="utf-8").replace("primary_key:", "primary_keys:"), encoding="utf-8")
    write(specs_dir, "lab.yaml", "x: 1\n")
    (specs_dir / "lab.yaml").write_bytes("table: lab\nlabel: 检验\n".encode("gbk"))
    home = tmp_path / "home"
    done = _cli(specs_dir, home, "run", "all")
    assert done.returncode == 1, done.stderr
    assert "diag: published  extracted 2, published 2" in done.stdout
    assert "visit: not run, its spec is invalid:" in done.stderr
    assert f"{visit}:9: target.primary_keys: unknown key" in done.stderr
    assert "lab: not run, its spec is invalid:" in done.stderr and "lab.yaml:2: (encoding)" in done.stderr
    assert "diag.yaml:11: columns[1] (JZLSH).references: warning: references table visit" in done.stderr
    check = _cli(specs_dir, home, "spec", "check")
    assert check.returncode == 1 and "diag.yaml:11: columns[1] (JZLSH).references: warning:" in check.stderr
    one = _cli(specs_dir, home, "run", "visit")
    assert one.returncode == 2 and "target.primary_keys: unknown key" in one.stderr
    status = _cli(specs_dir, home, "status", "--json")
    assert status.returncode == 0, status.stderr
    import json

    report = json.loads(status.stdout)
    assert [t["table"] for t in report["tables"]] == ["diag"] and report["tables"][0]["rows"] == 2
    assert [t["table"] for t in report["invalid_specs"]] == ["lab", "visit"]


def test_dagbag_keeps_the_dags_that_reference_a_broken_spec(specs_dir, tmp_path):
    visit = specs_dir / "visit.yaml"
    visit.write_text(visit.read_text(encoding="utf-8").replace("lookback: 10m", "lookbak: 10m"), encoding="utf-8")
    (specs_dir / "lab.yaml").write_bytes("table: lab\nlabel: 检验报告\n".encode("gbk"))
    write(specs_dir, "twice.yaml", (specs_dir / "diag.yaml").read_text(encoding="utf-8")
          .replace("table: diag", "table: twice\ntable: twice").replace("ZDMXBG", "ZDMXBG2"))
    code = textwrap.dedent(f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag({str(ROOT / 'dags')!r})
        print("DAGS", sorted(bag.dags))
        for f, e in bag.import_errors.items():
            print("ERR", f, "::", e.replace(chr(10), " | "))
    """)
    env = {**os.environ, "HIPBRIDGE_SPECS": str(specs_dir), "AIRFLOW_HOME": str(tmp_path / "af"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    dags_line = next(line for line in out.stdout.splitlines() if line.startswith("DAGS"))
    assert "'hipbridge_diag'" in dags_line  # it references the broken visit.yaml, and keeps its DAG
    assert "hipbridge_visit" not in dags_line and "hipbridge_lab" not in dags_line and "twice" not in dags_line
    (err,) = [line for line in out.stdout.splitlines() if line.startswith("ERR")]
    assert "hipbridge_spec_errors.py" in err
    assert f"{visit}:7: source.watermark.lookbak: unknown key" in err
    assert f"{specs_dir / 'lab.yaml'}:2: (encoding): file is not UTF-8" in err
    assert f"{specs_dir / 'twice.yaml'}:2: table: written twice in one mapping (first on line 1)" in err
    assert "diag.yaml:11: columns[1] (JZLSH).references: warning: references table visit" in err


def test_referential_check_against_a_broken_parent_is_reported_not_dropped(specs_dir, tmp_path):
    from hipbridge.io.engines import dispose_all, engine_for
    from hipbridge.quality.check import check_database
    from hipbridge.quality.config import cached_config
    from hipbridge.settings import ops_schema_name

    visit = specs_dir / "visit.yaml"
    visit.write_text(visit.read_text(encoding="utf-8").replace("lookback: 10m", "lookbak: 10m"), encoding="utf-8")
    specs = load_specs(specs_dir)
    url = f"sqlite:///{tmp_path / 'fe.db'}"
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    from hipbridge.io.frontend import create_frontend

    create_frontend(engine, specs)
    result = check_database(engine, specs, kind="report", run_id="t", cfg=cached_config(), store=False)
    (r01,) = [r for r in result.results if r.rule_id.startswith("R01.diag")]
    assert r01.status == "Error" and "被关联表 visit 的表规范无效" in r01.error
    dispose_all()


def test_misspelled_key_in_op_visit_leaves_the_four_tables_referencing_it_uploading(tmp_path, hb_home):
    """The issue's case on the real specs: op_visit.yaml broken; exam_report, lab_report, op_prescription and
    op_prescription_item reference it, keep their DAGs, and run and publish against the demo hospital."""
    import shutil

    from hipbridge.airflow.factory import build_all
    from hipbridge.demo import build
    from hipbridge.pipeline.context import Context
    from hipbridge.pipeline.run import sync_table

    specs_dir = tmp_path / "table_specs"
    shutil.copytree(ROOT / "table_specs", specs_dir)
    op_visit = specs_dir / "op_visit.yaml"
    op_visit.write_text(op_visit.read_text(encoding="utf-8").replace("  watermark:", "  watermrk:", 1),
                        encoding="utf-8")
    specs = load_specs(specs_dir)
    assert list(specs.invalid_tables()) == ["op_visit"]
    children = sorted({w.table for w in specs.warnings})
    assert children == ["exam_report", "lab_report", "op_prescription", "op_prescription_item"]
    dags = build_all(specs)
    assert "hipbridge_op_visit" not in dags and all(f"hipbridge_{t}" in dags for t in children)
    build(hb_home / "demo", seed=3, days=1, scale=0.002, register=True)
    ctx = Context.create(specs_dir, f"sqlite:///{tmp_path / 'fe.db'}")
    for table in children:
        r = sync_table(table, ctx=ctx)
        assert r.status == "published" and r.extracted > 0 and r.published > 0, r
