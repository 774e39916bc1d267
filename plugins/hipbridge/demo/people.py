"""People of the demo hospital: patients and staff, with valid GB 11643 ID numbers.

Why vectorised: at scale 1 a day brings ~6,000 outpatient visits, so calling Faker per row
would dominate the build. Faker (zh_CN) fills a small pool of names once; everything else
(ID numbers, birth dates, phones, Guangxi/百色 addresses) is drawn with numpy arrays.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from faker import Faker

from .codes import codes_of

# GB 11643-1999: weights of the first 17 digits and the check character for sum mod 11.
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = np.array(list("10X98765432"))

# Residence counties (HIS area id → 6-digit code used in the ID number and address text).
# Old codes (451021 田阳县, 451023 平果县, 451025 靖西县) stay valid inside older ID numbers.
COUNTIES = {
    "BS01": ("451002", "右江区", ["大和路街道", "向阳路街道", "龙景街道", "四塘镇", "永乐镇"]),
    "BS02": ("451003", "田阳区", ["田州镇", "那坡镇", "头塘镇"]),
    "BS03": ("451022", "田东县", ["平马镇", "祥周镇", "林逢镇"]),
    "BS04": ("451024", "德保县", ["城关镇", "足荣镇", "隆桑镇"]),
    "BS05": ("451026", "那坡县", ["城厢镇", "平孟镇"]),
    "BS06": ("451027", "凌云县", ["泗城镇", "逻楼镇"]),
    "BS07": ("451028", "乐业县", ["同乐镇", "甘田镇"]),
    "BS08": ("451029", "田林县", ["乐里镇", "旧州镇"]),
    "BS09": ("451030", "西林县", ["八达镇", "古障镇"]),
    "BS10": ("451031", "隆林各族自治县", ["新州镇", "桠杈镇"]),
    "BS11": ("451081", "靖西市", ["新靖镇", "化峒镇", "湖润镇"]),
    "BS12": ("451082", "平果市", ["马头镇", "新安镇", "果化镇"]),
    "NN01": ("450102", "南宁市兴宁区", ["民生街道", "朝阳街道"]),
}
OLD_CODES = {"BS02": "451021", "BS11": "451025", "BS12": "451023"}
VILLAGES = ["那怀村", "东笋村", "百林村", "福禄村", "龙和村", "新民社区", "城北社区", "永福社区", "六合村", "平安村"]
MOBILE_PREFIX = np.array(["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
                          "155", "157", "158", "159", "177", "180", "181", "182", "183", "186", "187", "188",
                          "189", "191", "198", "199"])


def check_digit(first17: str) -> str:
    """GB 11643 check character of a 17-digit prefix."""
    s = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS))
    return str(ID_CHECK[s % 11])


def is_valid_id(id_no: str | None) -> bool:
    if not id_no or len(id_no) != 18 or not id_no[:17].isdigit():
        return False
    return check_digit(id_no[:17]) == id_no[17].upper()


def id_numbers(rng: np.random.Generator, area: np.ndarray, birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """18-digit ID numbers: area code + birth date + sequence (odd for men) + check digit."""
    n = len(area)
    seq = rng.integers(0, 500, n) * 2 + np.where(male, 1, 0)
    ymd = pd.DatetimeIndex(birth).strftime("%Y%m%d").to_numpy()
    first = np.char.add(np.char.add(area.astype(str), ymd.astype(str)), np.char.zfill(seq.astype(str), 3))
    digits = np.frombuffer("".join(first).encode(), dtype=np.uint8).reshape(n, 17) - ord("0")
    check = ID_CHECK[(digits @ ID_WEIGHTS) % 11]
    return np.char.add(first, check)


def mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    tail = np.char.zfill(rng.integers(0, 100_000_000, n).astype(str), 8)
    return np.char.add(MOBILE_PREFIX[rng.integers(0, len(MOBILE_PREFIX), n)], tail)


class NamePool:
    """A few thousand Faker zh_CN names by sex, sampled by index (Faker is slow per call)."""

    def __init__(self, seed: int, size: int = 3000):
        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        self.male = np.array([fake.name_male() for _ in range(size)])
        self.female = np.array([fake.name_female() for _ in range(size)])
        self.company = np.array([fake.company() for _ in range(300)])

    def names(self, rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
        m = self.male[rng.integers(0, len(self.male), len(male))]
        f = self.female[rng.integers(0, len(self.female), len(male))]
        return np.where(male, m, f)


def addresses(rng: np.random.Generator, area_ids: np.ndarray) -> np.ndarray:
    out = np.empty(len(area_ids), dtype=object)
    for aid in np.unique(area_ids):
        idx = np.flatnonzero(area_ids == aid)
        _, county, towns = COUNTIES[aid]
        prefix = "广西壮族自治区" + ("" if county.startswith("南宁") else "百色市") + county
        t = np.array(towns)[rng.integers(0, len(towns), len(idx))]
        v = np.array(VILLAGES)[rng.integers(0, len(VILLAGES), len(idx))]
        no = rng.integers(1, 200, len(idx)).astype(str)
        out[idx] = [f"{prefix}{a}{b}{c}号" for a, b, c in zip(t, v, no)]
    return out


def _birth_dates(rng: np.random.Generator, ref: date, age_years: np.ndarray) -> np.ndarray:
    days = (age_years * 365.25).astype(int) + rng.integers(0, 365, len(age_years))
    return (np.datetime64(ref, "D") - days.astype("timedelta64[D]")).astype("datetime64[D]")


def patients(rng: np.random.Generator, pool: NamePool, n: int, ref: date) -> pd.DataFrame:
    """The patient pool. Age bands let departments pick plausible patients (儿科, 产科 …)."""
    band = rng.choice(3, n, p=[0.16, 0.18, 0.66])          # 0 child, 1 woman 18-45, 2 adult
    age = np.select([band == 0, band == 1], [rng.integers(0, 14, n), rng.integers(18, 45, n)],
                    np.clip(rng.normal(52, 17, n), 14, 95).astype(int))
    male = np.where(band == 1, False, rng.random(n) < 0.5)
    birth = _birth_dates(rng, ref, age)
    area_keys = np.array(list(COUNTIES))
    area_id = area_keys[rng.choice(len(area_keys), n, p=_area_weights(len(area_keys)))]
    id_area = np.array([COUNTIES[a][0] for a in area_id])
    old = (np.isin(area_id, list(OLD_CODES))) & (age > 10)
    id_area[old] = [OLD_CODES[a] for a in area_id[old]]
    id_no = id_numbers(rng, id_area, birth, male)
    # Document types: mostly 身份证; children often registered by 户口本 (same number).
    id_type = np.where(age < 6, "2", "1").astype(object)
    other = rng.random(n)
    id_type[other < 0.004] = "3"
    id_type[(other >= 0.004) & (other < 0.007)] = "5"
    id_type[(other >= 0.007) & (other < 0.009)] = "9"
    foreign = id_type == "3"
    id_no = id_no.astype(object)
    id_no[foreign] = np.char.add("E", rng.integers(10_000_000, 99_999_999, foreign.sum()).astype(str))
    hk = id_type == "5"
    id_no[hk] = np.char.add("H", rng.integers(10_000_000, 99_999_999, hk.sum()).astype(str))
    oth = id_type == "9"
    id_no[oth] = np.char.add("JG", rng.integers(1_000_000, 9_999_999, oth.sum()).astype(str))
    nation = rng.choice(codes_of("his_nation"), n,
                        p=[0.55, 0.33, 0.03, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01])
    country = np.where(foreign, np.where(rng.random(n) < 0.8, "VN", "CN"), np.where(hk, "HK", "CN"))
    nation = np.where(country != "CN", "99", nation)
    marital = np.select([age < 20, age < 28], ["1", rng.choice(["1", "2"], n)],
                        rng.choice(["2", "2", "2", "2", "3", "4", "9"], n))
    occupation = np.select([age < 18, age >= 60], ["XS", "LT"],
                           rng.choice(codes_of("his_occupation"), n,
                                      p=[0.35, 0.2, 0.12, 0.05, 0.05, 0.05, 0.1, 0.08]))
    pay = rng.choice(codes_of("his_pay_method"), n, p=[0.3, 0.52, 0.14, 0.02, 0.02])
    card_type = rng.choice(codes_of("his_card_type"), n, p=[0.3, 0.45, 0.15, 0.1])
    mobile = mobiles(rng, n).astype(object)
    mobile[age < 14] = mobiles(rng, int((age < 14).sum()))            # a parent's phone
    return pd.DataFrame({
        "name": pool.names(rng, male), "male": male, "age": age, "band": band,
        "birth": birth, "id_type": id_type, "id_no": id_no, "nation": nation, "country": country,
        "marital": marital, "occupation": occupation, "area_id": area_id, "address": addresses(rng, area_id),
        "mobile": mobile, "pay": pay, "card_type": card_type,
    })


def _area_weights(k: int) -> np.ndarray:
    w = np.ones(k)
    w[0] = 8          # 右江区: the hospital's own district
    w[-1] = 0.5       # 南宁: visitors
    return w / w.sum()


def cover_local_codes(rng: np.random.Generator, pats: pd.DataFrame, used: np.ndarray) -> None:
    """Give a few adult patients each rarely drawn demographic code, in place.

    Why: every code of the local dictionaries must occur even in a small demo, or the mapping
    and quality features have nothing to show for it; rare values (护照, 京族 …) would otherwise
    only appear at large scales. `used` are pool indexes that certainly have visits.
    """
    adults = [i for i in used if pats.at[i, "band"] == 2 and pats.at[i, "age"] >= 20]
    cols = {"id_type": "his_id_type", "nation": "his_nation", "marital": "his_marital",
            "occupation": "his_occupation", "area_id": "his_division", "card_type": "his_card_type",
            "pay": "his_pay_method"}
    for col, set_id in cols.items():
        for i, code in zip(adults, [c for c in codes_of(set_id) if c != "99" or col != "nation"]):
            pats.at[i, col] = code
    pats.loc[adults[: len(COUNTIES)], "address"] = addresses(rng, pats.loc[adults[: len(COUNTIES)], "area_id"]
                                                             .to_numpy())
    # Documents other than the ID card carry other numbers; foreigners are 外国籍.
    for i in adults[:5]:
        t = pats.at[i, "id_type"]
        if t == "3":
            pats.at[i, "id_no"], pats.at[i, "country"], pats.at[i, "nation"] = "E" + str(
                rng.integers(10_000_000, 99_999_999)), "VN", "99"
        elif t == "5":
            pats.at[i, "id_no"], pats.at[i, "country"] = "H" + str(rng.integers(10_000_000, 99_999_999)), "HK"
        elif t == "9":
            pats.at[i, "id_no"] = "JG" + str(rng.integers(1_000_000, 9_999_999))
