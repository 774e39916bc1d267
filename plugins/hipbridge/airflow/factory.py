"""Build one Airflow DAG per table spec: plan → transfer → quality_gate → publish (→ Asset).

Parse-time rules (Airflow's guidance, and the dag-processor's behaviour we measured): only YAML
and pydantic here — no pandas, Great Expectations, database or network. Task bodies import the
pipeline lazily. Broken specs never raise in the file that builds the good DAGs; they are raised
by a separate loader file (`dags/hipbridge_spec_errors.py`) so Airflow lists them as import errors
naming the YAML file, line and key, while every valid table keeps its DAG.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable

from hipbridge.settings import settings
from hipbridge.spec import SpecSet, TableSpec, default_spec_dir, load_specs
from hipbridge.statuses import BatchStatus

_PRESETS = {"@daily": "0 0 * * *", "@hourly": "0 * * * *", "@weekly": "0 0 * * 1", "@monthly": "0 0 1 * *"}
# The first retry's delay is Airflow's [core] default_task_retry_delay (docker-compose.yml: 120 s),
# doubling with each try: a deployment tunes it without touching the DAGs.
DEFAULT_ARGS = {"owner": "hipbridge", "retries": 2, "retry_exponential_backoff": True}


class SpecErrors(Exception):
    """Raised by the errors loader: one line per problem, each naming file, line and key."""


# The table DAG's one param. Airflow validates each param on its own (JSON Schema, at trigger time, in
# the api-server), so the rules between mode and window live in one object: a window without its
# first day or length, a window of 0 days, or window fields beside another mode are refused when
# the run is triggered — before any task runs, retries, or blocks the table's next runs. A window is
# a first day and a number of days, so it cannot be reversed.
RUN_PARAM_SCHEMA = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["incremental", "window", "full"]},
        "first_day": {"type": "string", "format": "date"},
        "days": {"type": "integer", "minimum": 1, "maximum": 3660},
    },
    "required": ["mode"],
    "additionalProperties": False,
    "if": {"properties": {"mode": {"const": "window"}}},
    "then": {"required": ["first_day", "days"]},
    "else": {"not": {"anyOf": [{"required": ["first_day"]}, {"required": ["days"]}]}},
}
RUN_PARAM_HELP = ('{"mode": "incremental"} 按水位增量；{"mode": "full"} 全量重载；'
                  '{"mode": "window", "first_day": "2026-11-01", "days": 3} 重跑 11 月 1–3 日（医院日历日）')


def run_window(run: dict) -> tuple[str, object, object]:
    """(mode, first day, last day) of a validated `run` param."""
    mode = run.get("mode") or "incremental"
    if mode != "window":
        return mode, None, None
    first = date.fromisoformat(run["first_day"])
    return mode, first, first + timedelta(days=int(run["days"]) - 1)


def fail_fast(exc: BaseException) -> None:
    """Re-raise a task's failure: a mistake (spec, SQL, access) as AirflowFailException, so the task fails at
    once without retries; anything else (an outage) as it is, for Airflow's retries with back-off."""
    from hipbridge.pipeline.failures import is_deterministic

    if is_deterministic(exc):
        raise AirflowFailException(f"{type(exc).__name__}: {exc}\n(not retried: it would fail the same way)") \
            from exc
    raise exc


_LOADED: dict[tuple, SpecSet] = {}


