"""Candidate standard codes for an unmapped local code, ranked by name similarity that works for Chinese.

Three views of a name are compared: the characters (rapidfuzz ratio / partial ratio, so 男 finds
男性), the toned-less pinyin syllables (so a homophone typo 以婚 still finds 已婚; syllables compare as whole symbols), and the code itself
(a local ICD code J18.9 finds J18.900). The best view wins; ties go to the shorter standard name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from .domains import ValueDomain

# rapidfuzz and pypinyin load only when candidates are suggested (`mapping suggest`), not with the catalog.

_NOISE = re.compile(r"[\s()（）\[\]【】,，、/·.\-_:：;；]+")


_NUMERALS = str.maketrans({"一": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5", "六": "6", "七": "7",
                           "八": "8", "九": "9", "十": "10"})


def _clean(text: str) -> str:
    return _NOISE.sub("", text or "").lower().translate(_NUMERALS)


def _similarity(a, b, **_: object) -> float:
    """ratio, or a containment match discounted by how much longer the container is."""
    from rapidfuzz import fuzz

    if not a or not b:
        return 0.0
    short, long_ = sorted((len(a), len(b)))
    return max(fuzz.ratio(a, b), fuzz.partial_ratio(a, b) * (0.55 + 0.4 * short / long_))


def _pinyin(text: str) -> tuple[str, ...]:
    """Syllables (toneless), compared as symbols: 已婚 and 以婚 are (yi, hun) both, 子女 and 侄女 differ."""
    from pypinyin import lazy_pinyin

    return tuple(p for p in lazy_pinyin(text) if p.strip())


@dataclass
class Candidate:
    code: str
    name: str
    score: float
    basis: str  # 名称 | 拼音 | 代码

    def as_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "score": round(self.score, 1), "basis": self.basis}

    def __str__(self) -> str:
        return f"{self.code} {self.name} ({self.score:.0f})"


class NameMatcher:
    """Precomputed names and pinyin of one domain; `candidates()` is cheap after construction."""

    _cache: ClassVar[dict[tuple[str, int], NameMatcher]] = {}

    def __init__(self, domain: ValueDomain):
        self.domain = domain
        self.codes = list(domain.codes)
        self.names = [domain.codes[c] for c in self.codes]
        self.clean = [_clean(n) for n in self.names]
        self.pinyin = [_pinyin(n) for n in self.clean]
        self.code_keys = [_clean(c) for c in self.codes]

    @classmethod
    def for_domain(cls, domain: ValueDomain) -> NameMatcher:
        key = (str(domain.file), len(domain.codes))
        if key not in cls._cache:
            cls._cache[key] = cls(domain)
        return cls._cache[key]

    def candidates(self, local_name: str, local_code: str = "", limit: int = 3) -> list[Candidate]:
        from rapidfuzz import process

        best: dict[int, Candidate] = {}

        def offer(i: int, score: float, basis: str) -> None:
            if score <= 0:
                return
            cur = best.get(i)
            if cur is None or score > cur.score:
                best[i] = Candidate(self.codes[i], self.names[i], score, basis)

        name = _clean(local_name)
        if name:
            for _, score, i in process.extract(name, self.clean, scorer=_similarity, limit=10, score_cutoff=40):
                offer(i, score, "名称")
            py = _pinyin(name)
            if py:
                for _, score, i in process.extract(py, self.pinyin, scorer=_similarity, limit=10, score_cutoff=50):
                    offer(i, 0.95 * score, "拼音")
        code = _clean(local_code)
        if code:
            for i, key in enumerate(self.code_keys):
                if key == code:
                    offer(i, 100.0, "代码")
                elif len(code) >= 3 and key.startswith(code):
                    offer(i, 80.0, "代码")
        ranked = sorted(best.values(), key=lambda c: (-c.score, len(c.name), c.code))
        return ranked[:limit]
