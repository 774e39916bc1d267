"""Storage confidentiality and integrity (issue 12 items 1–3): keys, the encrypted shared store,
blind-index lookups, row MACs, rotation with concurrent reads, the production profile.

Against the simulated platform (real HTTP) and MariaDB, through `Lifecycle` as the DAGs use it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from tests import test_sharing_lifecycle as _lifecycle
from tests.test_sharing_lifecycle import ID_A, ID_B

world, spec_dir, share_schema = _lifecycle.world, _lifecycle.spec_dir, _lifecycle.share_schema   # fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _landing(life) -> dict[str, list[dict]]:
    out = {}
    with life.store.engine.connect() as c:
        for tid, t in life.store.tables.items():
            out[tid] = [dict(r) for r in c.execute(select(t)).mappings()]
    return out


def _secure_dump(life) -> str:
    parts = []
    with life.secure.engine.connect() as c:
        for st in life.secure.tables.values():
            parts += [repr(tuple(r)) for r in c.execute(select(st.table))]
    return "\n".join(parts)


def _push(w, appointment: str, id_no: str, name: str) -> str:
    w.book(appointment, id_no, datetime(2026, 3, 5, 9), name=name)
    w.drain()
    return w.auth(appointment)["auth_id"]


def test_ingest_moves_pushed_rows_into_encrypted_tables_and_reads_them_back(world):
    w = world
    auth = _push(w, "C1", ID_A, "钱七")
    before = _landing(w.life)
    pushed = sum(len(v) for v in before.values())
    assert pushed > 0 and "钱七" in repr(before)            # the platform writes plaintext (landing)

    rep = w.life.ingest(w.clock())                            # not verified yet, not old: waits
    assert rep.moved == {} and sum(rep.waiting.values()) == pushed
    w.life.verify(w.clock(), run_quality=False)
    rep = w.life.ingest(w.clock())
    assert sum(rep.moved.values()) == pushed and rep.waiting == {}
    assert sum(len(v) for v in _landing(w.life).values()) == 0   # the landing copy is gone

    dump = _secure_dump(w.life)
    assert "钱七" not in dump and ID_A not in dump
    for rows in before.values():
        for r in rows:
            for c in ("HZWYBSH",):
                if r.get(c):
                    assert r[c] not in dump                   # encrypt_also columns too
    st = w.life.secure.tables["lab_report"]                    # the real spec: name, ID number, patient id
    assert {"HZXM", "ZJHM", "HZWYBSH"} <= set(st.encrypted)
    with w.life.secure.engine.connect() as c:
        tokens = c.execute(select(st.table.c.HZXM, st.table.c.row_mac)).all()
    assert tokens and all(t.startswith("v1:") and len(t.split(":")) == 4 for t, _ in tokens)
    assert len({t for t, _ in tokens}) == len(tokens)          # random IV: equal names, different ciphertexts

    for tid, rows in before.items():                          # read back: decrypted, equal to what was pushed
        got = {tuple(r.key.values()): r for r in w.life.read(tid, auth_ids=[auth])}
        assert len(got) == len(rows)
        for r in rows:
            sr = got[tuple(r[k] for k in w.life.secure.tables[tid].pk)]
            assert not sr.tampered
            assert sr.data == r

    found = w.life.find(id_type="01", id_no=ID_A)             # blind index: no decryption involved
    with_id = {tid for tid in before if "ZJHM" in w.life.secure.tables[tid].table.c}
    assert with_id and set(found) == with_id                   # the pushed tables that carry 证件号码
    assert all(len(found[tid]) == len(before[tid]) for tid in with_id)
    assert w.life.find(id_type="01", id_no=ID_B) == {}
    pid = before["op_visit"][0]["HZWYBSH"]
    by_pid = w.life.find(patient_id=f"  {pid.lower()} ")        # normalised: trimmed, upper case
    assert {"HZWYBSH": pid} not in by_pid.get("op_visit", [])   # keys only, never the value
    assert any(k["MZJZLSH"] == before["op_visit"][0]["MZJZLSH"] for k in by_pid["op_visit"])


def test_tampered_shared_row_is_flagged_never_returned_as_data(world):
    w = world
    _push(w, "T1", ID_A, "孙八")
    w.life.verify(w.clock(), run_quality=False)
    w.life.ingest(w.clock())
    st = w.life.secure.tables["op_visit"]
    t = st.table
    with w.life.secure.engine.begin() as c:
        rows = c.execute(select(t.c.MZJZLSH, t.c.HZXM, t.c.JZKSSJ).order_by(t.c.MZJZLSH)).all()
        assert len(rows) >= 3
        (k0, n0, _), (k1, n1, _), (k2, _, d2) = rows[:3]
        # swap two valid ciphertexts (each still decrypts), and move a plaintext date by a day
        c.execute(t.update().where(t.c.MZJZLSH == k0).values(HZXM=n1))
        c.execute(t.update().where(t.c.MZJZLSH == k1).values(HZXM=n0))
        c.execute(t.update().where(t.c.MZJZLSH == k2).values(JZKSSJ=d2 + timedelta(days=1)))
    got = {r.key["MZJZLSH"]: r for r in w.life.read("op_visit")}
    for k in (k0, k1, k2):
        assert got[k].tampered and got[k].data is None and "篡改" in got[k].reason
    rest = [r for key, r in got.items() if key not in (k0, k1, k2)]
    assert rest and not any(r.tampered for r in rest) and all(r.data["HZXM"] == "孙八" for r in rest)


def test_purge_finds_the_patient_through_the_blind_index(world):
    w = world
    auth = _push(w, "P1", ID_A, "周九")
    w.life.verify(w.clock(), run_quality=False)
    w.life.ingest(w.clock())
    from hipbridge.sharing.secure import protect_row

    st = w.life.secure.tables["lab_report"]                    # a real spec that carries 证件号码
    # a row of the same patient that reached the store under an authId this hospital does not hold
    row = next(r.data for r in w.life.read("lab_report", auth_ids=[auth]))
    row = {**row, "JYJLLSH": "EXTRA-1", "auth_id": "AUTH-UNKNOWN"}
    row = {k: v for k, v in row.items() if k in st.table.c}   # a read row keeps the landing layout (row_sign)
    with w.life.secure.engine.begin() as c:
        c.execute(st.table.insert().values(protect_row(st, row, w.life.cipher, w.life.keys)))
    assert w.life.find(id_type="01", id_no=ID_A)["lab_report"].count({"YLJGDM": row["YLJGDM"],
                                                                      "JYJLLSH": "EXTRA-1"}) == 1
    total = w.shared_rows()
    w.post("/booking/cancel", appointmentId="P1")
    rep = w.drain()
    assert rep.revoked_patients                                 # the revocation purged at once
    assert w.shared_rows() == 0                                 # including the row under the unknown authId
    with w.life.frontend.connect() as c:
        dl = w.life.ops.table("deletion_log")
        logged = c.execute(select(dl.c.rows_deleted).where(dl.c.scope == "shared")).scalars().all()
    # the door's immediate purge and the outbox's may both log the same patient (each its own count)
    assert logged and sum(logged) >= total


def test_rotation_reencrypts_in_batches_while_readers_keep_reading(world):
    from hipbridge.crypto.fields import key_id_of
    from hipbridge.crypto.rotate import rotate

    w = world
    for i, (idn, name) in enumerate([(ID_A, "吴十"), (ID_B, "郑一")]):
        _push(w, f"R{i}", idn, name)
    w.life.verify(w.clock(), run_quality=False)
    w.life.ingest(w.clock())
    expected = {tid: {tuple(r.key.values()): r.data for r in w.life.read(tid)} for tid in w.life.secure.tables}
    old = w.life.ring.active_id("data")
    failures, reads, progress = [], [0], []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            for tid, want in expected.items():
                for r in w.life.read(tid):
                    if r.tampered or r.data != want[tuple(r.key.values())]:
                        failures.append((tid, r.key, r.reason))
            reads[0] += 1

    th = threading.Thread(target=reader)
    th.start()
    try:
        rep = rotate(w.life, "data", batch_rows=7, progress=lambda d, t: progress.append((d, t)))
        rep_row = rotate(w.life, "row", batch_rows=11)
    finally:
        stop.set()
        th.join()
    assert failures == [] and reads[0] >= 2
    assert rep.old_keys == [old] and rep.retired == [old] and rep.tampered == {}
    total = sum(len(v) for v in expected.values())
    encrypted = sum(len(expected[t]) for t, st in w.life.secure.tables.items() if st.encrypted)
    assert 0 < encrypted < total                               # tables without personal columns have no ciphertext
    assert sum(rep.rewritten.values()) == encrypted and progress[-1] == (encrypted, encrypted)
    assert len(progress) >= 1 + encrypted // 7                 # in batches of 7 rows, each reported
    assert rep_row.retired and sum(rep_row.rewritten.values()) == total
    with w.life.secure.engine.connect() as c:
        for st in w.life.secure.tables.values():
            for r in c.execute(select(st.table)).mappings():
                assert all(key_id_of(r[col]) in (rep.new_key, None) for col in st.encrypted)
                assert r["row_mac"].startswith(rep_row.new_key + ":")
    status = {e["key_id"]: e["status"] for e in w.life.ring.entries()}
    assert status[old] == "retired" and status[rep.new_key] == "active"
    assert {tid: {tuple(r.key.values()): r.data for r in w.life.read(tid)} for tid in expected} == expected


def test_rotation_leaves_a_tampered_row_alone(world):
    from hipbridge.crypto.rotate import rotate

    w = world
    _push(w, "Z1", ID_A, "王二")
    w.life.verify(w.clock(), run_quality=False)
    w.life.ingest(w.clock())
    t = w.life.secure.tables["op_visit"].table
    with w.life.secure.engine.begin() as c:
        k = c.execute(select(t.c.MZJZLSH).limit(1)).scalar()
        c.execute(t.update().where(t.c.MZJZLSH == k).values(JZKSSJ=datetime(2000, 1, 1)))
    rep = rotate(w.life, "row", batch_rows=5)
    assert rep.tampered == {f"{w.life.secure.schema}.{t.name}": 1} and rep.retired == []
    assert next(r for r in w.life.read("op_visit") if r.key["MZJZLSH"] == k).tampered   # still shown as tampered


# ---------------------------------------------------------------- keys, providers, profile (no servers)


def test_software_keystore_wraps_deks_and_key_files_are_0600(hb_home):
    from hipbridge.crypto.atrest import forget_keyrings, keyring_for
    from hipbridge.crypto.fields import FieldCipher
    from hipbridge.crypto.provider import SoftwareKeyProvider
    from hipbridge.crypto.sm import CryptoError
    from hipbridge.io.engines import engine_for

    keydir = hb_home / "keys"
    provider = SoftwareKeyProvider(keydir)
    engine = engine_for(f"sqlite:///{hb_home / 'fe.db'}", "hbops")
    ring = keyring_for(engine, "hbops", provider)
    cipher = FieldCipher(ring)
    token = cipher.encrypt("450102199001011234")
    kid = token.split(":")[1]
    assert kid == ring.active_id("data") and cipher.decrypt(token) == "450102199001011234"
    for f in keydir.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    entry = next(e for e in ring.entries() if e["key_id"] == kid)
    assert entry["purpose"] == "data" and entry["alg"] == "SM4-CBC" and entry["status"] == "active"
    with engine.connect() as c:
        wrapped = c.execute(text("SELECT wrapped_key FROM hbops.key_registry WHERE key_id = :k"), {"k": kid}).scalar()
    assert ring.key(kid).hex() not in wrapped and len(wrapped) > 20
    forget_keyrings()                                     # a new process: unwraps from the registry
    assert FieldCipher(keyring_for(engine, "hbops", SoftwareKeyProvider(keydir))).decrypt(token) == "450102199001011234"
    forget_keyrings()
    other = keyring_for(engine, "hbops", SoftwareKeyProvider(hb_home / "other-keys"))   # a different KEK
    with pytest.raises(CryptoError, match="解封失败"):
        FieldCipher(other).decrypt(token)
    with pytest.raises(CryptoError, match="格式错误"):
        cipher.decrypt("v1:" + kid + ":not base64!:x")
    forget_keyrings()


def test_kek_rotation_rewraps_the_deks_and_deletes_the_old_kek(hb_home):
    """`hipbridge keys rotate-kek`: every DEK of the purpose is re-wrapped under a new KEK (0600), the
    old KEK file is deleted, the data keys and so every ciphertext stay as they were; a copy of the
    old KEK opens nothing any more; a process that cached nothing reads everything."""
    import shutil

    from hipbridge.crypto.atrest import forget_keyrings, keyring_for
    from hipbridge.crypto.fields import FieldCipher
    from hipbridge.crypto.provider import SoftwareKeyProvider
    from hipbridge.crypto.sm import CryptoError
    from hipbridge.io.engines import engine_for

    keydir = hb_home / "keys"
    engine = engine_for(f"sqlite:///{hb_home / 'fe.db'}", "hbops")
    ring = keyring_for(engine, "hbops", SoftwareKeyProvider(keydir))
    first = FieldCipher(ring).encrypt("张三")
    second_key = ring.create("data", activate=True)          # two DEKs of the purpose, one readable
    second = FieldCipher(ring).encrypt("450102199001011234")
    assert second.split(":")[1] == second_key
    shutil.copytree(keydir, hb_home / "old-keys")

    def wrapped() -> dict[str, str]:
        with engine.connect() as c:
            return dict(c.execute(text("SELECT key_id, wrapped_key FROM hbops.key_registry WHERE purpose = 'data'")).all())

    before = wrapped()
    rep = ring.rewrap_all("data")
    assert rep["kek_version"] == 1 and set(rep["rewrapped"]) == set(before)
    after = wrapped()
    assert all(after[k] != before[k] for k in before)
    assert not (keydir / "kek_data.hex").exists() and (keydir / "kek_data_v1.hex").exists()
    assert stat.S_IMODE((keydir / "kek_data_v1.hex").stat().st_mode) == 0o600
    forget_keyrings()
    fresh = FieldCipher(keyring_for(engine, "hbops", SoftwareKeyProvider(keydir)))
    assert (fresh.decrypt(first), fresh.decrypt(second)) == ("张三", "450102199001011234")
    assert fresh.encrypt("李四").split(":")[1] == second_key      # the active DEK is unchanged
    forget_keyrings()
    stale = keyring_for(engine, "hbops", SoftwareKeyProvider(hb_home / "old-keys"))
    with pytest.raises(CryptoError, match="KEK"):
        FieldCipher(stale).decrypt(first)
    forget_keyrings()
    again = keyring_for(engine, "hbops", SoftwareKeyProvider(keydir)).rewrap_all("data")   # a second rotation
    assert again["kek_version"] == 2 and sorted(p.name for p in keydir.glob("kek_data*")) == ["kek_data_v2.hex"]
    forget_keyrings()
    assert FieldCipher(keyring_for(engine, "hbops", SoftwareKeyProvider(keydir))).decrypt(first) == "张三"
    forget_keyrings()
    from hipbridge.crypto.provider import SdfKeyProvider

    with pytest.raises(CryptoError, match="KEK rotation"):   # the device's KEKs are the device's business
        SdfKeyProvider(None).new_kek("data")


def test_sdf_boundary_refuses_clearly_and_production_refuses_development_keys(hb_home, monkeypatch):
    from hipbridge import profiles
    from hipbridge.crypto.provider import (
        DevelopmentKeysRefused,
        DeviceNotConfigured,
        SdfKeyProvider,
        SoftwareKeyProvider,
        check_profile,
        provider_from_config,
    )

    sdf = SdfKeyProvider(None, {"data": 1})
    for call in (lambda: sdf.random(16), lambda: sdf.wrap("data", "k", b"x" * 16), lambda: sdf.unwrap("data", "k", b"")):
        with pytest.raises(DeviceNotConfigured, match="HIPBRIDGE_SDF_LIBRARY"):
            call()
    with pytest.raises(DeviceNotConfigured, match="不存在"):
        SdfKeyProvider("/nonexistent/libsdf.so").random(16)
    production = profiles.load("production")
    check_profile(sdf, production)                        # a device provider passes the profile check
    with pytest.raises(DevelopmentKeysRefused, match="production"):
        check_profile(SoftwareKeyProvider(hb_home / "k"), production)
    monkeypatch.setenv("HIPBRIDGE_PROFILE", "production")
    assert isinstance(provider_from_config(), SdfKeyProvider)   # the profile's key_provider: sdf

    # joint testing made keys with the development keystore; production then refuses to start on them
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "plugins"), "HIPBRIDGE_PROFILE": "test"}
    cli = [sys.executable, "-m", "hipbridge.cli", "keys"]
    r = subprocess.run([*cli, "rotate", "--quiet"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, "rotate-kek"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and "已轮换为 v1" in r.stdout, r.stderr
    listed = json.loads(subprocess.run([*cli, "list", "--json"], env=env, capture_output=True, text=True, timeout=120,
                                       check=True).stdout)
    active = next(e["key_id"] for e in listed if e["purpose"] == "data" and e["status"] == "active")
    r = subprocess.run([*cli, "destroy", active], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "状态为 active" in r.stderr, r.stderr
    env["HIPBRIDGE_PROFILE"] = "production"
    r = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "拒绝使用开发密钥" in r.stderr and "由开发密钥库生成" in r.stderr, r.stderr
    # and on a fresh front-end it needs the device, with no silent fallback to software keys
    env["HIPBRIDGE_FRONTEND_URL"] = f"sqlite:///{hb_home / 'fresh.db'}"
    r = subprocess.run([*cli, "rotate", "--quiet"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "服务器密码机不可用" in r.stderr, r.stderr


def test_spool_files_of_a_killed_process_are_removed_at_once(tmp_path, monkeypatch):
    from hipbridge.io.spool import clear_stale_spool, spool_prefix

    monkeypatch.setenv("HIPBRIDGE_SPOOL_DIR", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                           # a process that is gone (its pid is free)
    mine = tmp_path / f"{spool_prefix()}live.tsv"         # this process's file: a live transfer
    gone = tmp_path / f"hb_stage_{dead.pid}_abc.tsv"
    for f in (mine, gone):
        f.write_text(f"\"{ID_A}\"\t\"张三\"\n", encoding="utf-8")
    assert clear_stale_spool() == 1
    assert mine.exists() and not gone.exists()


def test_display_reader_sees_ingested_rows_decrypted_and_leaves_tampered_ones_out(world):
    from hipbridge.display.config import display_config
    from hipbridge.display.records import StoreReader

    w = world
    auth = _push(w, "D1", ID_A, "冯三")
    reader = StoreReader(w.life.store, display_config())
    before = reader.patient([auth])
    w.life.verify(w.clock(), run_quality=False)
    w.life.ingest(w.clock())
    after = reader.patient([auth])                    # landing now empty: the rows come decrypted from secure
    assert sum(map(len, before.values())) > 0
    assert {k: sorted(map(repr, v)) for k, v in after.items()} == {k: sorted(map(repr, v)) for k, v in before.items()}
    assert reader.tampered == []
    t = w.life.secure.tables["op_visit"].table
    with w.life.secure.engine.begin() as c:
        k = c.execute(select(t.c.MZJZLSH).limit(1)).scalar()
        c.execute(t.update().where(t.c.MZJZLSH == k).values(JZKSSJ=datetime(2001, 1, 1)))
    again = reader.patient([auth])
    assert len(again["visit"]) == len(after["visit"]) - 1
    assert [x["key"]["MZJZLSH"] for x in reader.tampered] == [k]
