"""`hipbridge doctor`: is this front-end machine ready to upload and to talk to the platform?

Each check answers one question an operator asks on site (tender step 1: deploy the front-end
machine, configure the database, check the network), with a status and a detail in Chinese:
sources reachable and every spec's SQL returning the columns the spec reads (a zero-row probe),
the front-end database (privileges, utf8mb4, time zone, clock against each source and the
platform), the platform (a signed round trip), Airflow (scheduler heartbeat, import errors) and
disk space. Nothing is written anywhere except what connecting itself records.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from hipbridge import profiles
from hipbridge.io import engines
from hipbridge.io.extract import probe_columns
from hipbridge.io.sources import source_dialect
from hipbridge.platform.client import PlatformUnavailable
from hipbridge.redact import mask_url
from hipbridge.settings import hospital_now, hospital_tz, ops_schema_name
from hipbridge.sharing.service import Lifecycle
from hipbridge.spec import SpecSet, load_specs

from .config import DoctorConfig, monitoring_config

OK, WARN, FAIL, SKIP = "通过", "警告", "失败", "跳过"


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: str
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def masked(url: str) -> str:
    return mask_url(url)   # no password, no password-like query parameters


def _skew(cfg: DoctorConfig, area: str, name: str, theirs_utc: datetime, ours_utc: datetime) -> Check:
    seconds = (theirs_utc - ours_utc).total_seconds()
    status = FAIL if abs(seconds) > cfg.clock_skew_fail_s else WARN if abs(seconds) > cfg.clock_skew_warn_s else OK
    side = "快" if seconds > 0 else "慢"
    return Check(area, name, status, f"比前置机时钟{side} {abs(seconds):.1f} 秒")


def _naive(value) -> datetime:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _clock_checks(cfg: DoctorConfig, engine: Engine, area: str, tz: str) -> list[Check]:
    """The server's clock against ours (in UTC), and its time zone against the hospital's."""
    sql = source_dialect(engine).clock_sql   # (UTC now, the server's local now)
    if sql is None:   # SQLite: a file on this machine, read with this machine's clock
        return [Check(area, "时钟", SKIP, "本机文件数据库，与前置机同一时钟")]
    with engine.connect() as c:
        utc, local = (_naive(v) for v in c.execute(text(sql)).one())
    ours = datetime.now(UTC).replace(tzinfo=None)
    offset = round((local - utc).total_seconds() / 900) * 900
    hospital = ZoneInfo(tz).utcoffset(hospital_now(tz)).total_seconds()
    zone = Check(area, "时区", OK, f"UTC{offset / 3600:+g}，与医院时区 {tz} 一致")
    if offset != hospital:
        zone = Check(area, "时区", WARN, f"数据库本地时间为 UTC{offset / 3600:+g}，医院时区 {tz} 为 UTC{hospital / 3600:+g}："
                                        f"由数据库 NOW() 写入的时间与医院时间相差 {abs(offset - hospital) / 3600:g} 小时")
    return [_skew(cfg, area, "时钟", utc, ours), zone]


# ---------------------------------------------------------------- sources


def source_checks(cfg: DoctorConfig, specs: SpecSet) -> list[Check]:
    out: list[Check] = []
    by_conn: dict[str, list] = {}
    for spec in specs.specs.values():
        by_conn.setdefault(spec.source.connection, []).append(spec)
    for conn_id, table_specs in sorted(by_conn.items()):
        area = f"数据源 {conn_id}"
        try:
            url = engines.connection_url(conn_id)
            engine = engines.engine_for(url)
            with engine.connect() as c:
                c.execute(text(source_dialect(engine).ping_sql))
        except Exception as exc:  # noqa: BLE001 - any failure to reach a source is the finding
            out.append(Check(area, "连接", FAIL, _safe(exc)))
            continue
        out.append(Check(area, "连接", OK, masked(url)))
        out += _clock_checks(cfg, engine, area, specs.defaults.timezone)
        for spec in sorted(table_specs, key=lambda s: s.table):
            out.append(_probe_check(engine, specs, spec, area))
    return out


def _probe_check(engine: Engine, specs: SpecSet, spec, area: str) -> Check:
    name = f"{spec.table} 查询"
    wm = spec.source.watermark.column if spec.source.watermark else None
    try:
        have = {c.lower() for c in probe_columns(engine, specs.query_text(spec))}
    except Exception as exc:  # noqa: BLE001 - an SQL error is the finding
        where = spec.source.query if spec.source.query_is_file else f"{spec.table}.yaml source.query"
        return Check(area, name, FAIL, f"{where}: {_safe(exc)}")
    needed = {c.source for c in spec.columns if c.source}
    if wm:
        needed.add(wm)
    if spec.source.void:
        needed.add(spec.source.void.column)
    missing = sorted(c for c in needed if c.lower() not in have)
    if missing:
        return Check(area, name, FAIL, f"查询未返回规格引用的列: {', '.join(missing)}")
    return Check(area, name, OK, f"{len(have)} 列")


def _safe(exc: BaseException) -> str:
    """An exception's first line, with any URL password hidden."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {msg}"[:300]


