"""The demo hospital's gap report shows exactly the gaps the demo left, and a reviewed XLSX closes them.

Runs against the real demo sources (`hipbridge.demo.build`) and the repository's specs and mappings
(copied, so the import does not touch the working tree).
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from hipbridge.mapping import load_catalog
from hipbridge.mapping.gaps import compute_gaps
from hipbridge.mapping.review import export_xlsx, import_reviewed
from hipbridge.spec import load_specs
from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parents[1]

# The deliberate gaps (docs/mapping.md): (local set, local code) → the code the coding staff approve.
DELIBERATE_GAPS = {
    ("his_frequency", "TID"): "99",
    ("his_occupation", "XS"): "8",
    ("his_relation", "ZN"): "20",
    ("his_pay_method", "JM"): "02",
    ("his_anesthesia", "YYLH"): "2",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from hipbridge.demo import build
    from hipbridge.io.engines import dispose_all

    home = tmp_path_factory.mktemp("hbhome")
    mp = pytest.MonkeyPatch()
    mp.setenv("HIPBRIDGE_HOME", str(home))      # the demo registers its sources in this home
    for conn in ("HIS", "LIS", "PACS"):
        mp.delenv(f"HIPBRIDGE_CONN_{conn}", raising=False)
    # scale 0.02: enough operations that the rare 腰硬联合麻醉 occurs; seed and date fixed, so the data are too
    build(home / "demo", scale=0.02, days=1, seed=7, end_date=date(2026, 11, 24), register=True)
    mdir = home / "mappings"
    shutil.copytree(ROOT / "mappings", mdir, ignore=shutil.ignore_patterns("*_full.csv"))
    dispose_all()
    yield {"home": home, "mappings": mdir, "specs": load_specs(ROOT / "table_specs").require_valid()}
    dispose_all()
    mp.undo()


def bound_sets(specs) -> set[str]:
    return {c.codes.local for s in specs.specs.values() for c in s.columns if c.codes and c.codes.local and c.source}


def test_demo_gap_report_lists_exactly_the_deliberate_gaps(demo):
    catalog = load_catalog(demo["mappings"], "demo")
    assert catalog.errors == []
    report = compute_gaps(catalog, demo["specs"])
    assert report.problems == []
    expected = {k for k in DELIBERATE_GAPS if k[0] in bound_sets(demo["specs"])}
    assert expected == set(DELIBERATE_GAPS), "the demo specs should bind every set that carries a deliberate gap"
    assert {(e.set_id, e.local_code) for e in report.entries} == expected
    for e in report.entries:
        assert e.frequency > 0 and e.local_name and e.candidates
        assert e.status in ("unchecked", "flagged")
    rows = sum(c.rows for c in report.coverage)
    assert rows and sum(c.mapped_rows for c in report.coverage) / rows > 0.9   # "most local codes" are mapped


def test_demo_reviewed_xlsx_round_trip_closes_the_gaps(demo, tmp_path):
    catalog = load_catalog(demo["mappings"], "demo")
    report = compute_gaps(catalog, demo["specs"], with_candidates=False)
    xlsx = tmp_path / "demo_gaps.xlsx"
    n = export_xlsx(report, xlsx)
    assert n == len({(e.set_id, e.local_code) for e in report.entries})
    wb = load_workbook(xlsx)
    ws = wb["待对照"]
    header = [c.value for c in ws[1]]
    col = {h: header.index(h) + 1 for h in ("本地码表", "本地代码", "标准代码", "状态", "备注")}
    for r in range(2, ws.max_row + 1):
        key = (ws.cell(row=r, column=col["本地码表"]).value, ws.cell(row=r, column=col["本地代码"]).value)
        if key in DELIBERATE_GAPS:
            ws.cell(row=r, column=col["标准代码"]).value = DELIBERATE_GAPS[key]
            ws.cell(row=r, column=col["状态"]).value = "已批准"
            ws.cell(row=r, column=col["备注"]).value = "病案室复核"
    wb.save(xlsx)
    result = import_reviewed(catalog, xlsx, reviewer="病案室 王工")
    assert result.ok, [str(e) for e in result.errors]
    after = compute_gaps(load_catalog(demo["mappings"], "demo"), demo["specs"], with_candidates=False)
    assert after.entries == []
    assert all(c.coverage in (None, 1.0) for c in after.coverage)


def test_every_demo_dictionary_code_has_a_mapping_row():
    """A code added to demo/codes.py needs a reviewed row in mappings/local/demo/<set>.csv (or it is a gap)."""
    from hipbridge.demo.codes import LOCAL_CODE_SETS

    catalog = load_catalog(ROOT / "mappings", "demo")
    missing = {set_id: sorted(set(meta["codes"]) - {r.local_code for r in catalog.sets[set_id].rows})
               for set_id, meta in LOCAL_CODE_SETS.items() if set_id in catalog.sets}
    assert {k: v for k, v in missing.items() if v} == {}, "add these rows to mappings/local/demo/<set>.csv"


def test_an_unmapped_recognised_panel_or_exam_is_a_gap_like_any_other(demo, tmp_path):
    """省互认项目代码 (lab_report, lab_result, exam_report) goes through the 互认 catalog (GX.HRXM): a recognised
    local panel or exam without a reviewed row is listed by the gap report, per column, with candidates."""
    mdir = tmp_path / "mappings"
    shutil.copytree(demo["mappings"], mdir)
    for name, code in (("lis_panel", "XCG"), ("pacs_item", "DR01")):   # a row still waiting for review
        path = mdir / "local" / "demo" / f"{name}.csv"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        fixed = []
        for line in lines:
            if line.startswith(f"{code},"):
                cells = line.rstrip("\n").split(",")
                cells[2:7] = ["", "unchecked", "UNREVIEWED", "", ""]
                line = ",".join(cells) + "\n"
            fixed.append(line)
        path.write_text("".join(fixed), encoding="utf-8")
    report = compute_gaps(load_catalog(mdir, "demo"), demo["specs"])
    new = {(e.table, e.column, e.set_id, e.local_code, e.status) for e in report.entries
           if e.set_id in ("lis_panel", "pacs_item")}
    assert new == {("lab_report", "SHRXMDM", "lis_panel", "XCG", "unchecked"),
                   ("lab_result", "SHRXMDM", "lis_panel", "XCG", "unchecked"),
                   ("exam_report", "SHRXMDM", "pacs_item", "DR01", "unchecked")}
    xcg = next(e for e in report.entries if e.local_code == "XCG" and e.table == "lab_report")
    assert xcg.frequency > 0 and xcg.domain == "GX.HRXM" and xcg.local_name == "血常规"
