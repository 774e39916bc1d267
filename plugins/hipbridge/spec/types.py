"""Column types of the front-end standard, parsed from the spec's short form.

The province writes types as `varchar(32)`, `decimal(12,2)`, `date`, `timestamp`, `text`.
We keep that vocabulary in YAML and turn it into a small value object that the DDL
builder, the conformer and the quality rules share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_TYPE_RE = re.compile(
    r"^\s*(?P<kind>varchar|char|decimal|numeric|integer|int|bigint|date|timestamp|datetime|text)"
    r"\s*(?:\(\s*(?P<a>\d+)\s*(?:,\s*(?P<b>\d+)\s*)?\))?\s*$",
    re.IGNORECASE,
)

KINDS = ("varchar", "decimal", "integer", "date", "timestamp", "text")
_ALIASES = {"char": "varchar", "numeric": "decimal", "int": "integer", "bigint": "integer",
            "datetime": "timestamp"}


@dataclass(frozen=True)
class ColumnType:
    kind: str  # one of KINDS
    length: int | None = None  # varchar: characters (not bytes)
    precision: int | None = None  # decimal
    scale: int = 0

    def __str__(self) -> str:
        if self.kind == "varchar":
            return f"varchar({self.length})"
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})" if self.scale else f"decimal({self.precision})"
        return self.kind

    @property
    def is_text(self) -> bool:
        return self.kind in ("varchar", "text")

    @property
    def is_temporal(self) -> bool:
        return self.kind in ("date", "timestamp")


def parse_type(text: str) -> ColumnType:
    """Parse `varchar(32)` style types; raise ValueError with the accepted forms."""
    m = _TYPE_RE.match(str(text))
    if not m and "(" in str(text) and ")" not in str(text):
        raise ValueError(
            f"column type {text!r} is cut at a comma: inside {{ }} quote it, e.g. type: 'decimal(12,2)'"
        )
    if not m:
        raise ValueError(
            f"unknown column type {text!r}; expected varchar(n), decimal(p[,s]), integer, date, timestamp or text"
        )
    kind = m.group("kind").lower()
    kind = _ALIASES.get(kind, kind)
    a, b = m.group("a"), m.group("b")
    if kind == "varchar":
        if a is None or int(a) < 1:
            raise ValueError(f"type {text!r}: varchar needs a length, e.g. varchar(32)")
        return ColumnType("varchar", length=int(a))
    if kind == "decimal":
        if a is None:
            raise ValueError(f"type {text!r}: decimal needs a precision, e.g. decimal(12,2)")
        p, s = int(a), int(b or 0)
        if not (1 <= p <= 38) or s > p:
            raise ValueError(f"type {text!r}: precision must be 1-38 and scale <= precision")
        return ColumnType("decimal", precision=p, scale=s)
    if a is not None:
        raise ValueError(f"type {text!r}: {kind} takes no length")
    return ColumnType(kind)


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str | int) -> timedelta:
    """`10m`, `24h`, `15d`, `30s`; a bare integer means seconds."""
    if isinstance(text, int):
        return timedelta(seconds=text)
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ValueError(f"unknown duration {text!r}; expected a number and a unit, e.g. 10m, 24h, 15d")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