# ---------------------------------------------------------------- front-end


_MYSQL_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "INDEX", "DROP")


def frontend_checks(cfg: DoctorConfig, specs: SpecSet, frontend_url: str) -> list[Check]:

    area = "前置机数据库"
    ops_schema = ops_schema_name(specs.defaults, frontend_url)
    try:
        engine = engines.engine_for(frontend_url, ops_schema)
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return [Check(area, "连接", FAIL, _safe(exc))]
    out = [Check(area, "连接", OK, masked(frontend_url))]
    dialect = engine.dialect.name
    if dialect in ("mysql", "mariadb"):
        out += _mysql_frontend(engine, ops_schema, area)
    elif dialect == "postgresql":
        out += _postgres_frontend(engine, ops_schema, area)
    else:
        out.append(Check(area, "字符集", OK, "SQLite: UTF-8"))
    out += _clock_checks(cfg, engine, area, specs.defaults.timezone)
    return out


def _mysql_frontend(engine: Engine, ops_schema: str, area: str) -> list[Check]:
    out = []
    with engine.connect() as c:
        db = c.execute(text("SELECT DATABASE()")).scalar()
        cs, coll = c.execute(text("SELECT @@character_set_database, @@collation_database")).one()
        tz, sys_tz = c.execute(text("SELECT @@time_zone, @@system_time_zone")).one()
        local_infile = c.execute(text("SELECT @@local_infile")).scalar()
        grants = [r[0] for r in c.execute(text("SHOW GRANTS FOR CURRENT_USER()"))]
    # hipbridge creates its tables utf8mb4 with binary keys whatever the default, so another default
    # is a warning: tables made by hand or by other tools in this database would get it.
    out.append(Check(area, "字符集", OK if cs == "utf8mb4" else WARN,
                     f"{db}: {cs} / {coll}" + ("" if cs == "utf8mb4" else
                                               "；hipbridge 的表显式使用 utf8mb4，建议数据库默认也改为 utf8mb4")))
    out.append(Check(area, "时区设置", OK, f"time_zone={tz}, system_time_zone={sys_tz}"))
    out.append(Check(area, "批量装载 (local_infile)", OK if str(local_infile) in ("1", "ON") else WARN,
                     "已开启" if str(local_infile) in ("1", "ON") else "未开启：装载退回逐行插入，速度低"))
    for schema in (db, ops_schema):
        missing = _mysql_missing_privileges(grants, schema)
        out.append(Check(area, f"权限 {schema}", FAIL if missing else OK,
                         f"缺少 {', '.join(missing)}" if missing else ", ".join(_MYSQL_PRIVILEGES)))
    return out


def _mysql_missing_privileges(grants: list[str], schema: str) -> list[str]:
    have: set[str] = set()
    for g in grants:
        head, _, rest = g.partition(" ON ")
        target = rest.split(" TO ")[0].strip()
        db = target.split(".")[0].strip("`")
        if db != "*" and not _grant_pattern_matches(db, schema):
            continue
        privs = head.removeprefix("GRANT ").upper()
        if "ALL PRIVILEGES" in privs:
            return []
        have |= {p.strip() for p in privs.split(",")}
    return [p for p in _MYSQL_PRIVILEGES if p not in have]


def _grant_pattern_matches(pattern: str, schema: str) -> bool:
    pat = pattern.replace("\\_", "\0").replace("_", "?").replace("%", "*").replace("\0", "_")
    return fnmatch.fnmatchcase(schema, pat)


def _postgres_frontend(engine: Engine, ops_schema: str, area: str) -> list[Check]:
    with engine.connect() as c:
        enc = c.execute(text("SHOW server_encoding")).scalar()
        tz = c.execute(text("SHOW timezone")).scalar()
        create_db = c.execute(text("SELECT has_database_privilege(current_database(), 'CREATE')")).scalar()
    return [Check(area, "字符集", OK if enc == "UTF8" else FAIL, str(enc)),
            Check(area, "时区设置", OK, str(tz)),
            Check(area, f"权限 {ops_schema}", OK if create_db else FAIL,
                  "可建模式" if create_db else "当前用户不能在库内建模式 (CREATE)")]


# ---------------------------------------------------------------- platform, Airflow, disk


