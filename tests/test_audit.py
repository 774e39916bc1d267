"""The hash-chained audit log: concurrent appends stay one chain; `hipbridge audit verify` (a subprocess)
finds a changed event, a deleted event in the middle, deleted events at the tail, a forged anchor."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime

from sqlalchemy import select


def _verify(url: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIPBRIDGE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "hipbridge.cli", "audit", "verify", "--db", url],
                          capture_output=True, text=True, env=env, check=False)


def test_chain_detects_tampering_and_deletion(hb_home, mariadb_url):
    import hipbridge.platform.state  # noqa: F401
    from hipbridge.audit import AuditWriter, verify
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.engines import engine_for
    from hipbridge.io.ops import ensure_ops

    schema = os.environ["HIPBRIDGE_OPS_SCHEMA"]
    engine = engine_for(mariadb_url, schema)
    ops = ensure_ops(engine, schema)
    keys = KeyStore(hb_home / "keys")
    writer = AuditWriter(engine, ops, keys)

    def doctor(n: int) -> None:
        for i in range(5):
            writer.record([{"ts": datetime(2026, 3, 2, 9, 0, i), "actor_type": "doctor", "actor_id": f"D{n}",
                            "patient_key": "k" * 64, "action": "VIEW_REPORT", "object_type": "lab",
                            "object_id": f"R{n}-{i}", "detail": {"visitId": "ZY1"}}])

    threads = [threading.Thread(target=doctor, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    rep = verify(engine, ops, keys)
    assert rep.intact and rep.events == 30
    ok = _verify(mariadb_url, hb_home)
    assert ok.returncode == 0 and "30 条事件" in ok.stdout

    ev, anchor = ops.table("audit_event"), ops.table("audit_chain")
    with engine.connect() as c:
        rows = [dict(r) for r in c.execute(select(ev).order_by(ev.c.id)).mappings()]
        sealed = dict(c.execute(select(anchor)).mappings().one())
    victim = rows[10]
    with engine.begin() as c:    # someone hides that a doctor opened a report
        c.execute(ev.update().where(ev.c.id == victim["id"]).values(actor_id="D9"))
    bad = _verify(mariadb_url, hb_home)
    assert bad.returncode == 1 and f"审计事件 {victim['id']} 的内容被改动" in bad.stderr
    with engine.begin() as c:
        c.execute(ev.update().where(ev.c.id == victim["id"]).values(actor_id=victim["actor_id"]))
        c.execute(ev.delete().where(ev.c.id == victim["id"]))
    bad = _verify(mariadb_url, hb_home)
    assert bad.returncode == 1 and f"审计事件 {rows[11]['id']} 之前的事件被删除" in bad.stderr
    with engine.begin() as c:
        c.execute(ev.insert().values(victim))
    assert _verify(mariadb_url, hb_home).returncode == 0
    with engine.begin() as c:    # the last two events removed: the chain left behind is consistent …
        c.execute(ev.delete().where(ev.c.id.in_([rows[-1]["id"], rows[-2]["id"]])))
    bad = _verify(mariadb_url, hb_home)
    assert bad.returncode == 1 and "末尾事件被删除" in bad.stderr          # … but the anchor counts 30
    with engine.begin() as c:    # and the anchor cannot be rewritten to match without K_log
        c.execute(anchor.update().values(events=28, last_mac=rows[-3]["mac"]))
    bad = _verify(mariadb_url, hb_home)
    assert bad.returncode == 1 and "锚点被改动" in bad.stderr
    with engine.begin() as c:
        c.execute(ev.insert(), [rows[-2], rows[-1]])
        c.execute(anchor.update().values(events=sealed["events"], last_mac=sealed["last_mac"]))
    assert _verify(mariadb_url, hb_home).returncode == 0


def test_writers_of_several_processes_keep_one_chain(hb_home, mariadb_url):
    """Two writers (as the display service and the booking door would be) and plain appends interleave:
    a writer whose remembered tail is stale falls back to reading it under lock; the chain stays whole."""
    import hipbridge.platform.state  # noqa: F401
    from hipbridge.audit import AuditWriter, verify
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.engines import engine_for
    from hipbridge.io.ops import ensure_ops
    from hipbridge.platform.state import audit

    schema = os.environ["HIPBRIDGE_OPS_SCHEMA"]
    engine = engine_for(mariadb_url, schema)
    ops = ensure_ops(engine, schema)
    keys = KeyStore(hb_home / "keys")
    w1, w2 = AuditWriter(engine, ops, keys), AuditWriter(engine, ops, keys)
    ev = {"ts": datetime(2026, 3, 2, 9, 0), "actor_type": "doctor", "action": "VIEW_TIMELINE"}
    for i in range(4):
        w1.record([ev | {"actor_id": f"A{i}"}])
        w1.record([ev | {"actor_id": f"B{i}"}])     # the fast path: its own tail
        w2.record([ev | {"actor_id": f"C{i}"}])     # stale tail after w1's appends: the locked path
        with engine.begin() as c:
            audit(c, ops, keys, ts=ev["ts"], actor_type="system", action="OUTBOX_GRANT", actor_id=f"D{i}")
    rep = verify(engine, ops, keys)
    assert rep.intact and rep.events == 16


def test_a_second_batch_is_written_while_the_first_commits(hb_home, mariadb_url):
    """The writer seals the next batch against the tail the previous one leaves and writes it while that
    one commits (two transactions at once, never more); a batch that fails makes the next one read the
    tail under lock: the chain stays whole and holds exactly the events of the requests told "ok"."""
    import time

    import hipbridge.platform.state  # noqa: F401
    from hipbridge.audit import AuditUnavailable, AuditWriter, verify
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.engines import engine_for
    from hipbridge.io.ops import ensure_ops
    from sqlalchemy import event

    schema = os.environ["HIPBRIDGE_OPS_SCHEMA"]
    engine = engine_for(mariadb_url, schema)
    ops = ensure_ops(engine, schema)
    keys = KeyStore(hb_home / "keys")
    writer = AuditWriter(engine, ops, keys)
    lock, state = threading.Lock(), {"open": 0, "most": 0, "fail": set()}

    def began(conn):
        with lock:
            state["open"] += 1
            state["most"] = max(state["most"], state["open"])

    def ending(conn):
        time.sleep(0.05)              # a slow flush: the next batch has time to start
        with lock:
            state["open"] -= 1

    def insert_hook(conn, cursor, statement, params, context, executemany):
        rows = params if isinstance(params, list) else [params]
        if "audit_event" in statement and any(str(r.get("actor_id", "")) in state["fail"] for r in rows):
            raise RuntimeError("disk full")        # this batch fails after moving the tail row

    event.listen(engine, "begin", began)
    event.listen(engine, "commit", ending)
    event.listen(engine, "rollback", ending)
    event.listen(engine, "before_cursor_execute", insert_hook)
    state["fail"] = {"D3-1"}
    told_ok, refused = [], []

    def doctor(n: int) -> None:
        for i in range(4):
            actor = f"D{n}-{i}"
            try:
                writer.record([{"ts": datetime(2026, 3, 2, 9, 0, i), "actor_type": "doctor", "actor_id": actor,
                                "action": "VIEW_TIMELINE"}])
                told_ok.append(actor)
            except AuditUnavailable:
                refused.append(actor)

    try:
        threads = [threading.Thread(target=doctor, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for name, fn in (("begin", began), ("commit", ending), ("rollback", ending),
                         ("before_cursor_execute", insert_hook)):
            event.remove(engine, name, fn)
    assert state["most"] == 2                        # pipelined, and never more than two in flight
    assert "D3-1" in refused and len(told_ok) + len(refused) == 32
    ev = ops.table("audit_event")
    with engine.connect() as c:
        stored = set(c.execute(select(ev.c.actor_id)).scalars())
    assert stored == set(told_ok)                    # every "ok" is stored; nothing refused is
    rep = verify(engine, ops, keys)
    assert rep.intact and rep.events == len(told_ok)