def load_for_dags(specs_dir: str | Path | None = None) -> SpecSet:
    """Load specs once per process while no file changed (both DAG files of a DagBag share it)."""
    directory = Path(specs_dir or default_spec_dir())
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("sql/**/*.sql"))
    key = (str(directory), tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_specs(directory)
    return _LOADED[key]


def asset_for(spec: TableSpec) -> Asset:
    return Asset(name=f"frontend.{spec.target.name}", uri=f"hipbridge://frontend/{spec.target.name}",
                 group="hipbridge")


def _doc_md(spec: TableSpec, specs: SpecSet) -> str:
    """The spec, as operators read it in the DAG's Docs panel."""
    lines = [f"## {spec.label}（{spec.table} → 前置机表 `{spec.target.name}`）", ""]
    if spec.description:
        lines += [spec.description, ""]
    wm = spec.source.watermark
    lines += [f"- 来源系统：`{spec.source.system}`，连接 `{spec.source.connection}`",
              f"- 主键：{'、'.join(spec.target.primary_key)}",
              f"- 增量字段：`{wm.column}`，回看 {wm.lookback if wm.lookback is not None else specs.defaults.watermark_lookback}"
              if wm else "- 增量字段：无（每次全量读取，未变化的行不重写）",
              f"- 调度：`{spec.schedule or '手动'}`（医院时区 {specs.defaults.timezone}）", "",
              "| 字段 | 中文名 | 类型 | 必填 | 值域 | 关联 |", "|---|---|---|---|---|---|"]
    for c in spec.columns:
        domain = (c.codes.domain or c.codes.local or "") if c.codes else ""
        lines.append(f"| {c.name} | {c.label} | {c.type} | {'是' if c.required else ''} | {domain} | "
                     f"{c.references or ''} |")
    q = spec.quality
    rules = [f"{p.before} ≤ {p.after}" for p in q.time_order]
    if q.timeliness:
        rules.append(f"及时性：{q.timeliness.event} 后 {q.timeliness.max_lag} 内上传")
    if rules:
        lines += ["", "**质控规则（来自表规范）**：" + "；".join(rules)]
    if spec.retention:
        r = spec.retention
        lines += ["", f"**保留**：{r.anchor} 后 {r.days} 天删除" + (f"（随主表 {r.header}）" if r.header else "")]
    lines += ["", f"手动运行参数 `run`：{RUN_PARAM_HELP}。",
              "", ("新部署时本 DAG 处于**暂停**状态：检查连接并用 hipbridge_backfill 补传历史后，在 DAG 列表打开开关，"
                   f"或执行 `airflow dags unpause hipbridge_{spec.table}`；打开后调度器立即补跑最近一个医院日零点的增量运行。"),
              "", ("Airflow 回填（Backfill）：每个回填运行按其数据区间（医院日）以 window 模式重跑，"
                   "不移动水位；`run` 不是默认的 incremental（mode=full 或指定 first_day/days）的回填会被拒绝并说明原因。")]
    return "\n".join(lines)


def _timetable(spec: TableSpec, timezone: str):
    """Data intervals from one fire of the cron to the next, in the hospital's time zone.

    A daily DAG's run of logical date D covers hospital day D and is scheduled at the end of D;
    Airflow's Backfill from D1 to D2 makes the runs of D1…D2, each a window over its own day
    (see `backfill_window`). Irregular crons (weekdays only) get the gap to their previous fire.
    """
    if not spec.schedule:
        return None
    cron = _PRESETS.get(spec.schedule, spec.schedule)
    return CronDataIntervalTimetable(cron, timezone=timezone)


def scheduled_high_watermark(run_type, fired_at: datetime | None, tz: str) -> datetime | None:
    """A scheduled run covers the hospital's calendar days before the local day it fires on.

    `fired_at` is the run's data interval end (when the cron fired). Airflow schedules in UTC;
    00:00 in Asia/Shanghai is 16:00 UTC the day before, so the local date is taken after
    converting. Manual runs (possibly without a logical date) return None: they read up to
    "now", fixed when the batch is planned.
    """
    if fired_at is None or not str(run_type or "").lower().endswith("scheduled"):
        return None

    local_day = fired_at.astimezone(ZoneInfo(tz)).date()
    return datetime.combine(local_day, datetime.min.time())


class BackfillRefused(ValueError):
    """An Airflow backfill run that cannot be a window run; the message says why and what to do."""


def is_backfill(run_type) -> bool:
    return str(run_type or "").lower().endswith("backfill")


def backfill_window(params: dict, start: datetime | None, end: datetime | None, tz: str) -> tuple[datetime, datetime]:
    """The window of an Airflow backfill run (UI Backfill, REST POST /api/v2/backfills): its data interval.

    Returned as the hospital's local time (Asia/Shanghai wall clock, like the source rows); a
    daily DAG's interval is one whole hospital day. The run never moves the watermark (the
    caller plans it with advance_watermark off). Refused, with the reason, when the run has no
    data interval or its conf asks for something else (full reload, other dates).
    """
    run = params.get("run") or {}
    if (run.get("mode") or "incremental") == "full" or run.get("first_day") or run.get("days"):
        raise BackfillRefused(
            "Airflow 回填（Backfill）按每个运行的数据区间以 window 模式重跑，不接受 mode=full 或 first_day/days："
            "请保留默认参数；全量重载或任意日期区间请手动触发本 DAG（run 的 mode=full / mode=window）或使用 hipbridge_backfill。"
            f" (an Airflow backfill run reruns its data interval; got run={run!r}, i.e. mode={run.get('mode')!r})")
    if start is None or end is None or end <= start:
        raise BackfillRefused(
            f"Airflow 回填运行没有数据区间（{start} … {end}），无法确定重跑的医院日；请使用 hipbridge_backfill。"
            " (the backfill run has an empty data interval)")
    zone = ZoneInfo(tz)
    return start.astimezone(zone).replace(tzinfo=None), end.astimezone(zone).replace(tzinfo=None)


def _context():
    from hipbridge.pipeline.context import Context

    return Context.create(settings().specs)


def build_dag(spec: TableSpec, specs: SpecSet) -> DAG:
    tz = specs.defaults.timezone
    table = spec.table

    with DAG(
        dag_id=f"hipbridge_{table}",
        description=f"{spec.label} → {spec.target.name}",
        schedule=_timetable(spec, tz),
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=True,  # a new site checks connections first; the docs say how to unpause
        default_args=DEFAULT_ARGS,
        tags=sorted({"hipbridge", f"phase{spec.phase}", spec.source.system, *spec.tags}),
        doc_md=_doc_md(spec, specs),
        params={"run": Param({"mode": "incremental"}, description=RUN_PARAM_HELP, **RUN_PARAM_SCHEMA)},
        render_template_as_native_obj=True,
    ) as dag:

        @task(task_id="plan")
        def plan_batch() -> dict:
            from hipbridge.pipeline.plan import plan

            context = get_current_context()
            params = context["params"]
            run = context.get("dag_run")
            run_type = getattr(run, "run_type", None)
            unknown = sorted(set(getattr(run, "conf", None) or {}) - {"run"})
            if unknown:  # Airflow passes keys it has no param for unchecked: never ignore them silently
                raise AirflowFailException(f"unknown DAG param(s) {', '.join(unknown)}: this DAG takes only "
                                           f"'run', e.g. {RUN_PARAM_HELP}")
            if is_backfill(run_type):  # Airflow's Backfill: a window over the run's data interval
                try:
                    start, end = backfill_window(params, context.get("data_interval_start"),
                                                 context.get("data_interval_end"), tz)
                except BackfillRefused as exc:
                    raise AirflowFailException(str(exc)) from None
                try:
                    batch = plan(_context(), table, "window", start, end, run_id=getattr(run, "run_id", None))
                except Exception as exc:  # noqa: BLE001 - re-raised, classified
                    fail_fast(exc)
                return replace(batch, advance_watermark=False).to_dict()
            mode, first, last = run_window(params["run"] or {})
            high = scheduled_high_watermark(run_type, context.get("data_interval_end"), tz)
            try:
                batch = plan(_context(), table, mode, first, last, high, run_id=getattr(run, "run_id", None))
            except Exception as exc:  # noqa: BLE001 - re-raised, classified
                fail_fast(exc)
            return batch.to_dict()

        @task(task_id="transfer")
        def transfer_batch(batch: dict) -> dict:
            from hipbridge.io.state import Batch
            from hipbridge.pipeline.run import fail
            from hipbridge.pipeline.transfer import transfer

            ctx = _context()
            b = Batch.from_dict(batch)
            try:
                moved = transfer(ctx, b)
            except Exception as exc:  # noqa: BLE001 - recorded, then re-raised, classified
                fail(ctx, b, exc)
                fail_fast(exc)
            return moved.to_xcom()

        @task(task_id="quality_gate", retries=0)
        def gate_batch(batch: dict, moved: dict) -> dict:
            from hipbridge.io.state import Batch
            from hipbridge.pipeline.gate import gate

            outcome = gate(_context(), Batch.from_dict(batch))
            if outcome.blocked:
                raise AirflowFailException(f"质控门禁未通过，未发布：{outcome.message}")
            return outcome.to_xcom()

        @task(task_id="publish", outlets=[asset_for(spec)])
        def publish_batch(batch: dict, _gate: dict) -> dict:
            from hipbridge.io.state import Batch
            from hipbridge.pipeline.publish import publish
            from hipbridge.pipeline.results import PublishResult

            try:
                counts = publish(_context(), Batch.from_dict(batch))
            except Exception as exc:  # noqa: BLE001 - re-raised, classified
                fail_fast(exc)
            return PublishResult.of(counts).to_xcom()

        planned = plan_batch()
        moved = transfer_batch(planned)
        gated = gate_batch(planned, moved)
        publish_batch(planned, gated)
    return dag


def build_all(specs: SpecSet | None = None) -> dict[str, DAG]:
    specs = specs or load_for_dags()
    if specs.defaults is None:
        return {}
    return {f"hipbridge_{t}": build_dag(s, specs) for t, s in sorted(specs.specs.items())}


def raise_spec_errors(specs: SpecSet | None = None) -> None:
    specs = specs or load_for_dags()
    if specs.errors:
        still = ("\nThese tables keep their DAG and upload; only the reference to a broken spec is not checked:\n"
                 + "\n".join(str(w) for w in specs.warnings)) if specs.warnings else ""
        raise SpecErrors(f"{len(specs.errors)} problem(s) in table specs — the affected tables have no DAG:\n"
                         + "\n".join(str(e) for e in specs.errors) + still)


def build_reconciliation_dag(specs: SpecSet | None = None) -> DAG | None:
    """数据量记录汇总 / 数据对账表 for the previous hospital day (or a chosen range), after the uploads."""
    specs = specs or load_for_dags()
    if specs.defaults is None:
        return None
    tz = specs.defaults.timezone
    with DAG(
        dag_id="hipbridge_reconciliation",
        description="数据量记录汇总 + 数据对账表",
        schedule=CronTriggerTimetable("0 6 * * *", timezone=tz),
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["hipbridge", "control"],
        doc_md="## 对账\n每日 06:00（医院时区）按已发布的前置机数据重算前一天的数据量记录汇总与数据对账表；"
               "可用参数 `from` / `to` 重算任意日期区间（含首尾）。",
        params={"from": Param(None, type=["null", "string"], format="date", description="开始日期（含）"),
                "to": Param(None, type=["null", "string"], format="date", description="结束日期（含），默认昨天")},
    ) as dag:

        @task(task_id="reconcile")
        def reconcile_days() -> dict:
            from hipbridge.pipeline.reconcile import reconcile

            params = get_current_context()["params"]
            ctx = _context()
            end = date.fromisoformat(params["to"]) if params.get("to") else ctx.now().date() - timedelta(days=1)
            start = date.fromisoformat(params["from"]) if params.get("from") else end
            ctx.ensure_frontend()
            r = reconcile(ctx.engine, ctx.specs, start, end, ctx.now())
            return {"days": r.days, "volume_rows": r.volume_rows, "reconciliation_rows": r.reconciliation_rows}

        reconcile_days()
    return dag


# ---------------------------------------------------------------- backfill (history in mapped windows)
# One DAG, `hipbridge_backfill`: a form (table, first and last day, days per window) whose windows
# become mapped tasks. Each mapped task is one whole batch (plan → transfer → gate → publish), so
# the windows are independent and several workers (Celery, see docker-compose.yml) share them;
# `max_active_tis_per_dagrun` keeps a modest front-end machine from running too many at once.

BACKFILL_DAG_ID = "hipbridge_backfill"


def build_backfill_dag(specs: SpecSet | None = None, max_parallel: int | None = None) -> DAG | None:
    specs = specs or load_for_dags()
    if specs.defaults is None or not specs.specs:
        return None
    parallel = max_parallel or settings().backfill_parallel
    tables = sorted(specs.specs)

    with DAG(
        dag_id=BACKFILL_DAG_ID,
        description="历史数据补传：按日期窗口拆分为并行任务（每个窗口一个批次）",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=["hipbridge", "backfill"],
        doc_md=("## 历史数据补传 (backfill)\n\n选择表与日期区间（医院日历日，含首尾），按 `days` 天一个窗口拆分；"
                "每个窗口是一个独立批次（抽取 → 质控 → 发布），作为映射任务并行运行，可由多个 Celery worker 分担。"
                "命令行等价：`hipbridge backfill TABLE --from DATE --to DATE --days N`。"),
        params={
            "table": Param(tables[0], enum=tables, description="表标识（table id）"),
            # no default: a trigger without both dates is refused by the api-server (a reversed range fails
            # the first task at once, without retries)
            "window_start": Param(type="string", format="date", description="开始日期（含），必填"),
            "window_end": Param(type="string", format="date", description="结束日期（含），必填"),
            "days": Param(1, type="integer", minimum=1, description="每个窗口的天数"),
        },
        render_template_as_native_obj=True,
    ) as dag:

        @task(task_id="windows")
        def windows() -> list[dict]:
            from hipbridge.pipeline.backfill import split_windows
            from hipbridge.pipeline.failures import PipelineError

            params = get_current_context()["params"]
            if not params.get("window_start") or not params.get("window_end"):
                raise AirflowFailException("backfill needs window_start and window_end")
            try:
                ws = split_windows(date.fromisoformat(params["window_start"]),
                                   date.fromisoformat(params["window_end"]), int(params.get("days") or 1))
            except PipelineError as exc:  # a reversed range: the same on every retry
                raise AirflowFailException(str(exc)) from exc
            return [{"table": params["table"], **w.to_dict()} for w in ws]

        @task(task_id="sync_window", max_active_tis_per_dagrun=parallel)
        def sync_window(window: dict) -> dict:
            from hipbridge.pipeline.backfill import Window, run_window
            from hipbridge.pipeline.results import WindowResult

            run = get_current_context().get("dag_run")
            r = run_window(_context(), window["table"], Window.from_dict(window), run_id=getattr(run, "run_id", None))
            if r.status != BatchStatus.PUBLISHED:
                raise AirflowFailException(f"{window['table']} {window['start']}…{window['end']}: {r.status}: {r.message}")
            return WindowResult(f"{window['start']}…{window['end']}", extracted=r.extracted, published=r.published,
                                quarantined=r.quarantined).to_xcom()

        @task(task_id="summary", trigger_rule="all_done")
        def summary(results) -> dict:
            from hipbridge.pipeline.results import BackfillSummary, WindowResult

            return BackfillSummary.of([WindowResult.from_xcom(r) for r in (results or []) if r]).to_xcom()

        summary(sync_window.expand(window=windows()))
    return dag
