"""Group commit for the audit chain: concurrent requests wait for one shared transaction.

Every view of external data must be in the audit log before the data leaves the service, so a
request blocks until its event is committed. The chain serializes appends on its tail row; with
ten doctors' pages calling at once, appending everything queued in a single transaction (one lock,
one commit) keeps the wait near one commit instead of ten in a row.
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

from .chain import append

log = logging.getLogger("hipbridge.audit.writer")


class AuditUnavailable(RuntimeError):
    """The audit log could not be written: the caller must not show the data."""


@dataclass
class _Pending:
    events: list[dict[str, Any]]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class AuditWriter:
    """`record(events)` returns once the events are committed. The first caller to find no write in
    progress becomes the leader and writes everything queued by then in one transaction (no thread
    hand-off for a lone request); callers arriving meanwhile wait for the leader's next round."""

    def __init__(self, engine: Engine, ops: Ops, keys: KeyStore, max_batch: int = 500):
        self.engine, self.ops, self.keys = engine, ops, keys
        self.max_batch = max_batch
        self._pending: list[_Pending] = []
        self._writing = False
        self._tail: tuple[str, int] | None = None    # what this writer appended last (chain.append)
        self._lock = threading.Lock()

    def record(self, events: list[dict[str, Any]], timeout: float = 30.0) -> None:
        """Append `events` (in order) and return once they are committed; raise AuditUnavailable otherwise."""
        if not events:
            return
        p = _Pending(events)
        with self._lock:
            self._pending.append(p)
            leader = not self._writing
            if leader:
                self._writing = True
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
                    self._writing = False
                    return
            error = self._write([e for p in batch for e in p.events])
            for p in batch:
                p.error = error
                p.done.set()

    def _write(self, events: list[dict[str, Any]]) -> BaseException | None:
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    tail = append(conn, self.ops, self.keys, events, tail=self._tail)
                self._tail = tail
                return None
            except DBAPIError as exc:   # a pooled connection the server dropped: once more on a fresh one
                self._tail = None
                if attempt == 1 and exc.connection_invalidated:
                    continue
                log.error("审计日志写入失败: %s", type(exc).__name__)
                return exc
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                self._tail = None
                log.error("审计日志写入失败: %s", type(exc).__name__)
                return exc
        return None

    def close(self) -> None:
        """Nothing to stop: writes happen in the callers' threads."""
