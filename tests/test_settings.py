"""One typed settings object for every HIPBRIDGE_* variable, read at call time; one clock, one time zone.

The source checks parse every module of `plugins/hipbridge` and `dags/` with `ast`, so a new
`os.environ.get("HIPBRIDGE_…")` or a hand-made "now" outside `settings.py` fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hipbridge.settings import SettingsError, hospital_now, hospital_tz, setting_names, settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "plugins" / "hipbridge" / "settings.py"


def _sources() -> list[Path]:
    files = sorted((ROOT / "plugins" / "hipbridge").rglob("*.py")) + sorted((ROOT / "dags").rglob("*.py"))
    return [f for f in files if f != SETTINGS]


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` or a bare `environ`."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _names_hipbridge(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith("HIPBRIDGE_")
    if isinstance(node, ast.JoinedStr) and node.values:
        return _names_hipbridge(node.values[0])
    return False


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines reading a HIPBRIDGE_* variable from the process environment (writes are allowed)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _names_hipbridge(node.args[0]):
            f = node.func
            via_environ = isinstance(f, ast.Attribute) and f.attr in ("get", "pop", "setdefault") and _is_environ(f.value)
            via_getenv = (isinstance(f, ast.Attribute) and f.attr == "getenv") or (
                isinstance(f, ast.Name) and f.id == "getenv")
            if via_environ or via_getenv:
                lines.append(node.lineno)
            continue
        subscript = (isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load)
                     and _names_hipbridge(node.slice))
        membership = (isinstance(node, ast.Compare) and _names_hipbridge(node.left)
                      and any(_is_environ(c) for c in node.comparators))
        if subscript or membership:
            lines.append(node.lineno)
    return lines


def test_the_source_check_finds_every_form_of_reading():
    code = ('import os\nfrom os import environ, getenv\n'
            'a = os.environ.get("HIPBRIDGE_A")\nb = os.environ["HIPBRIDGE_B"]\nc = os.getenv("HIPBRIDGE_C")\n'
            'd = environ.get(f"HIPBRIDGE_CONN_{x}")\ne = "HIPBRIDGE_E" in os.environ\nf = getenv("HIPBRIDGE_F")\n'
            'os.environ["HIPBRIDGE_W"] = "written, not read"\ng = os.environ.get("PATH")\n')
    assert environment_reads(ast.parse(code)) == [3, 4, 5, 6, 7, 8]


def test_no_module_outside_settings_reads_hipbridge_variables():
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _sources()
             for line in environment_reads(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, f"read HIPBRIDGE_* through hipbridge.settings.settings(), not os.environ: {found}"


def test_every_variable_named_in_the_source_is_a_setting():
    named = set()
    for path in _sources() + [SETTINGS]:
        named |= set(re.findall(r"HIPBRIDGE_[A-Z][A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    known = set(setting_names())
    unknown = {n for n in named if n not in known and not n.startswith("HIPBRIDGE_CONN")}
    assert not unknown, f"HIPBRIDGE_* names without a field in settings.Settings: {sorted(unknown)}"


def test_settings_follow_the_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.delenv("HIPBRIDGE_RETRY_ATTEMPTS", raising=False)
    assert settings().retry_attempts == 4
    monkeypatch.setenv("HIPBRIDGE_RETRY_ATTEMPTS", "7")
    monkeypatch.setenv("HIPBRIDGE_BULK_LOAD", "off")
    monkeypatch.setenv("HIPBRIDGE_FAST_READ", "no")
    monkeypatch.setenv("HIPBRIDGE_REPORT_DIR", str(tmp_path))
    monkeypatch.setenv("HIPBRIDGE_CONN_HIS", "sqlite:///his.db")
    monkeypatch.setenv("HIPBRIDGE_ORG_NAME", "")          # empty counts as unset, as before
    s = settings()
    assert (s.retry_attempts, s.bulk_load, s.fast_read, s.report_dir) == (7, False, None, tmp_path)
    assert s.source_url("his") == "sqlite:///his.db" and s.source_url("lis") is None and s.org_name is None
    monkeypatch.setenv("HIPBRIDGE_RETRY_ATTEMPTS", "2")
    assert settings().retry_attempts == 2


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("HIPBRIDGE_BACKFILL_PARALLEL", "many")
    with pytest.raises(SettingsError, match=r"HIPBRIDGE_BACKFILL_PARALLEL='many': .*integer"):
        settings()


def _hand_made_clocks(tree: ast.AST) -> list[int]:
    """`datetime.now()` / `date.today()` (the machine's zone) and zone literals other than UTC."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f, args = node.func, node.args
        if isinstance(f, ast.Name):
            if f.id == "ZoneInfo" and args and isinstance(args[0], ast.Constant) and args[0].value != "UTC":
                lines.append(node.lineno)
            continue
        if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)):
            continue
        machine_now = f.value.id == "datetime" and f.attr == "now" and not args and not node.keywords
        machine_today = f.value.id == "date" and f.attr == "today"
        by_hand = (f.value.id == "datetime" and f.attr == "now" and args and isinstance(args[0], ast.Call)
                   and getattr(args[0].func, "id", "") == "ZoneInfo")   # datetime.now(ZoneInfo(tz)): hospital_now
        if machine_now or machine_today or by_hand:
            lines.append(node.lineno)
    return lines


def _zone_defaults(tree: ast.AST) -> list[int]:
    """`timezone: str = "Asia/…"` and `def f(tz="Asia/…")`: a default zone written again."""
    zone = re.compile(r"^[A-Z][a-z]+/[A-Za-z_]+$")
    values = [n.value for n in ast.walk(tree) if isinstance(n, ast.AnnAssign | ast.Assign)]
    values += [d for n in ast.walk(tree) if isinstance(n, ast.arguments) for d in n.defaults + n.kw_defaults]
    return [v.lineno for v in values
            if isinstance(v, ast.Constant) and isinstance(v.value, str) and zone.match(v.value)]


def test_one_clock_and_one_time_zone(monkeypatch):
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _sources()
             for line in _hand_made_clocks(ast.parse(path.read_text(encoding="utf-8")))
             + _zone_defaults(ast.parse(path.read_text(encoding="utf-8")))]
    assert not found, f"use hipbridge.settings.hospital_now / hospital_tz: {found}"
    monkeypatch.delenv("HIPBRIDGE_TZ", raising=False)
    assert hospital_tz().key == "Asia/Shanghai" and hospital_tz("Europe/Paris").key == "Europe/Paris"
    monkeypatch.setenv("HIPBRIDGE_TZ", "UTC")
    assert hospital_tz().key == "UTC"
    assert hospital_now().microsecond == 0 and hospital_now().tzinfo is None