def platform_checks(cfg: DoctorConfig, frontend_url: str, specs: SpecSet) -> list[Check]:
    area = "省平台"
    life = Lifecycle.open(frontend_url, specs)
    client = life.client()
    try:
        try:
            res = client.query({"org_code": life.org_code, "appointment_id": "HB-DOCTOR-PROBE"})
        except PlatformUnavailable as exc:
            return [Check(area, "签名往返", FAIL, f"{client.base_url}: {exc}")]
        except FileNotFoundError as exc:     # the platform's public keys are not installed
            return [Check(area, "签名往返", FAIL, str(exc))]
        if not res.response_envelope.get(client.cfg.envelope.fields["biz_content"]):
            return [Check(area, "签名往返", FAIL, f"{client.base_url}: 平台应答未签名 (code {res.code})")]
        out = [Check(area, "签名往返", OK, f"{client.base_url}: 应答已验签 (code {res.code})")]
        try:
            resp = httpx.get(client.base_url + "/", timeout=cfg.connect_timeout_s, trust_env=False)
            date = resp.headers.get("date")
        except httpx.HTTPError:
            date = None
        if date:   # HTTP dates have whole seconds: half a second is the expected truncation
            theirs = parsedate_to_datetime(date).astimezone(UTC).replace(tzinfo=None)
            ours = datetime.now(UTC).replace(tzinfo=None)
            out.append(_skew(cfg, area, "时钟", theirs + timedelta(seconds=0.5), ours))
        else:
            out.append(Check(area, "时钟", SKIP, "平台应答没有 Date 头"))
        return out
    finally:
        client.close()


def airflow_checks(cfg: DoctorConfig) -> list[Check]:
    area = "Airflow"
    try:
        health = httpx.get(f"{cfg.airflow}/api/v2/monitor/health", timeout=cfg.connect_timeout_s,
                           trust_env=False).json()
    except (httpx.HTTPError, ValueError) as exc:
        return [Check(area, "调度器心跳", FAIL, f"{cfg.airflow} 不可达: {type(exc).__name__}")]
    out = []
    for component, label in (("metadatabase", "元数据库"), ("scheduler", "调度器心跳"),
                             ("dag_processor", "DAG 解析器"), ("triggerer", "触发器")):
        info = health.get(component) or {}
        status = info.get("status")
        beat = info.get("latest_scheduler_heartbeat") or info.get("latest_dag_processor_heartbeat") \
            or info.get("latest_triggerer_heartbeat")
        if status is None and component in ("dag_processor", "triggerer"):
            continue
        out.append(Check(area, label, OK if status == "healthy" else FAIL,
                         f"{status}" + (f", 最近心跳 {_local_text(beat)}" if beat else "")))
    return out


def _local_text(iso: str) -> str:
    dt = datetime.fromisoformat(iso)
    tz = hospital_tz()
    return dt.astimezone(tz).strftime(f"%Y-%m-%d %H:%M:%S ({tz.key})")


def spec_checks(specs: SpecSet) -> list[Check]:
    area = "表规格 / DAG 导入"
    if not specs.errors:
        return [Check(area, "规格校验", OK, f"{len(specs.specs)} 张表规格有效")]
    return [Check(area, "规格校验", FAIL, str(err)) for err in specs.errors]


def disk_checks(cfg: DoctorConfig, frontend_url: str) -> list[Check]:
    places = {"hipbridge 工作目录": engines.home(), "临时目录": Path(tempfile.gettempdir())}
    if Path("/dev/shm").is_dir():
        places["装载缓冲 (/dev/shm)"] = Path("/dev/shm")
    db = make_url(frontend_url).database if make_url(frontend_url).get_backend_name() == "sqlite" else None
    if db:
        places["前置机数据库文件"] = Path(db).resolve().parent
    out = []
    for label, path in places.items():
        usage = shutil.disk_usage(path)
        free_pct = usage.free / usage.total * 100
        status = FAIL if free_pct < cfg.disk_free_fail_pct else WARN if free_pct < cfg.disk_free_warn_pct else OK
        out.append(Check("磁盘", label, status, f"{path}: 剩余 {usage.free / 2**30:.1f} GiB ({free_pct:.0f}%)"))
    return out


def run_doctor(frontend_url: str | None = None, only: set[str] | None = None,
               cfg: DoctorConfig | None = None) -> list[Check]:
    """Every check (or the areas in `only`: profile, specs, sources, frontend, platform, airflow, disk)."""
    cfg = cfg or monitoring_config().doctor
    url = frontend_url or engines.default_frontend_url()
    specs = load_specs()
    want = only or {"profile", "specs", "sources", "frontend", "platform", "airflow", "disk"}
    out: list[Check] = []
    if "profile" in want:
        p = profiles.active()
        out.append(Check("部署环境", "当前环境", OK, f"{p.name} ({p.label}), 密钥: {p.key_provider}"))
    if "specs" in want:
        out += spec_checks(specs)
    if "sources" in want:
        out += source_checks(cfg, specs)
    if "frontend" in want:
        out += frontend_checks(cfg, specs, url)
    if "platform" in want:
        out += platform_checks(cfg, url, specs)
    if "airflow" in want:
        out += airflow_checks(cfg)
    if "disk" in want:
        out += disk_checks(cfg, url)
    return out


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)
