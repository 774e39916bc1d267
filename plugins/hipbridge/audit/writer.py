"""Group commit for the audit chain: concurrent requests wait for one shared transaction.

Every view of external data must be in the audit log before the data leaves the service, so a
request blocks until its event is committed. The chain serializes appends on its tail row; with
ten doctors' pages calling at once, one writer thread appending everything queued in a single
transaction (one lock, one commit) keeps the wait near one commit instead of ten in a row.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

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
    def __init__(self, engine: Engine, ops: Ops, keys: KeyStore, max_batch: int = 500):
        self.engine, self.ops, self.keys = engine, ops, keys
        self.max_batch = max_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, events: list[dict[str, Any]], timeout: float = 30.0) -> None:
        """Append `events` (in order) and return once they are committed; raise AuditUnavailable otherwise."""
        if not events:
            return
        self._start()
        p = _Pending(events)
        self._queue.put(p)
        if not p.done.wait(timeout):
            raise AuditUnavailable("审计日志写入超时")
        if p.error is not None:
            raise AuditUnavailable(f"审计日志写入失败: {type(p.error).__name__}") from p.error

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                with self.engine.begin() as conn:
                    append(conn, self.ops, self.keys, [e for p in batch for e in p.events])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                log.error("审计日志写入失败: %s", type(exc).__name__)
                for p in batch:
                    p.error = exc
            for p in batch:
                p.done.set()
