"""`hipbridge` command line. Each module in this package adds one command group.

A module defines `register(subparsers)` and sets `func` on its parsers; adding a command is
adding a module here, nothing else (helpers working in parallel never touch a shared list).

Every module is imported to build the parser, whatever the command: so a module imports at its top
only what `register` needs (argparse, small constants) and the rest inside the command's function.
This is start-up laziness on purpose (issue 14: FastAPI alone was a fifth of `hipbridge run`'s imports;
start-up to the first SQL 3.2 s → 1.8 s, docs/transfer.md): FastAPI, pandas, GX, Airflow and the like
load only for the command that uses them. tests/test_cli_startup.py checks it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from hipbridge.settings import settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hipbridge",
        description="hipbridge — 广西全民健康信息平台 数据采集上传、对码、质控与共享",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hipbridge.redact import install_log_filter, redact

    install_log_filter()   # connection passwords never reach the terminal, also through log records
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if getattr(args, "debug", False) or settings().debug:
            raise
        print(redact(f"hipbridge {args.command}: error: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
