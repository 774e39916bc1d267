"""Wiring for the faces (CLI, DAGs, tests, demo): one object that knows the engines, keys and store.

    life = Lifecycle.open(frontend_url)
    life.drain_outbox(now)        # platform calls due now
    life.verify(now)              # push-back verification of new batches
    life.ingest(now)              # move verified rows into the encrypted tables (secure.py)
    life.read(table_id, patient_key=…)   # rows checked (row MAC) and decrypted, tampered ones flagged
    life.purge(now, dry_run=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

import hipbridge.platform.state  # registers the platform ops tables
import hipbridge.sharing.state  # noqa: F401 - registers the sharing ops tables
from hipbridge import settings
from hipbridge.crypto.atrest import keyring_for
from hipbridge.crypto.fields import FieldCipher
from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.registry import KeyRing
from hipbridge.io.engines import default_frontend_url, engine_for
from hipbridge.io.ops import Ops, ensure_ops
from hipbridge.platform.client import PlatformClient
from hipbridge.platform.config import retention_config
from hipbridge.platform.outbox import OutboxReport, ReconcileReport, process_outbox, reconcile
from hipbridge.settings import ops_schema_name, org_code, org_name
from hipbridge.spec import SpecSet, load_specs

from .retention import PurgeReport, purge_shared, purge_uploaded, resolve_visit_ends
from .secure import IngestReport, SecureStore, SharedRow, find_rows, ingest, open_secure, read_rows
from .store import SharedStore, open_store
from .verify import VerifyReport, verify_batches

# door_app imports the FastAPI door when it is served: the lifecycle's DAG tasks never need the web stack.


def hospital_now(specs: SpecSet) -> datetime:
    """Naive local time of the hospital (Asia/Shanghai), the time base of every stored datetime."""
    return settings.hospital_now(specs.defaults.timezone)


@dataclass
class Lifecycle:
    frontend_url: str
    frontend: Engine
    ops: Ops
    specs: SpecSet
    keys: KeyStore
    store: SharedStore
    org_code: str
    org_name: str
    secure: SecureStore
    ring: KeyRing

    @property
    def cipher(self) -> FieldCipher:
        return FieldCipher(self.ring)

    @classmethod
    def open(cls, frontend_url: str | None = None, specs: SpecSet | None = None,
             keys: KeyStore | None = None) -> Lifecycle:
        url = frontend_url or default_frontend_url()
        specs = specs or load_specs().require_valid()
        schema = ops_schema_name(specs.defaults, url)
        frontend = engine_for(url, schema)
        ops = ensure_ops(frontend, schema)
        store = open_store(url, specs)
        ring = keyring_for(frontend, schema, clock=lambda: hospital_now(specs))
        secure = open_secure(store)
        secure.cipher = FieldCipher(ring)
        return cls(url, frontend, ops, specs, keys or KeyStore(), store, org_code(specs.defaults),
                   org_name(specs.defaults), secure, ring)

    def now(self) -> datetime:
        return hospital_now(self.specs)

    def client(self, clock: Callable[[], datetime] | None = None, base_url: str | None = None) -> PlatformClient:
        return PlatformClient(self.org_code, self.keys, clock=clock or self.now, base_url=base_url)

    def drain_outbox(self, client: PlatformClient, limit: int = 100) -> OutboxReport:
        report = process_outbox(self.frontend, self.ops, client, self.keys, client.clock, limit=limit)
        if report.revoked_patients:
            self.purge(client.clock(), patient_keys=report.revoked_patients)
        return report

    def reconcile(self, client: PlatformClient, limit: int = 1000) -> ReconcileReport:
        """Nightly AUTH_QUERY of live authorizations; a revocation made at the platform purges at once."""
        report = reconcile(self.frontend, self.ops, client, self.keys, client.clock, limit=limit)
        if report.revoked_patients:
            self.purge(client.clock(), patient_keys=report.revoked_patients)
        return report

    def verify(self, now: datetime | None = None, run_quality: bool | None = None) -> VerifyReport:
        return verify_batches(self.frontend, self.ops, self.store, self.specs, self.keys, now or self.now(),
                              run_quality=run_quality)

    def ingest(self, now: datetime | None = None) -> IngestReport:
        """Move verified pushed rows (and any older than landing_max_minutes) into the encrypted tables."""
        pc = self.ops.table("push_check")
        with self.frontend.connect() as conn:
            verified = {(b, t) for b, t in conn.execute(pc.select().with_only_columns(pc.c.batch_id, pc.c.table_name))}
        return ingest(self.secure, self.cipher, self.keys, verified, now or self.now())

    def read(self, table_id: str, **kw) -> list[SharedRow]:
        """Shared rows for the display / reminder: MAC-checked and decrypted; tampered rows flagged, no data."""
        return read_rows(self.secure, self.cipher, table_id, **kw)

    def find(self, **kw) -> dict[str, list[dict]]:
        """Shared rows of a patient by id_type + id_no, phone or patient_id, through the blind indexes."""
        return find_rows(self.secure, self.keys, **kw)

    def purge(self, now: datetime | None = None, **kw) -> PurgeReport:
        now = now or self.now()
        resolve_visit_ends(self.frontend, self.ops, self.specs, retention_config(), now)
        return purge_shared(self.frontend, self.ops, self.store, self.keys, now, **kw)

    def purge_uploaded(self, now: datetime | None = None, **kw) -> PurgeReport | None:
        if not retention_config().uploaded.tables:
            return None
        return purge_uploaded(self.frontend, self.ops, self.specs, now or self.now(), **kw)

    def door_app(self, clock: Callable[[], datetime] | None = None, immediate_purge: bool = True):
        from .door import create_door_app

        clock = clock or self.now
        on_revoke = (lambda pkey: self.purge(clock(), patient_keys=[pkey])) if immediate_purge else None
        return create_door_app(self.frontend, self.ops, self.keys, self.org_code, self.org_name, clock=clock,
                               on_revoke=on_revoke)
