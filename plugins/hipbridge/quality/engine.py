"""Run rules against a database, pushed down as SQL: one aggregate scan per table, OHDSI-DQD results.

All row rules of a table are counted in ONE `SELECT SUM(CASE …)` over the scope (a whole
front-end table, or the staged rows of one batch), so a large table is scanned once and never
pulled into pandas. Uniqueness is a GROUP BY, coverage a COUNT(*). GB 11643 rules stream only
the id column (plus keys) in chunks and check it in Python. Sample keys are fetched only for
failing rules, and only primary-key columns are returned.

Status, evaluated in this order (OHDSI DQD v2): Error (the check could not run) → Not
Applicable (no rows in the denominator) → Failed (pct violated > threshold) → Passed.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, inspect, text
from sqlalchemy.engine import Connection

from hipbridge.io.dialects import FrontendDialect
from hipbridge.settings import hospital_today
from hipbridge.statuses import RuleStatus

from . import gb11643
from .config import QualityConfig
from .rules import Rule, render

ERROR, NOT_APPLICABLE, FAILED, PASSED = RuleStatus.ERROR, RuleStatus.NOT_APPLICABLE, RuleStatus.FAILED, RuleStatus.PASSED
STATUS_LABELS = {s: s.label for s in RuleStatus}


@dataclass
class Scope:
    """Which rows the rules see: `FROM <from_sql> t WHERE <where>`; `physical` resolves {@table_id}."""

    from_sql: str
    pk: list[str]
    physical: Mapping[str, str]
    where: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    exists: bool = True
    columns: set[str] | None = None        # physical columns present (None: assume all)
    sensitive: set[str] = field(default_factory=set)
    # column sets the scope's own table declares unique (its primary key): a uniqueness rule on
    # such a set (or a superset) holds by construction and is not re-checked with a GROUP BY
    unique_keys: list[frozenset[str]] = field(default_factory=list)
    # disjoint predicates covering the scope: the one-scan aggregate of row rules runs once per
    # part, in parallel on its own connection, and the counts are added (a staged batch halved
    # by row number keeps both cores of the front-end busy)
    partitions: list[str] = field(default_factory=list)
    # columns stored as SM4 ciphertext (config/crypto.yaml `frontend`, crypto/frontend.py): a rule
    # that reads their values cannot run on ciphertext, so it is Not Applicable with the reason
    encrypted: frozenset[str] = frozenset()


_PLACEHOLDER = re.compile(r"\{(?:[A-Za-z_]\w*\.)?([A-Za-z_]\w*)\}")


def encrypted_reason(rule: Rule, scope: Scope) -> str | None:
    """Why `rule` cannot run in `scope` (it reads an encrypted column's values), or None.

    Every column the rule names, its GB 11643 columns and the `{COL}` placeholders of its SQL
    count: on ciphertext a length, format, ID-number, value-domain or placeholder check would
    fail every value, and an equality (uniqueness, reference) would pass every value."""
    if not scope.encrypted:
        return None
    used = set(rule.columns)
    if rule.kind == "idcard":
        used |= {rule.extra.get(k) for k in ("id", "type", "sex", "birth")} - {None}
    used |= set(_PLACEHOLDER.findall((rule.violation or "") + " " + (rule.filter or "")))
    hit = sorted(used & scope.encrypted)
    if not hit:
        return None
    return (f"{', '.join(hit)} 在前置机中以SM4密文存储(config/crypto.yaml frontend), 无法在密文上检查值"
            f"(长度、格式、值域、唯一性等); 类型与长度已在加密前逐行检查")


@dataclass
class RuleResult:
    rule_id: str
    template: str
    table: str
    target: str
    columns: list[str]
    dimension: str
    severity: str
    status: str
    violated: int | None
    denominator: int | None
    pct: float | None
    threshold: float
    message: str
    advice: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    sql: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status(violated: int, denominator: int, threshold: float) -> tuple[str, float | None]:
    if denominator <= 0:
        return NOT_APPLICABLE, None
    pct = 100.0 * violated / denominator
    return (FAILED if pct > threshold else PASSED), round(pct, 4)


def _result(rule: Rule, status: str, violated=None, denominator=None, pct=None, error=None, sql=None) -> RuleResult:
    return RuleResult(rule.rule_id, rule.template, rule.table, rule.target, list(rule.columns), rule.dimension,
                      rule.severity, status, violated, denominator, pct, rule.threshold, rule.message, rule.advice,
                      error=error, sql=sql)


_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _stmt(sql: str, params: Mapping[str, Any]):
    """text() with only the parameters the SQL uses; list values expand to IN (…)."""
    used = set(_BIND.findall(sql))
    missing = used - set(params)
    if missing:
        raise KeyError(f"SQL 使用了未提供的参数 {sorted(missing)}")
    stmt = text(sql)
    expanding = [bindparam(k, expanding=True) for k in used if isinstance(params[k], (list, tuple, set))]
    if expanding:
        stmt = stmt.bindparams(*expanding)
    return stmt, {k: (list(params[k]) if isinstance(params[k], (set, tuple)) else params[k]) for k in used}


class Evaluator:
    def __init__(self, conn: Connection, cfg: QualityConfig, sql: FrontendDialect, base_params: Mapping[str, Any]):
        self.conn, self.cfg, self.sql = conn, cfg, sql
        self.base_params = dict(base_params)
        self.last_seconds = 0.0
        self._scope_rows: int | None = None  # COUNT(*) of the scope, once the row rules have run
        sql.prepare_connection(conn)

    # ------------------------------------------------------------ helpers
    def _where(self, scope: Scope, *conds: str | None) -> str:
        parts = [f"({c})" for c in (scope.where, *conds) if c]
        return " WHERE " + " AND ".join(parts) if parts else ""

    def _params(self, scope: Scope, rule: Rule | None = None) -> dict[str, Any]:
        return {**self.base_params, **scope.params, **(rule.params if rule else {})}

    def _exec(self, sql: str, params: Mapping[str, Any]):
        stmt, bound = _stmt(sql, params)
        return self.conn.execute(stmt, bound)

    def _missing_columns(self, rule: Rule, scope: Scope) -> list[str]:
        if scope.columns is None:
            return []
        need = list(rule.columns)
        if rule.kind == "idcard":
            need += [c for c in (rule.extra.get("id"), rule.extra.get("type"), rule.extra.get("sex"),
                                 rule.extra.get("birth")) if c]
        return [c for c in need if c not in scope.columns]

    def _pk_select(self, scope: Scope) -> str:
        return ", ".join(f"t.{self.sql.q(k)}" for k in scope.pk)

    def _key_row(self, scope: Scope, row: Iterable[Any], keys: list[str] | None = None) -> dict[str, Any]:
        out = {}
        for k, v in zip(keys or scope.pk, row):
            if k in scope.sensitive:
                v = "***"
            elif isinstance(v, (datetime, date)):
                v = v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat()
            elif v is not None and not isinstance(v, (int, float, str)):
                v = str(v)
            out[k] = v
        return out

    # ------------------------------------------------------------ public
    def run(self, rules: list[Rule], scope: Scope) -> list[RuleResult]:
        self._scope_rows = None
        if not scope.exists:
            out = []
            for r in rules:
                if r.kind == "table":
                    out.append(_result(r, FAILED, 1, 1, 100.0, error="表不存在"))
                else:
                    out.append(_result(r, NOT_APPLICABLE, error="表不存在"))
            return out
        results: dict[str, RuleResult] = {}
        runnable: list[Rule] = []
        for r in rules:
            missing = self._missing_columns(r, scope)
            encrypted = encrypted_reason(r, scope)
            if encrypted:
                results[r.rule_id] = _result(r, NOT_APPLICABLE, error=encrypted)
            elif r.extra.get("config_error"):
                results[r.rule_id] = _result(r, ERROR, error=r.extra["config_error"])
            elif missing:
                results[r.rule_id] = _result(r, ERROR, error=f"列不存在: {', '.join(missing)}")
            else:
                runnable.append(r)
        row_rules = [r for r in runnable if r.kind in ("row", "table")]
        t0 = time.perf_counter()
        for res in self._rows(row_rules, scope):
            results[res.rule_id] = res
        for r in runnable:
            if r.kind == "unique":
                results[r.rule_id] = self._safe(self._unique, r, scope)
            elif r.kind == "days":
                results[r.rule_id] = self._safe(self._days, r, scope)
            elif r.kind == "control":
                results[r.rule_id] = self._safe(self._control, r, scope)
        id_rules = [r for r in runnable if r.kind == "idcard"]
        for res in self._idcards(id_rules, scope):
            results[res.rule_id] = res
        for res in results.values():
            if res.status == FAILED and not res.samples and res.violated:
                self._samples(next(r for r in rules if r.rule_id == res.rule_id), res, scope)
        self.last_seconds = time.perf_counter() - t0   # the table's scan (rules share one query)
        return [results[r.rule_id] for r in rules]

    def _safe(self, fn, rule: Rule, scope: Scope) -> RuleResult:
        try:
            return fn(rule, scope)
        except Exception as exc:  # noqa: BLE001 - recorded as the rule's Error status
            self._rollback()
            return _result(rule, ERROR, error=f"{type(exc).__name__}: {exc}"[:1000])

    def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            if self.conn.in_transaction():
                self.conn.rollback()

    # ------------------------------------------------------------ row rules: one scan
    def _rule_sql(self, rule: Rule, scope: Scope) -> tuple[str, str]:
        f = render(rule.filter, self.sql, scope.physical) if rule.filter else "1=1"
        v = render(rule.violation, self.sql, scope.physical) if rule.violation else "1=0"
        return f, v

    def _rows(self, rules: list[Rule], scope: Scope) -> list[RuleResult]:
        if not rules:
            return []
        cols, rendered, bad = ["COUNT(*)"], [], []
        for r in rules:
            try:
                f, v = self._rule_sql(r, scope)
            except KeyError as exc:
                bad.append(_result(r, ERROR, error=str(exc)))
                continue
            rendered.append((r, f, v))
            # a rule without a filter counts every row: its denominator is COUNT(*), not a CASE per row
            cols.append("COUNT(*)" if r.filter is None else f"SUM(CASE WHEN ({f}) THEN 1 ELSE 0 END)")
            cols.append(f"SUM(CASE WHEN ({f}) AND ({v}) THEN 1 ELSE 0 END)")
        params = self._params(scope)
        for r, _f, _v in rendered:
            params.update(r.params)
        try:
            row = self._aggregate(cols, scope, params)
        except Exception:  # noqa: BLE001 - isolate the rule that cannot run
            self._rollback()
            if len(rendered) == 1:
                r = rendered[0][0]
                return bad + [self._safe(lambda rr, sc: self._rows_single(rr, sc), r, scope)]
            out = list(bad)
            for r, _f, _v in rendered:
                out.append(self._safe(lambda rr, sc: self._rows_single(rr, sc), r, scope))
            return out
        n = int(row[0] or 0)
        self._scope_rows = n
        out = list(bad)
        for i, (r, f, v) in enumerate(rendered):
            den, vio = int(row[1 + 2 * i] or 0), int(row[2 + 2 * i] or 0)
            out.append(self._finish(r, scope, n, den, vio, f, v))
        return out

    def _aggregate(self, cols: list[str], scope: Scope, params: dict[str, Any]) -> list[int]:
        def select(part: str | None) -> str:
            return f"SELECT {', '.join(cols)} FROM {scope.from_sql} t{self._where(scope, part)}"

        if len(scope.partitions) < 2:
            return list(self._exec(select(None), params).one())

        def run_part(part: str):
            stmt, bound = _stmt(select(part), params)
            with self.conn.engine.connect() as conn:
                self.sql.prepare_connection(conn)
                return conn.execute(stmt, bound).one()

        with ThreadPoolExecutor(len(scope.partitions)) as pool:
            rows = list(pool.map(run_part, scope.partitions))
        return [sum(int(r[i] or 0) for r in rows) for i in range(len(cols))]

    def _rows_single(self, rule: Rule, scope: Scope) -> RuleResult:
        f, v = self._rule_sql(rule, scope)
        sql = (f"SELECT COUNT(*), SUM(CASE WHEN ({f}) THEN 1 ELSE 0 END), "
               f"SUM(CASE WHEN ({f}) AND ({v}) THEN 1 ELSE 0 END) FROM {scope.from_sql} t{self._where(scope)}")
        row = self._exec(sql, self._params(scope, rule)).one()
        return self._finish(rule, scope, int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), f, v)

    def _finish(self, rule: Rule, scope: Scope, n: int, den: int, vio: int, f: str, v: str) -> RuleResult:
        where = self._where(scope, f, v)
        shown = f"SELECT COUNT(*) FROM {scope.from_sql} t{where}"
        if rule.kind == "table":   # coverage: the table itself must have rows
            status, pct = (FAILED, 100.0) if n == 0 else (PASSED, 0.0)
            return _result(rule, status, 1 if n == 0 else 0, 1, pct, sql=f"SELECT COUNT(*) FROM {scope.from_sql} t"
                           + self._where(scope))
        if n == 0:
            return _result(rule, NOT_APPLICABLE, 0, 0, None, error="表中无数据", sql=shown)
        status, pct = _status(vio, den, rule.threshold)
        return _result(rule, status, vio, den, pct, sql=shown,
                       error="字段全部为空" if status == NOT_APPLICABLE else None)

    # ------------------------------------------------------------ uniqueness
    def _unique(self, rule: Rule, scope: Scope) -> RuleResult:
        keys = ", ".join(f"t.{self.sql.q(c)}" for c in rule.columns)
        notnull = " AND ".join(f"t.{self.sql.q(c)} IS NOT NULL" for c in rule.columns)
        params = self._params(scope, rule)
        trusted = any(key <= set(rule.columns) for key in scope.unique_keys)
        if trusted and self._scope_rows is not None:
            den = self._scope_rows  # key columns of a declared key are never NULL: the scope's row count
        else:
            den = int(self._exec(f"SELECT COUNT(*) FROM {scope.from_sql} t{self._where(scope, notnull)}",
                                 params).scalar() or 0)
        if trusted:
            # a keyed table, or a batch whose keys transfer counted: measured, the GROUP BY over a million
            # staged rows took longer than all other gate rules together
            status, pct = _status(0, den, rule.threshold)
            return _result(rule, status, 0, den, pct, sql="-- 唯一性已由主键约束或抽取时的主键计数保证，未重复检查")
        inner = (f"SELECT COUNT(*) AS n FROM {scope.from_sql} t{self._where(scope, notnull)} "
                 f"GROUP BY {keys} HAVING COUNT(*) > 1")
        sql = f"SELECT COUNT(*), SUM(x.n) FROM ({inner}) x"
        groups, rows = self._exec(sql, params).one()
        vio = int(rows or 0) - int(groups or 0)       # rows beyond the first of each key
        status, pct = _status(vio, den, rule.threshold)
        res = _result(rule, status, vio, den, pct, sql=sql)
        if status == FAILED:
            lim = self.cfg.sample_keys
            sample_sql = (f"SELECT {keys} FROM {scope.from_sql} t{self._where(scope, notnull)} GROUP BY {keys} "
                          f"HAVING COUNT(*) > 1 LIMIT {int(lim)}")
            rows_ = self._exec(sample_sql, params).all()
            res.samples = [self._key_row(scope, r, rule.columns) for r in rows_]
        return res

    # ------------------------------------------------------------ continuity (T03): days without uploads
    def _days(self, rule: Rule, scope: Scope) -> RuleResult:
        col = f"t.{self.sql.q(rule.extra['column'])}"
        day = self.sql.day(col)
        today = self.base_params.get("hb_today") or hospital_today()
        since = today - timedelta(days=int(rule.extra["days"]))
        params = {**self._params(scope, rule), "hb_since": f"{since:%Y-%m-%d} 00:00:00",
                  "hb_until": f"{today:%Y-%m-%d} 00:00:00"}
        first_sql = f"SELECT COUNT(*), MIN({col}) FROM {scope.from_sql} t{self._where(scope)}"
        n, first = self._exec(first_sql, params).one()
        if not n:
            return _result(rule, NOT_APPLICABLE, 0, 0, None, error="表中无数据", sql=first_sql)
        sql = (f"SELECT {day}, COUNT(*) FROM {scope.from_sql} t"
               f"{self._where(scope, f'{col} >= :hb_since', f'{col} < :hb_until')} GROUP BY {day}")
        active = {str(d)[:10] for d, c in self._exec(sql, params).all() if c}
        start = since
        if first is not None:
            start = max(since, date.fromisoformat(str(first)[:10]))
        period = [(start + timedelta(days=i)).isoformat() for i in range((today - start).days)]
        if not period:
            return _result(rule, NOT_APPLICABLE, 0, 0, None, error="统计期内尚无完整的上传日", sql=sql)
        share = sum(1 for d in period if d in active) / len(period)
        if share < float(rule.extra["min_active_share"]):
            return _result(rule, NOT_APPLICABLE, 0, 0, None, sql=sql,
                           error=f"非每日上传的表(有上传的天数占{share:.0%})")
        gaps = [d for d in period if d not in active]
        status, pct = _status(len(gaps), len(period), rule.threshold)
        res = _result(rule, status, len(gaps), len(period), pct, sql=sql)
        res.samples = [{"日期": d} for d in gaps[: self.cfg.sample_keys]]
        return res

    # ------------------------------------------------------------ control table (C03 应传总数量)
    def _control(self, rule: Rule, scope: Scope) -> RuleResult:
        """Rows of a control table (alias `t`, e.g. 数据量记录汇总) checked against the scope's table."""
        ctl = rule.extra["control_table"]
        if not inspect(self.conn).has_table(ctl):
            return _result(rule, NOT_APPLICABLE, 0, 0, None, error=f"控制表 {ctl} 不存在(尚未运行对账)")
        n = self._scope_rows
        if n is None:
            n = int(self._exec(f"SELECT COUNT(*) FROM {scope.from_sql} t{self._where(scope)}",
                               self._params(scope)).scalar() or 0)
        f, v = self._rule_sql(rule, scope)
        params = self._params(scope, rule)
        sql = (f"SELECT SUM(CASE WHEN ({f}) THEN 1 ELSE 0 END), SUM(CASE WHEN ({f}) AND ({v}) THEN 1 ELSE 0 END) "
               f"FROM {self.sql.table(ctl)} t")
        if n == 0:
            return _result(rule, NOT_APPLICABLE, 0, 0, None, error="表中无数据", sql=sql)
        den, vio = (int(x or 0) for x in self._exec(sql, params).one())
        status, pct = _status(vio, den, rule.threshold)
        res = _result(rule, status, vio, den, pct, sql=sql,
                      error="控制表中没有本表的汇总" if status == NOT_APPLICABLE else None)
        if status == FAILED:
            shown = f"SELECT {rule.extra['day']}, {rule.extra['expected']} FROM {self.sql.table(ctl)} t WHERE ({f}) AND ({v})"
            rows = self._exec(f"{shown} ORDER BY 1 LIMIT {int(self.cfg.sample_keys)}", params).all()
            labels = rule.extra["sample_labels"]
            res.samples = [self._key_row(scope, r, labels) for r in rows]
        return res

    # ------------------------------------------------------------ samples
    def _samples(self, rule: Rule, res: RuleResult, scope: Scope) -> None:
        if rule.kind not in ("row",) or not scope.pk:
            return
        try:
            f, v = self._rule_sql(rule, scope)
            sql = (f"SELECT {self._pk_select(scope)} FROM {scope.from_sql} t{self._where(scope, f, v)} "
                   f"LIMIT {int(self.cfg.sample_keys)}")
            rows = self._exec(sql, self._params(scope, rule)).all()
            res.samples = [self._key_row(scope, r) for r in rows]
        except Exception:  # noqa: BLE001 - samples are a convenience, never fail the run for them
            self._rollback()

    # ------------------------------------------------------------ GB 11643 (S03, K01, K02)
    def _idcards(self, rules: list[Rule], scope: Scope) -> list[RuleResult]:
        if not rules:
            return []
        try:
            return self._idcards_unsafe(rules, scope)
        except Exception as exc:  # noqa: BLE001
            self._rollback()
            return [_result(r, ERROR, error=f"{type(exc).__name__}: {exc}"[:1000]) for r in rules]

    def _idcards_unsafe(self, rules: list[Rule], scope: Scope) -> list[RuleResult]:
        gbcfg = self.cfg.gb11643
        prefixes = list(gbcfg.address_prefixes) or None
        min_year = gbcfg.min_birth_year
        parity_codes = dict(gbcfg.sex_by_parity)
        today = self.base_params.get("hb_today") or hospital_today()
        by_id: dict[tuple, list[Rule]] = {}
        for r in rules:
            key = (r.extra["id"], r.extra.get("type"), r.extra.get("sex"), r.extra.get("birth"))
            by_id.setdefault(key, []).append(r)
        out: list[RuleResult] = []
        lim = self.cfg.sample_keys
        for (id_col, type_col, sex_col, birth_col), group in by_id.items():
            q = self.sql.q
            sel = [f"t.{q(id_col)}"] + [f"t.{q(c)}" if c else "NULL" for c in (sex_col, birth_col)]
            sel += [f"t.{q(k)}" for k in scope.pk]
            conds = [f"t.{q(id_col)} IS NOT NULL"]
            params = self._params(scope)
            type_codes = group[0].extra.get("type_codes") or []
            if type_col and type_codes:
                conds.append(f"t.{q(type_col)} IN :hb_id_types")
                params["hb_id_types"] = list(type_codes)
            sql = f"SELECT {', '.join(sel)} FROM {scope.from_sql} t{self._where(scope, *conds)}"
            counts = {"S03": [0, 0, []], "K01": [0, 0, []], "K02": [0, 0, []]}
            stmt, bound = _stmt(sql, params)
            result = self.conn.execution_options(stream_results=True).execute(stmt, bound)
            for part in result.partitions(20_000):
                for row in part:
                    raw, sex, birth = row[0], row[1], row[2]
                    keys = row[3:]
                    if raw is None or str(raw).strip() == "":
                        continue
                    chk = gb11643.check(str(raw), address_prefixes=prefixes, today=today, min_year=min_year)
                    c = counts["S03"]
                    c[0] += 1
                    if chk.problem is not None:
                        c[1] += 1
                        if len(c[2]) < lim:
                            c[2].append(keys)
                        continue
                    if sex is not None and str(sex).strip() in parity_codes.values():
                        c = counts["K01"]
                        c[0] += 1
                        if parity_codes.get(chk.parity) != str(sex).strip():
                            c[1] += 1
                            if len(c[2]) < lim:
                                c[2].append(keys)
                    if birth is not None:
                        b = birth.date() if isinstance(birth, datetime) else birth
                        if isinstance(b, str):
                            b = date.fromisoformat(b[:10])
                        c = counts["K02"]
                        c[0] += 1
                        if b != chk.birth:
                            c[1] += 1
                            if len(c[2]) < lim:
                                c[2].append(keys)
            for r in group:
                den, vio, samples = counts[r.extra["check"]]
                status, pct = _status(vio, den, r.threshold)
                res = _result(r, status, vio, den, pct, sql=sql + "  -- GB 11643 在 Python 中逐值校验",
                              error="字段全部为空" if status == NOT_APPLICABLE else None)
                res.samples = [self._key_row(scope, k) for k in samples] if status == FAILED else []
                out.append(res)
        return out


def physical_names(sql: FrontendDialect, specs, schema: str | None = None) -> dict[str, str]:
    return {tid: sql.table(s.target.name, schema) for tid, s in specs.specs.items()}
