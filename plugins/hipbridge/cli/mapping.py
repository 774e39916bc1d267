"""`hipbridge mapping check|gaps|import|load-standard|domains`: value domains, local mappings, gap report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from hipbridge.settings import ops_schema_name


def _catalog(args):
    from hipbridge.mapping import load_catalog

    return load_catalog(args.mappings, args.hospital)


def _specs(args):
    from hipbridge.spec import load_specs

    return load_specs(args.specs)


def _check(args) -> int:
    catalog = _catalog(args)
    problems = [str(e) for e in catalog.errors]
    specs = _specs(args)
    checked = 0
    for table in sorted(specs.specs):
        found = catalog.check_spec(specs.specs[table])
        checked += 1
        problems.extend(f"{specs.paths[table]}: {p}" for p in found)
    for p in problems:
        print(p, file=sys.stderr)
    n_rows = sum(len(s.rows) for s in catalog.sets.values())
    if problems:
        print(f"{len(problems)} 个错误；有错误的文件不会被应用", file=sys.stderr)
        return 1
    print(f"ok: {len(catalog.domains)} 个值域, 医院 {catalog.hospital.hospital}: {len(catalog.sets)} 个本地码表 "
          f"({n_rows} 行), {checked} 个表规范的对码声明均有效")
    return 0


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}%"


def _frontend(specs):
    """The front-end database (its ops schema holds the 互认 reminder's unmapped orders), when there is one:
    HIPBRIDGE_FRONTEND_URL, or the embedded database once it exists (never created here)."""
    from hipbridge.io.engines import default_frontend_url, engine_for, home
    from hipbridge.settings import ops_schema_name

    url = default_frontend_url()
    if url.startswith("sqlite") and not (home() / "frontend.db").exists():
        return None, None
    try:
        schema = ops_schema_name(specs.require_valid().defaults, url)
        return engine_for(url, schema), schema
    except Exception as exc:  # noqa: BLE001 - the code-set report stands without it
        print(f"警告: 前置库不可用, 不含互认提醒的未映射医嘱: {exc}", file=sys.stderr)
        return None, None


def _gaps(args) -> int:
    from hipbridge.mapping.gaps import compute_gaps
    from hipbridge.recognition.gaps import add_recognition_gaps

    catalog = _catalog(args)
    specs = _specs(args)
    frontend, schema = _frontend(specs)
    report = add_recognition_gaps(compute_gaps(catalog, specs, args.table), catalog, frontend, schema, args.table)
    for p in report.problems:
        print(f"警告: {p}", file=sys.stderr)
    print(f"对码覆盖率（按源数据频次加权） 医院 {report.hospital}")
    for c in report.coverage:
        print(f"  {c.table}.{c.column:<10} {c.column_label:<12} {c.domain:<14} {_pct(c.coverage)}  "
              f"{c.mapped_rows}/{c.rows} 行, 未对照代码 {c.unmapped_distinct}")
    print(f"未对照本地代码: {len(report.entries)}")
    for e in sorted(report.entries, key=lambda e: (e.table, e.column, -e.frequency)):
        cands = "；".join(str(c) for c in e.candidates) or "（无候选）"
        print(f"  {e.table}.{e.column} [{e.set_id or e.domain}] {e.local_code!r} {e.local_name} ×{e.frequency} "
              f"({e.status}, {e.policy}) → {cands}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8")
        print(f"wrote {args.json}")
    if args.xlsx:
        from hipbridge.mapping.review import export_xlsx

        n = export_xlsx(report, Path(args.xlsx))
        print(f"wrote {args.xlsx} ({n} 行待对照)")
    if args.csv:
        from hipbridge.mapping.review import export_csv

        n = export_csv(report, Path(args.csv))
        print(f"wrote {args.csv} ({n} 行待对照)")
    if args.store:
        from hipbridge.io.engines import default_frontend_url, engine_for
        from hipbridge.mapping.gaps import store_snapshot

        url = default_frontend_url()
        schema = ops_schema_name(specs.require_valid().defaults, url)
        n = store_snapshot(report, engine_for(url, schema), schema)
        print(f"stored {n} row(s) in {schema}.mapping_gap")
    return 1 if (args.fail_on_gaps and report.entries) else 0


def _import(args) -> int:
    from hipbridge.mapping.review import import_reviewed

    catalog = _catalog(args)
    result = import_reviewed(catalog, Path(args.file), reviewer=args.reviewer, dry_run=args.dry_run)
    if not result.ok:
        for e in result.errors:
            print(e, file=sys.stderr)
        print(f"{len(result.errors)} 个错误；未写入任何对照", file=sys.stderr)
        return 1
    verb = "将写入" if args.dry_run else "已写入"
    for set_id in sorted(set(result.updated) | set(result.added)):
        print(f"{verb} {set_id}: 更新 {result.updated.get(set_id, 0)} 行, 新增 {result.added.get(set_id, 0)} 行")
    print(f"未填写（跳过）: {result.skipped} 行")
    return 0


def _load_standard(args) -> int:
    from hipbridge.mapping.domains import import_standard_file

    target, n, missing = import_standard_file(args.domain, Path(args.file), Path(args.mappings) if args.mappings
                                              else None, args.encoding)
    print(f"wrote {target}: {n} 个代码（替代子集文件）")
    if missing:
        print(f"警告: 子集中的 {len(missing)} 个代码不在完整文件中: {', '.join(missing[:20])}", file=sys.stderr)
    return 0


def _domains(args) -> int:
    catalog = _catalog(args)
    for d in catalog.domains.values():
        alias = f" (别名 {', '.join(d.aliases)})" if d.aliases else ""
        print(f"{d.id:<22} {d.label:<24} {len(d.codes):>6} 个代码  {d.standard} [{d.status}]{alias}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("mapping", help="对码: value domains, local mappings, gap report, reviewed-file import")
    s = p.add_subparsers(dest="mapping_command", metavar="ACTION")
    s.required = True

    def common(q, specs: bool = True) -> None:
        q.add_argument("--mappings", default=None, help="mappings folder (default: mappings/ or $HIPBRIDGE_MAPPINGS)")
        q.add_argument("--hospital", default=None, help="hospital folder under mappings/local (default: "
                                                        "$HIPBRIDGE_HOSPITAL or demo)")
        if specs:
            q.add_argument("--specs", default=None, help="spec folder (default: table_specs/ or $HIPBRIDGE_SPECS)")

    c = s.add_parser("check", help="validate all mapping files and the specs' code bindings; exit 1 on errors")
    common(c)
    c.set_defaults(func=_check)

    g = s.add_parser("gaps", help="unmapped local codes with source frequency, candidates and coverage")
    common(g)
    g.add_argument("--table", default=None, help="only this table id")
    g.add_argument("--json", default=None, metavar="PATH", help="write the gaps as JSON")
    g.add_argument("--xlsx", default=None, metavar="PATH", help="export for the coding staff (XLSX)")
    g.add_argument("--csv", default=None, metavar="PATH", help="export for the coding staff (CSV, UTF-8)")
    g.add_argument("--store", action="store_true", help="store a snapshot in the ops schema (mapping_gap)")
    g.add_argument("--fail-on-gaps", action="store_true", help="exit 1 when any gap remains (CI)")
    g.set_defaults(func=_gaps)

    i = s.add_parser("import", help="merge the coding staff's reviewed XLSX/CSV into mappings/local/<hospital>/")
    common(i, specs=False)
    i.add_argument("file")
    i.add_argument("--reviewer", default=os.environ.get("USER", ""), help="reviewer recorded when the file has none")
    i.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    i.set_defaults(func=_import)

    ls = s.add_parser("load-standard", help="install a hospital's full code list (ICD-10, ICD-9-CM-3, LOINC)")
    ls.add_argument("domain", help="domain id, e.g. ICD-10")
    ls.add_argument("file", help="CSV/TSV/XLSX with a code column and a name column")
    ls.add_argument("--encoding", default=None, help="source encoding (default: UTF-8, else GB18030)")
    ls.add_argument("--mappings", default=None)
    ls.set_defaults(func=_load_standard)

    d = s.add_parser("domains", help="list the value domains specs may use")
    common(d, specs=False)
    d.set_defaults(func=_domains)
