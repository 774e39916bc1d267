"""`hipbridge deploy env` (the compose stack's env file with fresh keys) and `deploy airflow-passwords`."""

from __future__ import annotations

from pathlib import Path


def _env(args) -> int:
    from hipbridge.deploy import ENV_FILE, EXAMPLE_FILE, write_env

    out = Path(args.out) if args.out else (EXAMPLE_FILE if args.example else ENV_FILE)
    path = write_env(out, force=args.force, example=args.example)
    if args.example:
        print(f"wrote {path} (placeholders, not for use)")
    else:
        print(f"wrote {path} (mode 0600): fill in HIPBRIDGE_CONN_* and HIPBRIDGE_ORG_CODE, then "
              f"`docker-compose up -d`")
    return 0


def _passwords(args) -> int:
    from hipbridge.deploy import write_airflow_passwords

    print(f"wrote {write_airflow_passwords()}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("deploy", help="deployment files for docker-compose.yml")
    dsub = p.add_subparsers(dest="deploy_command", metavar="SUBCOMMAND")
    dsub.required = True
    e = dsub.add_parser("env", help="write deploy/hipbridge.env: Airflow keys, passwords, URLs (once per site)")
    e.add_argument("--out", help="file to write (default deploy/hipbridge.env)")
    e.add_argument("--force", action="store_true", help="replace an existing file (new keys: a new site only)")
    e.add_argument("--example", action="store_true", help="write deploy/hipbridge.env.example (placeholders)")
    e.set_defaults(func=_env)
    a = dsub.add_parser("airflow-passwords", help="airflow-init: the UI login's password file from the env")
    a.set_defaults(func=_passwords)
