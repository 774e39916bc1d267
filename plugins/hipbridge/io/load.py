"""Loading conformed chunks into a batch's staging table, in the background where the dialect has a bulk loader.

The loaders themselves (LOAD DATA, COPY, executemany) are the dialect's (`dialects.py`); their
text form is `bulktext.py`. While the loader thread writes one chunk, the caller reads and
conforms the next (`StagingWriter`).
"""

from __future__ import annotations

import queue
import threading

import pandas as pd
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from .dialects import BulkLoadError, frontend_dialect
from .staging import date_only_columns, loaded_columns

__all__ = ["BulkLoadError", "StagingWriter", "stage_rows"]


def stage_rows(conn: Connection, staging: Table, frame: pd.DataFrame) -> int:
    """Stage a conformed chunk: LOAD DATA LOCAL INFILE (MySQL/MariaDB), COPY (PostgreSQL), executemany otherwise.

    `HIPBRIDGE_BULK_LOAD=0` forces the generic insert (for comparison and diagnosis).
    """
    if frame.empty:
        return 0
    frontend_dialect(conn).stage(conn, staging, frame, loaded_columns(staging), date_only_columns(staging))
    return len(frame)


# ---------------------------------------------------------------- staging in the background


class StagingWriter:
    """Stages conformed chunks, one transaction each; on MySQL/MariaDB and PostgreSQL from a background thread.

    The caller's thread turns a chunk into loader text (Python work) and hands it over; the
    thread runs LOAD DATA / COPY and `write_extra(conn, extra)` (the chunk's quarantine rows) in
    one transaction, while the caller reads and conforms the next chunk. At most one chunk is
    in flight, so memory stays bounded by the chunk size. An error in the thread is raised in
    the caller at its next `submit` or at `close`.
    """

    def __init__(self, engine, staging: Table, write_extra=None):
        self.engine = engine
        self.staging = staging
        self.write_extra = write_extra
        self.dialect = frontend_dialect(engine)
        self.cols = loaded_columns(staging)
        self.date_only = date_only_columns(staging)
        self.threaded = self.dialect.bulk
        self.error: BaseException | None = None
        self.rows = 0
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        if self.threaded:
            self._thread = threading.Thread(target=self._run, name=f"stage-{staging.name}", daemon=True)
            self._thread.start()

    def submit(self, frame: pd.DataFrame, extra=None) -> None:
        self._raise()
        if not self.threaded:
            with self.engine.begin() as conn:
                stage_rows(conn, self.staging, frame)
                if self.write_extra is not None:
                    self.write_extra(conn, extra)
            self.rows += len(frame)
            return
        payload = None if frame.empty else self.dialect.loader_payload(frame, self.cols, self.date_only)
        self._queue.put((payload, len(frame), extra))
        self._raise()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            payload, n, extra = item
            try:
                if self.error is None:
                    with self.engine.begin() as conn:
                        if payload is not None:
                            self.dialect.load_payload(conn, self.staging, self.cols, payload, n)
                        if self.write_extra is not None:
                            self.write_extra(conn, extra)
                    self.rows += n
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self.error = exc
            finally:
                if payload is not None:
                    self.dialect.discard_payload(payload)

    def _raise(self) -> None:
        if self.error is not None:  # kept: later chunks are discarded, not loaded
            raise self.error

    def close(self) -> int:
        """Wait for the last chunk; raise the thread's error if there was one. Returns rows staged."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()
        return self.rows

    def abort(self) -> None:
        """Stop without raising (the caller is already handling an error)."""
        if self._thread is not None:
            self.error = self.error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
            self._thread = None
