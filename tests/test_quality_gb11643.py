"""GB 11643-1999 公民身份号码, property-based: check digit, birth date, address prefix, 15→18, sex parity."""

from __future__ import annotations

from datetime import date, timedelta

from hipbridge.quality import gb11643
from hypothesis import given, settings
from hypothesis import strategies as st

PREFIXES = ["11", "45", "82"]
TODAY = date(2026, 11, 25)

addresses = st.sampled_from(["110101", "451002", "450102", "820000"])
births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
seqs = st.integers(min_value=0, max_value=999)


def make(addr: str, born: date, seq: int) -> str:
    first17 = f"{addr}{born:%Y%m%d}{seq:03d}"
    return first17 + gb11643.check_char(first17)


def test_known_numbers():
    # public worked example of the MOD 11-2 algorithm: 11010519491231002X
    assert gb11643.check_char("11010519491231002") == "X"
    assert gb11643.is_valid("11010519491231002x", address_prefixes=PREFIXES, today=TODAY)
    assert gb11643.upgrade15("110105491231002") == "11010519491231002X"


@given(addresses, births, seqs)
def test_generated_numbers_are_valid_with_their_birth_and_parity(addr, born, seq):
    n = make(addr, born, seq)
    chk = gb11643.check(n, address_prefixes=PREFIXES, today=TODAY)
    assert chk.problem is None
    assert chk.birth == born
    assert chk.parity == ("odd" if seq % 2 else "even")


@given(addresses, births, seqs, st.integers(min_value=0, max_value=16), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_is_detected(addr, born, seq, pos, delta):
    n = make(addr, born, seq)
    changed = n[:pos] + str((int(n[pos]) + delta) % 10) + n[pos + 1:]
    assert gb11643.check(changed, address_prefixes=PREFIXES, today=TODAY).problem is not None


@given(addresses, births, seqs)
def test_wrong_check_character_is_a_checksum_problem(addr, born, seq):
    n = make(addr, born, seq)
    for c in "0123456789X":
        if c != n[17]:
            assert gb11643.check(n[:17] + c, address_prefixes=PREFIXES, today=TODAY).problem == "checksum"


@given(addresses, st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)), seqs)
def test_fifteen_digit_upgrade_round_trip(addr, born, seq):
    old = f"{addr}{born:%y%m%d}{seq:03d}"
    new = gb11643.upgrade15(old)
    assert new == make(addr, born, seq)
    assert gb11643.check(old, address_prefixes=PREFIXES, today=TODAY).number == new


@given(addresses, st.integers(min_value=1900, max_value=2025), st.integers(min_value=1, max_value=12),
       st.integers(min_value=29, max_value=39), seqs)
@settings(max_examples=200)
def test_impossible_birth_dates_rejected(addr, year, month, day, seq):
    try:
        date(year, month, day)
        return   # a real date: not this test's business
    except ValueError:
        pass
    first17 = f"{addr}{year:04d}{month:02d}{day:02d}{seq:03d}"
    n = first17 + gb11643.check_char(first17)
    assert gb11643.check(n, address_prefixes=PREFIXES, today=TODAY).problem == "birth_date"


@given(births, seqs)
def test_future_birth_and_unknown_province_rejected(born, seq):
    future = make("451002", TODAY + timedelta(days=1 + born.toordinal() % 300), seq)
    assert gb11643.check(future, address_prefixes=PREFIXES, today=TODAY).problem == "birth_date"
    assert gb11643.check(make("991002", born, seq), address_prefixes=PREFIXES, today=TODAY).problem == "address"


@given(st.text(max_size=20))
def test_never_raises_on_garbage(s):
    chk = gb11643.check(s, address_prefixes=PREFIXES, today=TODAY)
    assert chk.problem in (None, "format", "birth_date", "address", "checksum")
