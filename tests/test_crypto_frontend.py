"""The per-column encryption switch of the province's front-end tables (docs/密码应用方案.md §3.4).

On real MariaDB and PostgreSQL front-ends: with `config/crypto.yaml` `frontend.tables` naming
columns, they hold SM4 ciphertext in the business table, a rerun with nothing changed writes
nothing, a changed row is republished, hospital staff read the values back (function and CLI),
switching the columns on widens an existing table and republishes its rows once, and quality
rules on those columns are reported not applicable with the reason. Bad entries are errors
naming crypto.yaml, the line and the key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from hipbridge.crypto.fields import FieldCipher
from hipbridge.crypto.frontend import frontend_columns, reveal_row, reveal_value
from hipbridge.io.frontend import encrypted_type
from hipbridge.pipeline.context import Context
from hipbridge.pipeline.run import sync_table
from hipbridge.spec import load_specs
from hipbridge.spec.types import ColumnType
from hipbridge.yamlconfig import ConfigError
from sqlalchemy import create_engine, inspect, text

from tests.conftest import MARIADB_ADMIN
from tests.minihospital import ROWS, MiniHospital

ROOT = Path(__file__).resolve().parents[1]
NAMES = {r[0]: r[4] for r in ROWS}      # JZLSH → 患者姓名 in the source
PIDS = {r[0]: r[1] for r in ROWS}


def _config(tmp_path: Path, tables_yaml: str, name: str = "config") -> Path:
    """A copy of config/ whose crypto.yaml `frontend.tables` is `tables_yaml`."""
    config = tmp_path / name
    shutil.copytree(ROOT / "config", config)
    path = config / "crypto.yaml"
    body = path.read_text(encoding="utf-8")
    assert "  tables: {}" in body
    path.write_text(body.replace("  tables: {}", f"  tables: {tables_yaml}", 1), encoding="utf-8")
    return config


@pytest.fixture(params=["mariadb", "postgresql"])
def frontend_url(request, hb_home):
    return request.getfixturevalue("mariadb_url" if request.param == "mariadb" else "postgres_url")


@pytest.fixture
def mini(tmp_path, monkeypatch):
    h = MiniHospital(tmp_path / "mini")
    monkeypatch.setenv("HIPBRIDGE_CONN_MINI", h.url)
    return h


def _rows(ctx) -> dict[str, dict]:
    with ctx.engine.connect() as c:
        return {r["JZLSH"]: dict(r) for r in c.execute(text(f"SELECT * FROM {ctx.dialect.table('MZJZJL')}")).mappings()}


def _width(ctx, column: str) -> int | None:
    cols = {c["name"]: c["type"] for c in inspect(ctx.engine).get_columns("MZJZJL")}
    return getattr(cols[column], "length", None)


def test_configured_columns_hold_ciphertext_rerun_writes_nothing_change_republishes(
        tmp_path, monkeypatch, mini, frontend_url):
    # ZYJZLSH is a constant of the spec (value: "-"): encrypted per row too, never a staging default
    monkeypatch.setenv("HIPBRIDGE_CONFIG", str(_config(tmp_path, "{visit: [XM, HZWYBSH, ZYJZLSH]}")))
    ctx = Context.create(mini.specs, frontend_url)
    assert ctx.encrypted == {"visit": frozenset({"XM", "HZWYBSH", "ZYJZLSH"})}
    r = sync_table("visit", ctx=ctx)
    assert (r.status, r.inserted) == ("published", 3)

    first = _rows(ctx)
    assert set(first) == {"V1", "V2", "V4"}
    for key, row in first.items():
        assert row["XM"].startswith("v1:") and row["HZWYBSH"].startswith("v1:")
        assert NAMES[key] not in row["XM"] and row["JZLSH"] == key        # keys stay plaintext
        assert reveal_value(ctx.engine, ctx.ops_schema, row["XM"]) == NAMES[key]
        shown = reveal_row(ctx.engine, ctx.ops_schema, row, ctx.encrypted["visit"])
        assert (shown["XM"], shown["HZWYBSH"], shown["ZYJZLSH"]) == (NAMES[key], PIDS[key], "-")
        assert row["ZYJZLSH"].startswith("v1:")
    assert len({row["XM"] for row in first.values()}) == 3
    assert _width(ctx, "XM") == encrypted_type(ColumnType("varchar", length=4)).length   # varchar(4) widened

    # a rerun of the same window: the digest is over the plaintext, so nothing is written
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert (again.unchanged, again.published, again.updated, again.inserted) == (3, 0, 0, 0)
    assert _rows(ctx) == first            # the same ciphertext, not a fresh IV

    # a changed row is republished, encrypted anew; the others stay as they were
    later = (ctx.now() + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    mini.execute("UPDATE CLINIC_VISIT SET PAT_NAME = '周五', UPDATE_TIME = ? WHERE VISIT_NO = 'V2'", (later,))
    changed = sync_table("visit", ctx=ctx, high_watermark=ctx.now() + timedelta(minutes=1))
    assert (changed.updated, changed.inserted) == (1, 0)
    after = _rows(ctx)
    assert after["V2"]["XGBZ"] == "2" and after["V2"]["XM"] != first["V2"]["XM"]
    assert reveal_value(ctx.engine, ctx.ops_schema, after["V2"]["XM"]) == "周五"
    assert after["V1"] == first["V1"] and after["V4"] == first["V4"]

    # hospital staff read a row back from a shell
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    out = subprocess.run([sys.executable, "-m", "hipbridge.cli", "frontend", "reveal", "MZJZJL", "--key", "JZLSH=V2",
                          "--db", frontend_url, "--specs", str(mini.specs)],
                         check=False, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout.strip())
    assert (shown["JZLSH"], shown["XM"], shown["HZWYBSH"]) == ("V2", "周五", "P2")
    missing = subprocess.run([sys.executable, "-m", "hipbridge.cli", "frontend", "reveal", "MZJZJL", "--key",
                              "JZLSH=NOPE", "--db", frontend_url, "--specs", str(mini.specs)],
                             check=False, capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and missing.stdout == ""
    # each reveal is in the hash-chained audit log (who, which row, which columns), and the chain holds
    with ctx.engine.connect() as c:
        events = c.execute(text(f"SELECT actor_type, action, object_type, object_id, result_code, detail_json FROM "
                                f"{ctx.dialect.table('audit_event', ctx.ops_schema)} WHERE action = 'REVEAL' "
                                f"ORDER BY id")).all()
    assert [(e[0], e[2], e[3], e[4]) for e in events] == [("system", "MZJZJL", "JZLSH=V2", "ok"),
                                                          ("system", "MZJZJL", "JZLSH=NOPE", "not_found")]
    assert "周五" not in str(events) and "HZWYBSH" in events[0][5]
    verify = subprocess.run([sys.executable, "-m", "hipbridge.cli", "audit", "verify", "--db", frontend_url],
                            check=False, capture_output=True, text=True, env=env, timeout=120)
    assert verify.returncode == 0, verify.stderr + verify.stdout
    # a revealed row that carries 证件号码 is found by the patient's "who looked at my data"
    from hipbridge.audit import who_viewed
    from hipbridge.cli.pipeline import _audit_reveal
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.ops import ensure_ops

    _audit_reveal(ctx, "HZJBXXB", {"HZWYBSH": "P9"}, ["ZJHM"], [{"ZJLXDM": "01", "ZJHM": "450102199001011234"}])
    seen = who_viewed(ctx.engine, ensure_ops(ctx.engine, ctx.ops_schema), KeyStore(), "01", "450102199001011234")
    assert [(e["action"], e["object_type"], e["object_id"]) for e in seen] == [("REVEAL", "HZJBXXB", "HZWYBSH=P9")]

    # the quality gate did not run value checks on ciphertext: required 患者唯一标识号 is Not Applicable, with why
    with ctx.engine.connect() as c:
        res = c.execute(text(f"SELECT status, error FROM {ctx.dialect.table('quality_result', ctx.ops_schema)} "
                             f"WHERE run_id = :b AND rule_id LIKE 'C01%' AND columns LIKE '%HZWYBSH%'"),
                        {"b": r.batch_id}).all()
    assert res and all(s == "Not Applicable" and "crypto.yaml" in e and "HZWYBSH" in e for s, e in res)


def test_switching_columns_on_widens_the_table_and_republishes_every_row_once(tmp_path, monkeypatch, mini,
                                                                               frontend_url):
    monkeypatch.setenv("HIPBRIDGE_CONFIG", str(_config(tmp_path, "{}", "plain")))
    plain = Context.create(mini.specs, frontend_url)
    assert plain.encrypted == {}
    sync_table("visit", ctx=plain)
    assert _rows(plain)["V1"]["XM"] == "张三" and _width(plain, "XM") == 4   # default: plaintext, declared width

    monkeypatch.setenv("HIPBRIDGE_CONFIG", str(_config(tmp_path, "{MZJZJL: sensitive}", "on")))
    ctx = Context.create(mini.specs, frontend_url)
    assert ctx.encrypted == {"visit": frozenset({"XM"})}     # by the province's table name; spec's sensitive columns
    from hipbridge.io.frontend import create_frontend

    report = create_frontend(ctx.engine, ctx.specs, encrypted=ctx.encrypted)
    assert report.widened == {"MZJZJL": ["XM"]}
    assert _width(ctx, "XM") == encrypted_type(ColumnType("varchar", length=4)).length
    r = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert (r.updated, r.unchanged) == (3, 0)        # another form of the row: republished once
    rows = _rows(ctx)
    assert all(row["XM"].startswith("v1:") for row in rows.values())
    assert {k: reveal_value(ctx.engine, ctx.ops_schema, row["XM"]) for k, row in rows.items()} == \
        {k: NAMES[k] for k in rows}
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert (again.updated, again.unchanged) == (0, 3)


def test_bad_entries_are_errors_naming_file_line_and_key(tmp_path, monkeypatch):
    specs = load_specs(ROOT / "table_specs")
    cases = {
        "{no_such_table: [XM]}": "no table spec 'no_such_table'",
        "{patient_info: [XM, NOPE]}": "has no column 'NOPE'",
        "{patient_info: [HZWYBSH]}": "primary key",
        "{patient_info: [CSRQ]}": "only text columns",
    }
    for i, (entry, message) in enumerate(cases.items()):
        config = _config(tmp_path, entry, f"bad{i}")
        with pytest.raises(ConfigError) as err:
            frontend_columns(specs, config)
        line = next(n for n, t in enumerate((config / "crypto.yaml").read_text(encoding="utf-8").splitlines(), 1)
                    if t.startswith("  tables:"))
        assert f"crypto.yaml:{line}: frontend.tables." in str(err.value) and message in str(err.value), str(err.value)
    got = frontend_columns(specs, _config(tmp_path, "{patient_info: sensitive, MZJZJL: [HZXM]}", "good"))
    assert got["patient_info"] == {c.name for c in specs.get("patient_info").columns if c.sensitive}
    assert got["op_visit"] == {"HZXM"}
    assert frontend_columns(specs, ROOT / "config") == {}     # the shipped default: nothing encrypted


def test_declared_width_holds_the_longest_ciphertext(hb_home):
    """Four-byte characters filling the declared length, under the longest key id the registry allows."""
    class Ring:
        def active(self, purpose):
            return "k" * 24, bytes(16)

        def key(self, key_id):
            return bytes(16)

    cipher = FieldCipher(Ring())
    for n in (1, 3, 4, 11, 12, 50, 200):
        values = ["𠀀" * n, "a" * n, "张" * n, None]
        tokens = cipher.encrypt_many(values)
        width = encrypted_type(ColumnType("varchar", length=n)).length
        assert max(len(t) for t in tokens if t) <= width
        assert [cipher.decrypt(t) for t in tokens] == values    # the batched CBC is plain SM4-CBC
    assert encrypted_type(ColumnType("text")).kind == "text"


def test_key_rotation_covers_the_frontend_columns_and_a_retired_key_is_destroyed_once_unused(tmp_path, monkeypatch, mini,
                                                                                      hb_home, mariadb_url):
    """`keys rotate` covers the front-end's encrypted columns and sweeps retired keys; `keys destroy`
    is refused while anything uses the key (generic SQL, MariaDB here)."""
    frontend_url = mariadb_url
    from hipbridge.crypto.fields import key_id_of
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.crypto.rotate import KeyInUse, destroy, rotate
    from hipbridge.crypto.sm import CryptoError
    from hipbridge.sharing.service import Lifecycle

    monkeypatch.setenv("HIPBRIDGE_CONFIG", str(_config(tmp_path, "{visit: [XM]}")))
    monkeypatch.setenv("HIPBRIDGE_SHARE_SCHEMA", f"{os.environ['HIPBRIDGE_OPS_SCHEMA']}_share")
    ctx = Context.create(mini.specs, frontend_url)
    sync_table("visit", ctx=ctx)
    before = _rows(ctx)
    share = os.environ["HIPBRIDGE_SHARE_SCHEMA"]
    try:
        life = Lifecycle.open(frontend_url, ctx.specs, KeyStore())
        old = {key_id_of(r["XM"]) for r in before.values()}
        rep = rotate(life, "data", batch_rows=2)
        assert rep.rewritten.get("MZJZJL") == 3 and set(rep.retired) == old
        after = _rows(ctx)
        assert all(key_id_of(r["XM"]) == rep.new_key and r["XM"] != before[k]["XM"] for k, r in after.items())

        # keys destroy: refused for a key in use, and for a retired key a straggler still uses (a batch
        # staged before the rotation, published after it); the next rotation sweeps it; then destroyed
        [gone] = old
        with pytest.raises(KeyInUse, match="active"):
            destroy(life, rep.new_key)
        straggler = before["V1"]["XM"]
        with ctx.engine.begin() as c:
            c.execute(text(f"UPDATE {ctx.dialect.table('MZJZJL')} SET XM = :x WHERE JZLSH = 'V1'"), {"x": straggler})
        with pytest.raises(KeyInUse, match="MZJZJL 1 行"):
            destroy(life, gone)
        swept = rotate(life, "data", batch_rows=2)
        assert swept.rewritten.get("MZJZJL") == 3 and gone not in swept.retired   # V1 (and the newer rows) rewritten
        destroy(life, gone)
        entry = next(e for e in life.ring.entries() if e["key_id"] == gone)
        assert entry["status"] == "destroyed" and entry["destroyed"] is not None
        with ctx.engine.connect() as c:
            assert c.execute(text(f"SELECT wrapped_key FROM {ctx.dialect.table('key_registry', ctx.ops_schema)} "
                                  "WHERE key_id = :k"), {"k": gone}).scalar() == ""
        with pytest.raises(CryptoError, match="销毁"):
            reveal_value(ctx.engine, ctx.ops_schema, straggler)
    finally:
        from hipbridge.io.engines import dispose_all

        dispose_all()
        with create_engine(MARIADB_ADMIN).begin() as c:     # the shared store it opened: ours to drop
            for db in (share, f"{share}_secure"):
                c.execute(text(f"DROP DATABASE IF EXISTS `{db}`"))
    after = _rows(ctx)
    assert {k: reveal_value(ctx.engine, ctx.ops_schema, r["XM"]) for k, r in after.items()} == \
        {k: NAMES[k] for k in after}
    again = sync_table("visit", "window", date(2026, 11, 20), date(2026, 11, 21), ctx=ctx)
    assert (again.unchanged, again.published) == (3, 0)     # the digest is over the plaintext
