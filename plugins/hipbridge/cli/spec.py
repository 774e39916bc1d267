"""`hipbridge spec check|schema`: validate table specs, publish the JSON Schema for editors."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _check(args) -> int:
    # Imported when the command runs, not at module top: every command's parser is built at start-up
    # (see hipbridge.cli), so a module-top import here would be paid by every other command.
    from hipbridge.io.engines import known_connection_url
    from hipbridge.spec import load_specs
    from hipbridge.spec.sql_guard import spec_query_errors

    result = load_specs(args.specs)
    for table, err in spec_query_errors(result, known_connection_url).items():   # one read-only SELECT per source dialect (sqlglot)
        result.errors.append(err)
        result.specs.pop(table, None)
    for err in result.errors + result.warnings:
        print(err, file=sys.stderr)
    total = len(result.specs) + len({e.file for e in result.errors})
    if result.errors:
        print(f"{len(result.errors)} error(s) in {len(result.errors_by_file())} file(s); "
              f"{len(result.specs)} valid spec(s)", file=sys.stderr)
        return 1
    print(f"ok: {total} table spec(s) valid in {result.directory}")
    return 0


def _schema(args) -> int:
    from hipbridge.spec import TableSpec

    schema = TableSpec.model_json_schema(by_alias=True)
    schema["title"] = "hipbridge table spec"
    text = json.dumps(schema, ensure_ascii=False, indent=2)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("spec", help="validate table specs / write their JSON Schema")
    s = p.add_subparsers(dest="spec_command", metavar="ACTION")
    s.required = True
    c = s.add_parser("check", help="validate every spec; exit 1 with the errors when any is invalid")
    c.add_argument("--specs", default=None, help="spec folder (default: table_specs/ or $HIPBRIDGE_SPECS)")
    c.set_defaults(func=_check)
    j = s.add_parser("schema", help="write the JSON Schema of a table spec (for editor completion)")
    j.add_argument("-o", "--output", default="table_specs/_schema.json", help="file, or - for stdout")
    j.set_defaults(func=_schema)
