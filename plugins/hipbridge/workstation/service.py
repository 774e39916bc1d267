"""Wiring of the doctor-workstation service: the external data page (display/) and the 互认 reminders
(recognition/) on one FastAPI app, over one set of engines, keys, shared store, visit lookup and outbox.

    svc = DisplayService.open(frontend_url)        # or DisplayService.from_lifecycle(life)
    uvicorn.run(svc.app, host=…, port=…)            # `hipbridge display serve`
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

import hipbridge.display.state
import hipbridge.recognition.state  # noqa: F401 - the 互认 reminder's ops tables (mounted beside the page)
from hipbridge.audit import AuditWriter
from hipbridge.display.app import DisplayGuard, create_display_app
from hipbridge.display.config import DisplayConfig, display_config, load_catalogs
from hipbridge.display.launch import Launcher
from hipbridge.display.records import StoreReader
from hipbridge.display.visits import VisitLookup
from hipbridge.io.dialects import frontend_dialect
from hipbridge.io.ops import ensure_ops, ops_for
from hipbridge.recognition.catalog import recognition_config
from hipbridge.recognition.cds import CdsService, mount_cds
from hipbridge.recognition.engine import Recognizer
from hipbridge.recognition.page import mount_reminder_page
from hipbridge.recognition.reasons import ReasonDictionary, platform_fetch
from hipbridge.settings import settings
from hipbridge.sharing.callers import require_role
from hipbridge.sharing.door import caller_store
from hipbridge.sharing.service import Lifecycle

log = logging.getLogger("hipbridge.workstation.service")
_workstation_role = require_role("workstation")


def workstation(request: Request):
    """FastAPI dependency: HIS's caller (role workstation) from its bearer token (sharing.callers)."""
    return _workstation_role(request)


def hot_engine(engine: Engine, *, read_only: bool) -> Engine:
    """An engine for the per-request path on a server database: no pre-ping round trip on every
    checkout; read-only ones autocommit (each read sees the latest commit — a revocation — with no
    BEGIN / ROLLBACK round trips). A connection the server dropped fails once and is retried by the
    caller. SQLite (the embedded default) keeps its engine."""
    kw = frontend_dialect(engine).hot_engine_options(read_only)
    if kw is None:
        return engine
    hot = create_engine(engine.url, **kw)
    if read_only:
        # SQLAlchemy still ends each use of an autocommit connection with connection.rollback(),
        # which PyMySQL sends to the server: one more round trip per read that undoes nothing
        hot.dialect.do_rollback = lambda dbapi_connection: None
    return hot


@dataclass
class DisplayService:
    life: Lifecycle
    cfg: DisplayConfig
    app: object
    writer: AuditWriter
    _drain_lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: bool = False

    @classmethod
    def open(cls, frontend_url: str | None = None, **kw) -> DisplayService:
        return cls.from_lifecycle(Lifecycle.open(frontend_url), **kw)

    @classmethod
    def from_lifecycle(cls, life: Lifecycle, *, clock: Callable[[], datetime] | None = None,
                       platform_url: str | None = None, upload_now: bool = True, store=None,
                       cfg: DisplayConfig | None = None, writer: AuditWriter | None = None) -> DisplayService:
        """`store` replaces the lifecycle's shared store (tests point it at an unreachable server);
        `upload_now` drains the outbox after a 调阅记录 was queued (else the outbox worker sends it)."""
        cfg = cfg or display_config()
        ensure_ops(life.frontend, life.ops.schema)
        clock = clock or life.now
        fe_read, fe_write = hot_engine(life.frontend, read_only=True), hot_engine(life.frontend, read_only=False)
        writer = writer or AuditWriter(fe_write, life.ops, life.keys)
        visits = VisitLookup(life.frontend, cfg, engine=fe_read if cfg.visit_source.connection == "frontend" else None)
        launcher = Launcher(life.frontend, life.ops, life.keys, visits, cfg, clock, read_engine=fe_read)
        store = store or life.store
        reader = StoreReader(store, cfg, engine=hot_engine(store.engine, read_only=True))
        svc = cls(life, cfg, None, writer)
        client = life.client(clock=clock, base_url=platform_url) if upload_now else None

        def upload() -> None:
            svc._pending = True
            while svc._pending:      # checked after the release: a row queued during a drain goes in another
                if not svc._drain_lock.acquire(blocking=False):
                    return   # a drain is running; it sees _pending and drains once more
                try:
                    svc._pending = False
                    rep = life.drain_outbox(client)
                    if rep.acked + rep.failed + rep.retry >= 100:   # a full batch: there may be more due
                        svc._pending = True
                except Exception as exc:  # noqa: BLE001 - the outbox retries; the page never waits for it
                    log.warning("调阅记录上传失败, 发件箱稍后重试: %s", type(exc).__name__)
                finally:
                    svc._drain_lock.release()

        svc.app = create_display_app(
            frontend=life.frontend, ops=life.ops, keys=life.keys, reader=reader, launcher=launcher,
            catalogs=load_catalogs(cfg), org_code=life.org_code, cfg=cfg, workstation=workstation,
            clock=clock, writer=writer, on_review_queued=upload if upload_now else None,
            timezone=life.specs.defaults.timezone)
        svc.app.state.launcher, svc.app.state.reader = launcher, reader
        _mount_recognition(svc.app, life, launcher, reader, writer, cfg, clock,   # CDS Hooks /cds-services
                           upload if upload_now else None, platform_url, engines=(fe_read, fe_write))
        svc.app.state.callers = caller_store(life.keys)   # HIS's tokens: `hipbridge door-token create … --role workstation`
        svc.app.add_middleware(DisplayGuard, store=svc.app.state.callers)
        return svc


def _mount_recognition(app, life: Lifecycle, launcher: Launcher, reader: StoreReader, writer: AuditWriter,
                       cfg: DisplayConfig, clock, on_queued, platform_url: str | None = None,
                       engines: tuple[Engine, Engine] | None = None) -> None:
    """The 互认 reminder (recognition/, CDS Hooks) on the same app: same launch, reader and audit, and the
    page's per-call engines (`engines`: read, write — see hot_engine)."""
    fe_read, fe_write = engines or (life.frontend, life.frontend)

    ops = ops_for(life.ops.schema)
    rec = Recognizer(reader, recognition_config(), load_catalogs(cfg).institutions, life.org_code, life.frontend, ops,
                     read_engine=fe_read)

    reasons = ReasonDictionary(rec.rec, life.frontend, ops, clock=clock,     # 不互认理由: the platform's, cached
                               fetch=platform_fetch(life.client(clock=clock, base_url=platform_url), life.org_code))
    app.state.recognition = CdsService(rec=rec, launcher=launcher, writer=writer, frontend=life.frontend, ops=ops,
                                       org_code=life.org_code, clock=clock, keys=life.keys, on_queued=on_queued,
                                       reasons=reasons, read_engine=fe_read, write_engine=fe_write)
    mount_cds(app, app.state.recognition, workstation)

    mount_reminder_page(app, app.state.recognition, launcher, cfg, life.specs.defaults.timezone)   # /shared/remind


def app_from_env():
    """uvicorn factory for `hipbridge display serve --workers N` (each worker process builds its own app)."""
    env = settings()
    return DisplayService.open(env.frontend_url, platform_url=env.platform_url).app
