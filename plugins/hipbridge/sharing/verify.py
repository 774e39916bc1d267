"""Push-back verification (回推核验, interfaces.md §A8): check every new pushed batch, store the outcome.

Per batch and table: Q08 manifest reconciliation (row count and SM3 of the row digests, plus each
row's digest recomputed from its content), Q01 privacy guard (the batch's authId must be a live
authorization here, otherwise its rows are deleted at once), Q02 required fields, Q04 references
to the header table (blocking after the orphan grace), Q11 identity (a row's 证件类型 + 证件号码 must be
the authorized patient's: compared through the blind index, so no plaintext ID is needed), Q07 duplicates (a
business key the secure store already holds with the same data_num and other content; `secure.ingest`
keeps the first), Q09 row signature (a row carrying the platform's optional SM3withSM2 signature over its
recomputed row digest must verify with the platform's signing key). Then the quality engine
(`hipbridge.quality.check.check_database`) runs over the touched shared tables; its results are
saved as a quality run of kind `push`, so they appear in the quality report, and its failed rules
are listed as warnings here. Outcome: `push_check` (one row per batch × table) and `push_problem`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.engine import Engine

from hipbridge.crypto.keys import KeyStore
from hipbridge.crypto.sm import sm2_verify
from hipbridge.io.ops import Ops
from hipbridge.platform.config import SharingConfig, sharing_config
from hipbridge.quality.check import check_database, new_run_id, safe_url
from hipbridge.quality.config import cached_config
from hipbridge.quality.engine import RuleResult
from hipbridge.quality.store import save_run
from hipbridge.settings import ops_schema_name
from hipbridge.spec import SpecSet

from .retention import purge_orphans
from .secure import open_secure, stored_versions
from .store import SharedStore, batch_digest, row_digest

log = logging.getLogger("hipbridge.sharing.verify")


@dataclass
class Problem:
    rule_id: str
    severity: str
    violated: int
    message: str


@dataclass
class BatchOutcome:
    batch_id: str
    table_name: str
    table_id: str | None
    manifest_rows: int
    received_rows: int
    digest_ok: bool
    problems: list[Problem] = field(default_factory=list)

    @property
    def status(self) -> str:
        if any(p.severity == "blocking" for p in self.problems):
            return "REJECTED"
        return "WARN" if self.problems else "PASSED"


@dataclass
class VerifyReport:
    batches: list[BatchOutcome] = field(default_factory=list)
    quality_run_id: str | None = None
    orphans_deleted: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"quality_run_id": self.quality_run_id, "orphans_deleted": self.orphans_deleted,
                "batches": [{"batch_id": b.batch_id, "table": b.table_name, "status": b.status,
                             "manifest_rows": b.manifest_rows, "received_rows": b.received_rows,
                             "digest_ok": b.digest_ok,
                             "problems": [p.__dict__ for p in b.problems]} for b in self.batches]}


def new_batches(frontend: Engine, ops: Ops, store: SharedStore) -> list[dict[str, Any]]:
    pc = ops.table("push_check")
    m = store.manifest
    mc = store.mcols
    with frontend.connect() as conn:
        done = set(conn.execute(select(pc.c.batch_id, pc.c.table_name)).tuples())
    with store.engine.connect() as sconn:
        rows = sconn.execute(select(m).order_by(m.c[mc["created"]], m.c[mc["batch_id"]])).mappings().all()
    return [dict(r) for r in rows if (r[mc["batch_id"]], r[mc["table_name"]]) not in done]


def verify_batches(frontend: Engine, ops: Ops, store: SharedStore, specs: SpecSet, keys: KeyStore, now: datetime,
                   cfg: SharingConfig | None = None, run_quality: bool | None = None) -> VerifyReport:
    cfg = cfg or sharing_config()
    report = VerifyReport()
    todo = new_batches(frontend, ops, store)
    if not todo:
        return report
    ar = ops.table("auth_record")
    with frontend.connect() as conn:
        authorized = {auth: key for auth, key in conn.execute(select(ar.c.auth_id, ar.c.patient_key).where(
            and_(ar.c.auth_id.is_not(None), ar.c.purged_at.is_(None))))}
    live = set(authorized)
    by_name = {t.name: tid for tid, t in store.tables.items()}
    mc, cols = store.mcols, store.cols
    orphan_batches = False
    with store.engine.connect() as sconn:
        for man in todo:
            tid = by_name.get(man[mc["table_name"]])
            out = BatchOutcome(man[mc["batch_id"]], man[mc["table_name"]], tid, man[mc["row_count"]], 0, False)
            report.batches.append(out)
            if tid is None:
                out.problems.append(Problem("Q08", "blocking", man[mc["row_count"]],
                                            f"清单中的表 {out.table_name} 不在共享库配置中"))
                continue
            table = store.tables[tid]
            spec = store.specs[tid]
            data_cols = store.data_columns(tid)
            in_batch = table.c[cols["batch_id"]] == out.batch_id
            book = [cols["row_digest"], cols["data_num"]] + ([cols["sign"]] if cols.get("sign") in table.c else [])
            rows = sconn.execute(select(*[table.c[c] for c in data_cols], *[table.c[c] for c in book])
                                 .where(in_batch)).mappings().all()
            out.received_rows = len(rows)
            digests = [r[cols["row_digest"]] for r in rows]
            tampered = sum(1 for r in rows if row_digest(dict(r), data_cols) != r[cols["row_digest"]])
            out.digest_ok = batch_digest(digests) == man[mc["digest"]] and tampered == 0
            if out.received_rows != out.manifest_rows:
                out.problems.append(Problem("Q08", "blocking", abs(out.manifest_rows - out.received_rows),
                                            f"收到 {out.received_rows} 行, 清单声明 {out.manifest_rows} 行"))
            if not out.digest_ok:
                out.problems.append(Problem("Q08", "blocking", tampered or out.received_rows,
                                            f"批次摘要不一致 (内容与行摘要不符 {tampered} 行)"))
            if man[mc["auth_id"]] not in live:
                orphan_batches = True
                out.problems.append(Problem("Q01", "blocking", out.received_rows,
                                            "批次授权不存在或已失效: 数据已立即删除 (未授权不得留存)"))
            for c in spec.columns:
                if c.required:
                    n = sconn.execute(select(func.count()).select_from(table).where(
                        and_(in_batch, table.c[c.name].is_(None)))).scalar_one()
                    if n:
                        out.problems.append(Problem("Q02", "blocking", n, f"必填字段 {c.name}({c.label}) 为空"))
                ref = c.reference_target
                if ref and ref[0] in store.tables:
                    parent = store.tables[ref[0]]
                    org = specs.defaults.audit("org_code").name
                    sub = select(parent.c[org], parent.c[ref[1]])
                    n = sconn.execute(select(func.count()).select_from(table).where(and_(
                        in_batch, table.c[c.name].is_not(None),
                        tuple_(table.c[org], table.c[c.name]).not_in(sub)))).scalar_one()
                    if n:
                        age = now - (man[mc["max_instock"]] or now)
                        sev = "blocking" if age >= cfg.verification.orphan_grace else "warning"
                        out.problems.append(Problem("Q04", sev, n, f"{c.name} 引用的 {parent.name}.{ref[1]} 不存在"))
            patient = authorized.get(man[mc["auth_id"]])
            id_cols = _identity_columns(spec)
            if patient and id_cols:
                kind, number = id_cols
                other = sum(1 for r in rows if r[kind] and r[number]
                            and keys.patient_key(str(r[kind]), str(r[number])) != patient)
                if other:
                    out.problems.append(Problem("Q11", "blocking", other,
                                                f"{other} 行的证件类型/证件号码不是本批次授权的患者 (误关联记录)"))
            conflicts = _conflicts(store, tid, rows, data_cols)
            if conflicts:
                out.problems.append(Problem("Q07", "blocking", conflicts,
                                            f"{conflicts} 行与已接收记录的业务主键和数据版本 (data_num) 相同而内容不同: "
                                            "保留先接收的记录"))
            if cols.get("sign") in table.c:
                bad, why = _bad_signatures(rows, data_cols, cols["sign"], keys)
                if bad:
                    out.problems.append(Problem("Q09", "blocking", bad, why))
    if orphan_batches:
        report.orphans_deleted = purge_orphans(frontend, ops, store, keys, now)
    use_quality = cfg.verification.quality_engine if run_quality is None else run_quality
    if use_quality:
        report.quality_run_id = _quality(frontend, store, specs, report, now, cfg.verification.skip_quality_rules)
    _save(frontend, ops, report, now)
    return report


def _conflicts(store: SharedStore, table_id: str, rows, data_cols: list[str]) -> int:
    """Q07: rows whose business key the secure store already holds with the same data_num and other content."""
    secure = store.secure if store.secure is not None else open_secure(store)
    st = secure.tables.get(table_id)
    if st is None or not rows:
        return 0
    num = store.cols["data_num"]
    pushed = {tuple(r[k] for k in st.pk): (r[num], row_digest(dict(r), data_cols)) for r in rows}
    stored = stored_versions(secure, st, list(pushed))
    return sum(1 for k, (n, digest) in pushed.items() if k in stored and stored[k][0] == n and stored[k][1] != digest)


def _bad_signatures(rows, data_cols: list[str], sign_col: str, keys: KeyStore) -> tuple[int, str]:
    """Q09: signed rows whose SM3withSM2 signature (base64 DER, platform's signing key) does not verify
    over the row digest recomputed from the row's content. Unsigned rows are not checked."""
    signed = [r for r in rows if r[sign_col]]
    if not signed:
        return 0, ""
    try:
        public = keys.peer("platform_sign")
    except FileNotFoundError as exc:
        return len(signed), f"{len(signed)} 行带平台行签名, 但无法核验: {exc}"
    bad = 0
    for r in signed:
        try:
            sig = base64.b64decode(str(r[sign_col]), validate=True)
        except (binascii.Error, ValueError):
            bad += 1
            continue
        if not sm2_verify(public, row_digest(dict(r), data_cols).encode("ascii"), sig):
            bad += 1
    return bad, f"{bad} 行的平台行签名 (SM3withSM2) 核验失败: 签名与行内容不符或不是平台签名密钥所签"


def _identity_columns(spec) -> tuple[str, str] | None:
    """(证件类型代码, 证件号码) of a shared table: the column bound to the id-type domain of the GB 11643
    check (quality `gb11643.id_type_domain`) and the column carrying that check."""
    domain = cached_config().gb11643.id_type_domain
    kind = next((c.name for c in spec.columns if c.codes and c.codes.domain == domain), None)
    number = next((c.name for c in spec.columns if "gb11643" in c.checks), None)
    return (kind, number) if kind and number else None


def _quality(frontend: Engine, store: SharedStore, specs: SpecSet, report: VerifyReport, now: datetime,
             skip: list[str]) -> str | None:
    """Run the quality engine over the touched shared tables; save it as a `push` run in the ops schema."""
    tables = sorted({b.table_id for b in report.batches if b.table_id})
    try:
        outcome = check_database(store.engine, specs, tables, kind="push", run_id=new_run_id("push"), store=False,
                                 now=now)
    except Exception as exc:  # noqa: BLE001 - verification must still record its own rules
        log.error("质控引擎运行失败: %s", exc)
        return None
    save_run(frontend, ops_schema_name(specs.defaults, frontend), outcome.run_id, "push", outcome.started, outcome.finished,
             outcome.results + _push_rule_results(report), outcome.scores, tables, database=safe_url(store.engine),
             message="数据回推核验 (共享库): 质控规则 + 回推核验规则 Q01/Q02/Q04/Q07/Q08/Q09/Q11")
    failed = {}
    for r in outcome.results:
        # "Error" = the rule could not run (e.g. it references a table that is not in the shared store):
        # kept in the stored run, not listed as a data problem of the batch
        if r.status == "Failed" and not any(r.rule_id.split(".")[0] == s for s in skip):
            failed.setdefault(r.table, []).append(r)
    for b in report.batches:
        for r in failed.get(b.table_id, []):
            b.problems.append(Problem(r.rule_id[:32], "warning", r.violated or 0,
                                      f"质控规则 {r.rule_id}: {r.message}" + (f" ({r.error})" if r.error else "")))
    return outcome.run_id


_PUSH_RULES = {  # rule → (quality dimension, advice shown in the report)
    "Q01": ("一致性", "回推数据须有本院有效授权; 已立即删除, 请与省平台核对授权状态"),
    "Q02": ("完整性", "请省平台补全必填字段后重新回推"),
    "Q04": ("关联性", "明细缺少主记录: 请省平台补推主记录"),
    "Q07": ("唯一性", "同一业务主键、同一数据版本的内容冲突: 已保留先接收的记录, 请省平台以新的 data_num 回推更正"),
    "Q08": ("一致性", "批次行数或摘要与清单不符: 请省平台重新回推该批次"),
    "Q09": ("一致性", "平台行签名核验失败: 已拒收, 请省平台核对签名密钥与行内容后重新回推"),
    "Q11": ("一致性", "回推数据的患者身份与授权患者不一致 (误关联): 已拒收, 请省平台核对后重新回推"),
}


def _push_rule_results(report: VerifyReport) -> list:
    """The push-back rules' findings as quality results, so the quality report lists them with the rest."""
    agg: dict[tuple[str, str], dict[str, Any]] = {}
    for b in report.batches:
        for p in b.problems:
            if p.rule_id not in _PUSH_RULES:
                continue
            a = agg.setdefault((b.table_id or b.table_name, p.rule_id),
                               {"target": b.table_name, "violated": 0, "den": 0, "severity": "warning", "msgs": []})
            a["violated"] += p.violated
            a["den"] += max(b.received_rows, b.manifest_rows)
            if p.severity == "blocking":
                a["severity"] = "error"
            if len(a["msgs"]) < 3:
                a["msgs"].append(f"{b.batch_id}: {p.message}")
    out = []
    for (table, rule), a in sorted(agg.items()):
        dim, advice = _PUSH_RULES[rule]
        pct = round(100.0 * a["violated"] / a["den"], 4) if a["den"] else None
        out.append(RuleResult(rule_id=f"PUSH.{rule}.{table}", template=rule, table=table, target=a["target"],
                              columns=[], dimension=dim, severity=a["severity"], status="Failed",
                              violated=a["violated"], denominator=a["den"], pct=pct, threshold=0.0,
                              message="回推核验: " + "; ".join(a["msgs"]), advice=advice))
    return out


def _save(frontend: Engine, ops: Ops, report: VerifyReport, now: datetime) -> None:
    pc, pp = ops.table("push_check"), ops.table("push_problem")
    with frontend.begin() as conn:
        for b in report.batches:
            conn.execute(pc.insert().values(
                batch_id=b.batch_id, table_name=b.table_name, table_id=b.table_id, status=b.status,
                manifest_rows=b.manifest_rows, received_rows=b.received_rows, digest_ok=b.digest_ok,
                blocking=sum(1 for p in b.problems if p.severity == "blocking"),
                warnings=sum(1 for p in b.problems if p.severity == "warning"),
                quality_run_id=report.quality_run_id, checked_at=now))
            if b.problems:
                conn.execute(pp.insert(), [{"batch_id": b.batch_id, "table_name": b.table_name, "rule_id": p.rule_id,
                                            "severity": p.severity, "violated": p.violated, "message": p.message,
                                            "checked_at": now} for p in b.problems])
