"""Secrets never in output: connection passwords are masked wherever hipbridge shows a URL or an error.

- `mask_url(url)` renders a URL for people: the password **and** password-like query parameters
  (`?password=`, `pwd`, `PWD=` inside `odbc_connect`, tokens, keys) become `***`.
- `register_url(url)` remembers a resolved connection's secrets (raw and URL-quoted). Inside an
  Airflow task it also registers them with Airflow's secrets masker (`airflow.sdk.log.mask_secret`),
  so the task log shows `***` wherever they would appear — also in a driver's message or traceback.
- `redact(text)` masks every remembered secret and any `scheme://user:password@` or `password=…`
  it finds in free text; the CLI passes its error messages and log records through it.

Engines are created with `hide_parameters=True` (io/engines.py), so a database error never carries the
row's values (names, ID numbers, phones) into an exception text or a log.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from urllib.parse import quote, quote_plus

# Every command installs this module's log filter at start-up: SQLAlchemy and Airflow load only when a URL
# or secret is actually masked.

MASK = "***"
SENSITIVE_KEYS = ("password", "passwd", "pwd", "pass", "secret", "token", "access_token", "api_key", "apikey",
                  "private_key", "passphrase", "authorization")
_KEY_RE = "|".join(sorted(SENSITIVE_KEYS, key=len, reverse=True))
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<pw>[^@\s'\"]+)(?P<at>@)")
_KEYVALUE = re.compile(rf"(?i)\b(?P<key>{_KEY_RE})(?P<eq>\s*=\s*)(?P<value>[^&;\s'\",)]+)")
_secrets: set[str] = set()
_lock = threading.Lock()


def _sensitive(key: str) -> bool:
    return key.lower() in SENSITIVE_KEYS


def mask_text(text: str) -> str:
    """Mask `://user:pw@` and `password=…` patterns in free text (no registry needed)."""
    text = _USERINFO.sub(lambda m: m["head"] + MASK + m["at"], text)
    return _KEYVALUE.sub(lambda m: m["key"] + m["eq"] + MASK, text)


def mask_url(url) -> str:
    """A URL (string or SQLAlchemy URL) as it may be shown: no password, no password-like parameters."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: mask what looks like a secret
        return mask_text(str(url))
    query = {k: (MASK if _sensitive(k) else (mask_text(v) if isinstance(v, str) else
                                             tuple(mask_text(x) for x in v)))
             for k, v in u.query.items()}
    return u.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


def _url_secrets(url) -> list[str]:
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001
        return [m["pw"] for m in _USERINFO.finditer(str(url))]
    found = [u.password] if u.password else []
    for k, v in u.query.items():
        for item in ([v] if isinstance(v, str) else list(v)):
            if _sensitive(k):
                found.append(item)
            found += [m["value"] for m in _KEYVALUE.finditer(item)]
    return [str(s) for s in found if s]


def register_secret(secret: str) -> None:
    """Remember a secret (and its URL-quoted forms); tell Airflow's masker when running in Airflow."""
    if not secret or len(secret) < 4:   # masking a 1–3 character string would blot out ordinary text
        return
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    with _lock:
        new = forms - _secrets
        _secrets.update(forms)
    if new and "airflow" in sys.modules:   # inside Airflow (a task, the dag processor): its masker too
        try:
            from airflow.sdk.log import mask_secret
        except Exception:  # noqa: BLE001 - an Airflow without the Task SDK: our own masking still applies
            return
        for form in sorted(new):
            mask_secret(form)


def register_url(url) -> None:
    for s in _url_secrets(url):
        register_secret(s)


def redact(text: str) -> str:
    """Mask remembered secrets and secret-looking patterns in `text`."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, MASK)
    return mask_text(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the rendered message (install on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_filter() -> None:
    """Mask secrets in every record the root logger's handlers (and logging's last resort) write."""
    flt = RedactingFilter()
    for h in [*logging.getLogger().handlers, logging.lastResort]:
        if h is not None and not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(flt)
