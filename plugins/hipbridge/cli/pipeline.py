"""`hipbridge run | status | frontend init | reveal | reconcile`: the table pipeline from a shell, without Airflow."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta

from hipbridge.settings import ops_schema_name
from hipbridge.statuses import BatchStatus


def _context(args):
    from hipbridge.pipeline.context import Context

    return Context.create(args.specs, getattr(args, "db", None))


def _run(args) -> int:
    from hipbridge.pipeline.publish import counts_text
    from hipbridge.pipeline.run import sync_table

    ctx = _context(args)
    if args.full and (args.from_date or args.to_date):
        raise SystemExit("hipbridge run: --full cannot be combined with --from/--to")
    if bool(args.from_date) != bool(args.to_date):
        raise SystemExit("hipbridge run: --from and --to go together (a rerun of a date window)")
    mode = "full" if args.full else "window" if args.from_date else "incremental"
    tables = sorted(ctx.specs.specs) if args.table == "all" else [args.table]
    worst = 0
    if args.table == "all":
        worst = _report_invalid(ctx.specs)
    for table in tables:
        r = sync_table(table, mode, args.from_date, args.to_date, ctx=ctx)
        print(f"{r.table}: {r.status}  {counts_text(vars(r))}  window {r.window_start} … {r.window_end}")
        if r.status != BatchStatus.PUBLISHED:
            print(f"  blocked: {r.message}", file=sys.stderr)
            worst = 3
    return worst


def _report_invalid(specs) -> int:
    """Print every table whose spec cannot run (the others run regardless); 1 if there is any."""
    for table, errors in sorted(specs.invalid_tables().items()):
        print(f"{table}: not run, its spec is invalid:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
    for w in specs.warnings:
        print(f"{w}", file=sys.stderr)
    return 1 if specs.invalid_tables() else 0


def _status(args) -> int:
    from hipbridge.status import format_table, table_status

    ctx = _context(args)
    rows = table_status(ctx)
    invalid = ctx.specs.invalid_tables()
    if args.json:
        print(json.dumps({"tables": rows, "invalid_specs": [
            {"table": t, "errors": [str(e) for e in errs]} for t, errs in sorted(invalid.items())]},
            ensure_ascii=False, indent=2, default=str))
    else:
        print(format_table(rows))
        for table, errs in sorted(invalid.items()):
            print(f"{table}: spec invalid, not shown: " + "; ".join(str(e) for e in errs))
    return 0


def _frontend_init(args) -> int:
    from hipbridge.io.engines import engine_for
    from hipbridge.io.frontend import create_frontend
    from hipbridge.spec import load_specs

    specs = load_specs(args.specs).require_valid()
    from hipbridge.io.engines import default_frontend_url

    url = args.db or default_frontend_url()
    engine = engine_for(url, ops_schema_name(specs.defaults, url))
    if args.adopt_ops and args.fresh_ops:
        raise SystemExit("hipbridge frontend init: --adopt-ops and --fresh-ops exclude each other")
    legacy = args.adopt_ops or ("fresh" if args.fresh_ops else "auto")
    from hipbridge.crypto.frontend import frontend_columns

    report = create_frontend(engine, specs, ops_legacy=legacy, encrypted=frontend_columns(specs))
    from hipbridge.redact import mask_url

    print(f"front-end {mask_url(engine.url)} (operations schema "
          f"{ops_schema_name(specs.defaults, url)}): created {len(report.created)}, upgraded {len(report.upgraded)}, "
          f"unchanged {len(report.unchanged)} table(s)")
    for name, cols in report.upgraded.items():
        print(f"  {name}: added {', '.join(cols)}")
    for name, what in report.converted.items():
        print(f"  {name}: converted to {', '.join(what)}")
    for name, cols in report.widened.items():
        print(f"  {name}: widened for SM4 ciphertext (config/crypto.yaml frontend): {', '.join(cols)}")
    return 0


def register(sub) -> None:
    r = sub.add_parser("run", help="run one table's pipeline (extract → map → check → publish) without Airflow")
    r.add_argument("table", help="table id (e.g. lab_result), or 'all'")
    r.add_argument("--from", dest="from_date", type=date.fromisoformat, help="rerun window start date (inclusive)")
    r.add_argument("--to", dest="to_date", type=date.fromisoformat, help="rerun window end date (inclusive)")
    r.add_argument("--full", action="store_true", help="full reload of the table")
    r.add_argument("--db", help="front-end database URL (default $HIPBRIDGE_FRONTEND_URL or the embedded SQLite)")
    r.add_argument("--specs", help="spec folder (default table_specs/)")
    r.set_defaults(func=_run)

    s = sub.add_parser("status", help="per table: front-end rows, watermark, last run")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--db", help="front-end database URL")
    s.add_argument("--specs", help="spec folder (default table_specs/)")
    s.set_defaults(func=_status)

    f = sub.add_parser("frontend", help="front-end database (前置机) schema")
    fs = f.add_subparsers(dest="frontend_command", metavar="ACTION")
    fs.required = True
    i = fs.add_parser("init", help="create or upgrade the front-end tables from the specs")
    i.add_argument("--db", help="front-end database URL (default $HIPBRIDGE_FRONTEND_URL or the embedded SQLite)")
    i.add_argument("--specs", help="spec folder (default table_specs/)")
    i.add_argument("--adopt-ops", metavar="SCHEMA",
                   help="take over an earlier version's server-wide operations schema (e.g. hipbridge_ops) as "
                        "this front-end's own, although other front-end databases used it too")
    i.add_argument("--fresh-ops", action="store_true",
                   help="start this front-end's own operations schema empty, leaving an earlier shared one alone")
    i.set_defaults(func=_frontend_init)

    v = fs.add_parser("reveal", help="read rows of a front-end table with its SM4-encrypted columns decrypted "
                                     "(config/crypto.yaml frontend)")
    v.add_argument("table", help="table id (e.g. patient_info) or the province's table name (e.g. HZJBXXB)")
    v.add_argument("--key", action="append", default=[], metavar="COLUMN=VALUE", required=True,
                   help="a primary-key column's value (repeat for each key column you know)")
    v.add_argument("--db", help="front-end database URL (default $HIPBRIDGE_FRONTEND_URL or the embedded SQLite)")
    v.add_argument("--specs", help="spec folder (default table_specs/)")
    v.set_defaults(func=_frontend_reveal)

    register_reconcile(sub)


def _frontend_reveal(args) -> int:
    """Rows of a front-end table by key, encrypted columns decrypted (JSON, one object per row)."""
    from sqlalchemy import MetaData, Table, and_, select

    from hipbridge.crypto.frontend import reveal_row

    ctx = _context(args)
    by_target = {s.target.name: t for t, s in ctx.specs.specs.items()}
    table_id = args.table if args.table in ctx.specs.specs else by_target.get(args.table)
    if table_id is None:
        raise SystemExit(f"hipbridge frontend reveal: no table spec {args.table!r}")
    spec = ctx.specs.get(table_id)
    wanted: dict[str, str] = {}
    for item in args.key:
        col, sep, value = item.partition("=")
        if not sep or col not in spec.target.primary_key:
            raise SystemExit(f"hipbridge frontend reveal: --key {item!r}: expected COLUMN=VALUE with COLUMN one of "
                             f"the primary key {', '.join(spec.target.primary_key)}")
        wanted[col] = value
    table = Table(spec.target.name, MetaData(), autoload_with=ctx.engine)
    with ctx.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(table).where(and_(*[table.c[c] == v for c, v in wanted.items()])))
                .mappings()]
    columns = ctx.encrypted.get(table_id, frozenset())
    shown = [reveal_row(ctx.engine, ctx.ops_schema, row, columns) for row in rows]
    # audited before anything is printed: decrypted personal data leaves only with its audit event
    _audit_reveal(ctx, spec.target.name, wanted, sorted(columns), shown)
    for row in shown:
        print(json.dumps(row, ensure_ascii=False, default=str))
    if not rows:
        print(f"{spec.target.name}: no row with {', '.join(f'{c}={v}' for c, v in wanted.items())}", file=sys.stderr)
        return 1
    return 0


def _audit_reveal(ctx, target: str, key: dict[str, str], columns: list[str], rows: list[dict]) -> None:
    """One REVEAL event per revealed row (per patient, so `audit who --patient` finds it) in the
    hash-chained audit log, actor the operating-system login; no row → one event with result not_found."""
    import getpass

    from hipbridge.audit import AuditUnavailable, append
    from hipbridge.crypto.config import crypto_config
    from hipbridge.crypto.keys import KeyStore
    from hipbridge.io.ops import ensure_ops

    ident = crypto_config().shared_store.identity
    keys = KeyStore()
    object_id = ",".join(f"{c}={v}" for c, v in key.items())[:64]
    base = {"ts": ctx.now(), "actor_type": "system", "actor_id": getpass.getuser()[:64], "action": "REVEAL",
            "object_type": target[:32], "object_id": object_id, "detail": {"columns": columns}}
    events = [{**base, "result_code": "ok",
               "patient_key": keys.patient_key(r.get(ident.id_type) or "01", r[ident.id_no])
               if r.get(ident.id_no) else None} for r in rows] or [{**base, "result_code": "not_found"}]
    try:
        with ctx.engine.begin() as conn:
            append(conn, ensure_ops(ctx.engine, ctx.ops_schema), keys, events)
    except Exception as exc:   # whatever stopped the audit write, nothing is shown
        raise AuditUnavailable(f"hipbridge frontend reveal: the audit log could not be written ({type(exc).__name__}); "
                               "nothing is shown") from exc


def _reconcile(args) -> int:
    from hipbridge.pipeline.reconcile import reconcile

    ctx = _context(args)
    end = args.to_date or (ctx.now().date() - timedelta(days=1))
    start = args.from_date or end
    if start > end:
        raise SystemExit("hipbridge reconcile: --from is after --to")
    ctx.ensure_frontend()
    r = reconcile(ctx.engine, ctx.specs, start, end, ctx.now())
    print(f"数据量记录汇总 {r.volume_rows} 行, 数据对账表 {r.reconciliation_rows} 行 ({start} … {end}, {r.days} 天)")
    return 0


def register_reconcile(sub) -> None:
    c = sub.add_parser("reconcile", help="compute 数据量记录汇总 and 数据对账表 for hospital days (default: yesterday)")
    c.add_argument("--from", dest="from_date", type=date.fromisoformat, help="first day (inclusive)")
    c.add_argument("--to", dest="to_date", type=date.fromisoformat, help="last day (inclusive; default yesterday)")
    c.add_argument("--db", help="front-end database URL")
    c.add_argument("--specs", help="spec folder (default table_specs/)")
    c.set_defaults(func=_reconcile)
