"""hipbridge inside Airflow's UI (Airflow 3 plugin: a FastAPI app on the api-server + an external view).

`plugins/hipbridge_ui.py` registers `app` under `/hipbridge` and a navigation entry 数据质控 whose page
(`/plugin/hipbridge` in the UI) frames it. The page shows, from the front-end and the operations
schema: 一、数据质量 (the latest report run's scores and problem list, links to the full HTML / XLSX
reports, which this app serves — the intranet has no internet), 二、对码缺口 (the latest `hipbridge
mapping gaps --store` snapshot) and 三、各表状态 (rows, watermark, last batch, a link to the table's DAG).

Every route requires an Airflow user allowed to see the website: the session cookie the UI sets
(`_token`) or a bearer token from `POST /auth/token`, checked by Airflow's own auth manager.
Database work happens per request; importing this module is cheap (every Airflow component loads plugins).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from hipbridge.settings import ops_schema_name, org_name, settings

REPORT_NAME = re.compile(r"^(quality|inspection)_[0-9A-Za-z_+\-]+\.(html|xlsx)$")
SECTIONS = [("quality", "一、数据质量"), ("gaps", "二、对码缺口"), ("tables", "三、各表状态")]
SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "info": 3}


async def require_airflow_user(request: Request) -> None:
    """Airflow's own check, as its REST API does it: a bearer token, else the UI's session cookie, verified by
    the configured auth manager (401 without, 403 for a bad token or a user who may not see the website).
    Airflow is imported here, per request, so that loading the plugin stays cheap in every component."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    user = await resolve_user_from_token(token)
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(403, "Forbidden")


def report_dir() -> Path:
    from hipbridge.io.engines import home

    return settings().report_dir or home() / "reports"


def _setup() -> SimpleNamespace:
    import hipbridge.mapping.ops
    import hipbridge.quality.store  # noqa: F401 - registers quality_run / quality_result
    from hipbridge.io.engines import default_frontend_url, engine_for
    from hipbridge.io.ops import ops_for
    from hipbridge.reporting import ReportClock
    from hipbridge.spec import load_specs

    specs = load_specs().require_valid()
    url = default_frontend_url()
    schema = ops_schema_name(specs.defaults, url)
    engine = engine_for(url, schema)
    return SimpleNamespace(specs=specs, schema=schema, engine=engine, ops=ops_for(schema),
                           clock=ReportClock(specs.defaults.timezone), org_name=org_name(specs.defaults))


def _tables_present(ctx: SimpleNamespace) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(ctx.engine).get_table_names(schema=ctx.schema))


def quality_summary(ctx: SimpleNamespace, present: set[str], limit: int = 30) -> dict[str, Any] | None:
    """The latest report run: scores and the first `limit` problems, fatal first."""
    from hipbridge.quality.store import load_results, past_runs

    if "quality_run" not in present:
        return None
    runs = past_runs(ctx.engine, ctx.schema, kind="report", limit=1)
    if not runs:
        return None
    run = runs[-1]
    results = load_results(ctx.engine, ctx.schema, run["run_id"])
    issues = sorted((r for r in results if r["status"] in ("Failed", "Error")),
                    key=lambda r: (SEVERITY_ORDER.get(r["severity"], 9), -(r["pct"] or 0)))
    labels = {tid: s.label for tid, s in ctx.specs.specs.items()}
    for r in issues:
        r["label"] = labels.get(r["table_id"], r["table_id"])
    return {"run": run, "dims": (run["scores"] or {}).get("dimensions", {}), "issues": issues[:limit],
            "issue_count": len(issues), "rule_count": len(results)}


def mapping_gaps(ctx: SimpleNamespace, present: set[str], limit: int = 50) -> dict[str, Any] | None:
    """The latest gap snapshot: unmapped local codes by frequency, coverage per coded column."""
    from sqlalchemy import func, select

    if "mapping_gap" not in present:
        return None
    t = ctx.ops.table("mapping_gap")
    with ctx.engine.connect() as conn:
        at = conn.execute(select(func.max(t.c.snapshot_at))).scalar()
        if at is None:
            return None
        rows = conn.execute(select(t).where(t.c.snapshot_at == at)).mappings().all()
    gaps = sorted((dict(r) for r in rows if r["local_code"] is not None), key=lambda r: -r["frequency"])
    coverage = {(r["table_id"], r["column_name"]): r["coverage"] for r in rows}
    labels = {tid: s.label for tid, s in ctx.specs.specs.items()}
    for g in gaps:
        g["label"] = labels.get(g["table_id"], g["table_id"])
    return {"at": at, "gaps": gaps[:limit], "gap_count": len(gaps),
            "columns": [{"table": labels.get(k[0], k[0]), "column": k[1], "coverage": v}
                        for k, v in sorted(coverage.items())]}


def table_rows(ctx: SimpleNamespace, present: set[str]) -> list[dict[str, Any]]:
    from hipbridge.status import table_status

    if "batch_log" not in present or "watermark" not in present:
        return [{"table": tid, "label": s.label, "target": s.target.name, "rows": None, "watermark": None,
                 "last_run": None} for tid, s in sorted(ctx.specs.specs.items())]
    return table_status(ctx)


def latest_reports() -> dict[str, str | None]:
    folder = report_dir()
    out: dict[str, str | None] = {}
    for kind in ("quality", "inspection"):
        for ext in ("html", "xlsx"):
            files = sorted(folder.glob(f"{kind}_*.{ext}"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
            out[f"{kind}_{ext}"] = files[-1].name if files else None
    return out


def render_page() -> str:
    from hipbridge.reporting.page import environment

    ctx = _setup()
    present = _tables_present(ctx)
    env = environment(Path(__file__).parent / "templates")
    env.filters["t"] = lambda v: ctx.clock.fmt(v) if v else "—"
    return env.get_template("ui.html.j2").render(
        title="数据质控 · 对码 · 各表状态", org_name=ctx.org_name, sections=SECTIONS, zone=ctx.clock.zone_label,
        now=ctx.clock.fmt(ctx.clock.now()), quality=quality_summary(ctx, present), gaps=mapping_gaps(ctx, present),
        tables=table_rows(ctx, present), reports=latest_reports())


def create_app() -> FastAPI:
    app = FastAPI(title="hipbridge", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(require_airflow_user)])

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render_page()

    @app.get("/reports/latest/{kind}.{ext}")
    def latest(kind: str, ext: str):
        name = latest_reports().get(f"{kind}_{ext}")
        if not name:
            raise HTTPException(404, f"还没有 {kind} 报告 (.{ext})")
        return RedirectResponse(f"../{name}", status_code=307)

    @app.get("/reports/{name}")
    def report(name: str):
        path = report_dir() / name
        if not REPORT_NAME.match(name) or not path.is_file():
            raise HTTPException(404, f"没有这份报告: {name}")
        return FileResponse(path)

    return app
