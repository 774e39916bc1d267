"""GB 11643-1999 公民身份号码: structure, ISO 7064 MOD 11-2 check character, 15→18 upgrade.

Pure functions, no database: the quality engine calls `problems()` per value, tests drive it
with hypothesis. Which address prefixes count as valid is data (expectations/_rules.yaml), so
this module takes them as an argument.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from hipbridge.settings import hospital_today

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def check_char(first17: str) -> str:
    """Check character of the first 17 digits (ISO 7064:1983 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError(f"expected 17 digits, got {first17!r}")
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def upgrade15(old: str) -> str:
    """First-generation 15-digit number → 18 digits: insert '19' after the address code, add the check."""
    if len(old) != 15 or not old.isdigit():
        raise ValueError(f"expected 15 digits, got {old!r}")
    first17 = old[:6] + "19" + old[6:]
    return first17 + check_char(first17)


def normalise(value: str) -> str:
    """Strip blanks, upper-case x, upgrade 15-digit numbers."""
    v = str(value).strip().upper()
    if len(v) == 15 and v.isdigit():
        return upgrade15(v)
    return v


def birth_date(number18: str) -> date | None:
    try:
        return date(int(number18[6:10]), int(number18[10:12]), int(number18[12:14]))
    except ValueError:
        return None


def sex_parity(number18: str) -> str:
    """'odd' (男) or 'even' (女) from the 17th digit (顺序码's last digit)."""
    return "odd" if int(number18[16]) % 2 else "even"


@dataclass(frozen=True)
class IdCheck:
    """Outcome for one value: `problem` is None when the number is valid."""

    number: str              # normalised (18 digits when it could be)
    problem: str | None      # 'format', 'birth_date', 'address', 'checksum'
    birth: date | None = None
    parity: str | None = None


def check(value: str, *, address_prefixes: Collection[str] | None = None, today: date | None = None,
          min_year: int = 1880) -> IdCheck:
    """Validate one 居民身份证号. Order: format → birth date → address prefix → checksum."""
    try:
        v = normalise(value)
    except ValueError:
        return IdCheck(str(value), "format")
    if len(v) != 18 or not v[:17].isdigit() or not (v[17].isdigit() or v[17] == "X"):
        return IdCheck(v, "format")
    born = birth_date(v)
    limit = today or hospital_today()
    if born is None or born > limit or born.year < min_year:
        return IdCheck(v, "birth_date")
    if address_prefixes is not None and not any(v.startswith(p) for p in address_prefixes):
        return IdCheck(v, "address", born)
    if check_char(v[:17]) != v[17]:
        return IdCheck(v, "checksum", born)
    return IdCheck(v, None, born, sex_parity(v))


def is_valid(value: str, **kw) -> bool:
    return check(value, **kw).problem is None
