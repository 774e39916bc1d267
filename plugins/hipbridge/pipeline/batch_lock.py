"""Who is transferring a batch right now: a session lock held for the whole transfer.

Why: a batch's staging table holds the batch's rows in plaintext (publish copies them into the
province's plaintext tables with set-based SQL, so they cannot be ciphertext). They must never
outlive the batch. A process killed mid-transfer cannot drop its own table; its session lock,
though, dies with it. The next transfer of the table takes each abandoned `planned` batch's lock
(non-blocking): if it gets it, nobody is transferring that batch and its table is dropped, under
the lock, so a transfer starting at that moment waits for nothing and recreates its table.

MariaDB/MySQL: `GET_LOCK` (named, per session); PostgreSQL: `pg_try_advisory_lock`; SQLite (one
host by nature): `flock` on a file in the hipbridge home.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.engine import Engine


def _name(batch_id: str) -> str:
    return "hb_xfer_" + hashlib.sha1(batch_id.encode()).hexdigest()[:40]


def _pg_key(batch_id: str) -> int:
    return int.from_bytes(hashlib.sha1(batch_id.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def try_lock(engine: Engine, batch_id: str) -> Iterator[bool]:
    """Take the batch's transfer lock without waiting; yields whether it was taken (released on exit)."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        from hipbridge.io.engines import home

        folder = home() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{_name(batch_id)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return
    conn = engine.connect()
    try:
        if dialect in ("mysql", "mariadb"):
            got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": _name(batch_id)}).scalar() == 1
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _name(batch_id)})
                    conn.commit()
        elif dialect == "postgresql":
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _pg_key(batch_id)}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _pg_key(batch_id)})
                    conn.commit()
        else:  # no session locks: behave as if someone held it (never drop another's table)
            yield False
    finally:
        conn.close()
