"""Group commit for the audit chain: concurrent requests wait for one shared transaction.

Every view of external data must be in the audit log before the data leaves the service, so a
request blocks until its event is committed. The chain serializes appends on its tail row; with
ten doctors' pages calling at once, appending everything queued in a single transaction (one lock,
one commit) keeps the wait near one commit instead of ten in a row, and a second batch written while
the first one's commit is flushed keeps it from waiting for two.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from hipbridge.crypto.keys import KeyStore
from hipbridge.io.ops import Ops

from .chain import append, seal

log = logging.getLogger("hipbridge.audit.writer")


class AuditUnavailable(RuntimeError):
    """The audit log could not be written: the caller must not show the data."""


@dataclass
class _Pending:
    events: list[dict[str, Any]]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class AuditWriter:
    """`record(events)` returns once the events are committed. The first caller to find a write slot free
    becomes a leader and writes everything queued by then in one transaction (no thread hand-off for a
    lone request); callers arriving meanwhile wait for a leader's next round.

    Up to `pipeline` leaders write at once (default 2): the chain is computed here, under the lock, from
    the tail the previous batch will leave, so the next batch's UPDATE and INSERT go out while the
    previous one's commit is still being flushed, and the database flushes both together (InnoDB releases
    the tail row's lock before the log flush). The chain stays whole whatever happens: each batch moves
    the tail only if it is still the one it was sealed against (chain.append), else — the previous batch
    failed, or another process appended — it reads the tail under lock and seals again."""

    def __init__(self, engine: Engine, ops: Ops, keys: KeyStore, max_batch: int = 500, pipeline: int = 2):
        self.engine, self.ops, self.keys = engine, ops, keys
        self.max_batch, self.pipeline = max_batch, max(1, pipeline)
        self._pending: list[_Pending] = []
        self._writers = 0                            # leaders writing now (≤ pipeline)
        self._tail: tuple[str, int] | None = None    # the tail after the last batch sealed here (chain.append)
        self._gen = 0                                # batches sealed here: the newest one sets _tail
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def record(self, events: list[dict[str, Any]], timeout: float = 30.0) -> None:
        """Append `events` (in order) and return once they are committed; raise AuditUnavailable otherwise."""
        if not events:
            return
        p = _Pending(events)
        with self._lock:
            self._pending.append(p)
            leader = self._writers < self.pipeline
            if leader:
                self._writers += 1
        if leader:
            self._lead()
        elif not p.done.wait(timeout):
            raise AuditUnavailable("审计日志写入超时")
        if p.error is not None:
            raise AuditUnavailable(f"审计日志写入失败: {type(p.error).__name__}") from p.error

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
                if not batch:
                    self._writers -= 1
                    return
                events = [e for p in batch for e in p.events]
                if self._key is None:       # K_log never rotates (the chain's MACs are over it): read it once
                    self._key = self.keys.secret("log")
                tail = self._tail
                if tail is not None:        # the tail this batch leaves: the next leader seals against it
                    _rows, last = seal(self._key, tail[0], events)
                    self._tail = (last, tail[1] + len(events))
                self._gen += 1
                gen = self._gen
            error, result = self._write(events, tail)
            with self._lock:
                if gen == self._gen:        # no batch sealed after this one: its outcome is the tail
                    self._tail = result if error is None else None
            for p in batch:
                p.error = error
                p.done.set()

    def _write(self, events: list[dict[str, Any]],
               tail: tuple[str, int] | None) -> tuple[BaseException | None, tuple[str, int] | None]:
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    result = append(conn, self.ops, self.keys, events, tail=tail, key=self._key)
                return None, result
            except DBAPIError as exc:   # a pooled connection the server dropped: once more on a fresh one
                tail = None
                if attempt == 1 and exc.connection_invalidated:
                    continue
                log.error("审计日志写入失败: %s", type(exc).__name__)
                return exc, None
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                log.error("审计日志写入失败: %s", type(exc).__name__)
                return exc, None
        return None, None

    def close(self) -> None:
        """Nothing to stop: writes happen in the callers' threads."""
