"""Retry policy: a source or front-end that went away is retried with exponential backoff.

A mistake (syntax error, unknown column) is never retried: `failures.is_deterministic` decides.
"""

from __future__ import annotations

import logging
from time import sleep

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from hipbridge.redact import mask_url
from hipbridge.settings import settings

from .failures import PipelineError, is_deterministic

log = logging.getLogger(__name__)


class SourceUnavailable(PipelineError):
    """The source database could not be reached (after retries); nothing was published."""


class FrontendUnavailable(PipelineError):
    """The front-end database could not be reached (after retries); nothing was published."""


_TRANSIENT_TEXT = ("can't connect", "lost connection", "server has gone away", "connection refused",
                   "connection reset", "broken pipe", "timed out", "timeout", "unknown database",
                   "could not connect", "connection closed", "deadlock", "lock wait timeout",
                   "terminating connection", "server closed the connection")


def is_transient(exc: BaseException) -> bool:
    """A connection that went away (or a deadlock): worth retrying with backoff."""
    if isinstance(exc, SourceFailure):
        exc = exc.exc
    if is_deterministic(exc):  # a syntax error, unknown column, denied access: the same on every attempt
        return False
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                        ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    text = str(exc).lower()
    # connectorx raises RuntimeError with the driver's message
    return isinstance(exc, RuntimeError) and any(t in text for t in _TRANSIENT_TEXT)


def retry_policy() -> tuple[int, float]:
    """(attempts, first delay in seconds): HIPBRIDGE_RETRY_ATTEMPTS (4), HIPBRIDGE_RETRY_DELAY (2 s, doubling)."""
    return max(1, settings().retry_attempts), settings().retry_delay


def with_retries(what: str, fn, *args, **kwargs):
    """Run fn, retrying transient failures with exponential backoff (capped at 60 s)."""
    attempts, delay = retry_policy()
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            log.warning("%s: attempt %d of %d failed (%s: %s); retrying in %.1fs", what, attempt, attempts,
                        type(exc).__name__, str(exc).splitlines()[0][:300], delay)
            sleep(delay)
            delay = min(delay * 2, 60.0)
    raise AssertionError("unreachable")


def safe_url(engine: Engine) -> str:
    return mask_url(engine.url)   # no password, no password-like query parameters


class SourceFailure(Exception):
    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


def source_chunks(chunks):
    """Mark errors raised while reading the source, so they are reported against it."""
    it = iter(chunks)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise SourceFailure(exc) from exc
        yield chunk
