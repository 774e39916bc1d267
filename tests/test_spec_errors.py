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
    err, cascade = result.errors
    assert err.key == "source.watermark.lookback" and err.line == 7
    assert "expected a number and a unit" in err.message
    # diag references visit: it says so, rather than claiming visit does not exist
    assert cascade.message == "references table visit, whose spec visit.yaml is invalid (fix that file first)"


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
