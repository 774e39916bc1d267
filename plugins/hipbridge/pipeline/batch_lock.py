"""Who is transferring a batch right now: a session lock held for the whole transfer.

Why: a batch's staging table holds the batch's rows in plaintext (publish copies them into the
province's plaintext tables with set-based SQL, so they cannot be ciphertext). They must never
outlive the batch. A process killed mid-transfer cannot drop its own table; its session lock,
though, dies with it. The next transfer of the table takes each abandoned `planned` batch's lock
(non-blocking): if it gets it, nobody is transferring that batch and its table is dropped, under
the lock, so a transfer starting at that moment waits for nothing and recreates its table.

MariaDB/MySQL: `GET_LOCK` (named, per session); PostgreSQL: `pg_try_advisory_lock`; SQLite (one
host by nature): `flock` on a file in the hipbridge home. Each is its dialect's `try_lock`
(`io/dialects.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.engine import Engine

from hipbridge.io.dialects import frontend_dialect


@contextlib.contextmanager
def try_lock(engine: Engine, batch_id: str) -> Iterator[bool]:
    """Take the batch's transfer lock without waiting; yields whether it was taken (released on exit).

    A dialect without session locks yields False: as if someone held it (never drop another's table).
    """
    with frontend_dialect(engine).try_lock(engine, batch_id) as got:
        yield got
