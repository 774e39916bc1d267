"""The 不互认 reason dictionary: loaded from the platform, with a cached fallback (interfaces.md §A10).

    d = ReasonDictionary(rec, frontend, ops, fetch=lambda: client.call("hr_reasons", {...}))
    d.refresh()        # ask the platform now; on success the list is kept in ops.recognition_reason
    d.current()        # the live list; the platform down → the last list it gave (ops) → the shipped seed

The platform names the codes (`config/platform.yaml` messages.hr_reasons / response.reasons, items read
with `config/recognition.yaml` reasons_platform). Which codes are not counted as refusals (98 / 99)
and which need a diagnosis (99) are national rules the platform's list does not carry: they come from
the seed (`config/recognition/reasons.csv`) by code; a code the seed does not know is counted and
needs no diagnosis. A stale list is refreshed in the background: a doctor never waits for the platform.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from hipbridge.io.ops import Ops

from .catalog import Reason, Recognition

log = logging.getLogger("hipbridge.recognition.reasons")


def from_platform(items: Any, rec: Recognition) -> dict[str, Reason]:
    """The platform's list as Reasons (flags from the seed by code); raises ValueError when it is unusable."""
    f = rec.cfg.reasons_platform
    if not isinstance(items, list) or not items:
        raise ValueError("the platform's reason list is empty or not a list")
    out: dict[str, Reason] = {}
    for i, it in enumerate(items):
        code = str((it or {}).get(f.code) or "").strip() if isinstance(it, dict) else ""
        name = str((it or {}).get(f.name) or "").strip() if isinstance(it, dict) else ""
        if not code or not name:
            raise ValueError(f"reasons[{i}]: {f.code} / {f.name} missing")
        seed = rec.reasons.get(code)
        out[code] = Reason(code, name, seed.counted if seed else True, seed.needs_diagnosis if seed else False)
    return out


class ReasonDictionary:
    def __init__(self, rec: Recognition, frontend: Engine, ops: Ops,
                 fetch: Callable[[], Any] | None = None, clock: Callable[[], datetime] | None = None):
        """`fetch` asks the platform and returns its list (raises when it cannot)."""
        self.rec, self.frontend, self.ops, self.fetch = rec, frontend, ops, fetch
        self.clock = clock or datetime.now
        self.refresh_s = rec.cfg.reasons_platform.refresh_s
        self._reasons: dict[str, Reason] | None = None
        self.source = "seed"              # platform | cache | seed
        self._fetched = 0.0               # monotonic time of the last attempt
        self._lock = threading.Lock()

    # ------------------------------------------------------------ reading

    def current(self) -> dict[str, Reason]:
        if self._reasons is None:
            self._reasons, self.source = self._cached() or (dict(self.rec.reasons), "seed")
        if self.fetch is not None and time.monotonic() - self._fetched >= self.refresh_s:
            self._fetched = time.monotonic()
            threading.Thread(target=self.refresh, name="hr-reasons", daemon=True).start()
        return self._reasons

    def _cached(self) -> tuple[dict[str, Reason], str] | None:
        t = self.ops.table("recognition_reason")
        try:
            with self.frontend.connect() as conn:
                rows = conn.execute(select(t.c.code, t.c.name).order_by(t.c.id)).all()
        except Exception as exc:  # noqa: BLE001 - no cache is the seed's case
            log.warning("不互认理由缓存不可读: %s", type(exc).__name__)
            return None
        if not rows:
            return None
        return from_platform([{self.rec.cfg.reasons_platform.code: c, self.rec.cfg.reasons_platform.name: n}
                              for c, n in rows], self.rec), "cache"

    # ------------------------------------------------------------ refreshing

    def refresh(self) -> bool:
        """Ask the platform; True when its list is now in use (and cached), False when the platform
        could not give one (the list in use stays: the cache, else the seed)."""
        if self.fetch is None or not self._lock.acquire(blocking=False):
            return False
        try:
            self._fetched = time.monotonic()
            try:
                live = from_platform(self.fetch(), self.rec)
            except Exception as exc:  # noqa: BLE001 - down, refused, malformed: keep what we have
                log.warning("平台不互认理由字典获取失败, 使用缓存: %s", exc)
                if self._reasons is None:
                    self._reasons, self.source = self._cached() or (dict(self.rec.reasons), "seed")
                return False
            t = self.ops.table("recognition_reason")
            now = self.clock()
            with self.frontend.begin() as conn:
                conn.execute(delete(t))
                conn.execute(insert(t), [{"code": r.code, "name": r.name, "fetched_at": now} for r in live.values()])
            self._reasons, self.source = live, "platform"
            return True
        finally:
            self._lock.release()


def platform_fetch(client, org_code: str) -> Callable[[], Any]:
    """The platform call: service role hr_reasons; its answer's `reasons` role is the list."""
    from hipbridge.platform.client import PlatformUnavailable

    def fetch() -> Any:
        res = client.call("hr_reasons", {"org_code": org_code})
        if res.code != client.cfg.codes.success:
            raise PlatformUnavailable(f"平台应答 {res.code} {res.msg}")
        return res.data.get("reasons")
    return fetch
