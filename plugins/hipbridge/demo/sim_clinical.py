"""Plausible clinical content for the simulated platform's pushes (tests, demo; never production).

`push_patient` generates every column of a shared table generically (types, value domains,
references); `ClinicalFill.fill` then overwrites the columns the external data page reads
(`config/display.yaml` tables) with coherent values from `config/simulator/clinical.yaml`: a
visit's diagnoses, lab panels whose results carry units, reference ranges and H / L / HH / LL flags,
exam findings and conclusions, prescriptions. One fill object per push keeps the links (a result's
time is its report's time; a diagnosis points at a visit of the same hospital).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hipbridge.display.config import display_config
from hipbridge.platform.config import config_dir


@lru_cache(maxsize=2)
def clinical_catalogue(directory: str | None = None) -> dict[str, Any]:
    path = Path(directory or config_dir()) / "simulator" / "clinical.yaml"
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _roles(kind: str) -> tuple[str | None, dict[str, str]]:
    t = display_config().tables.get(kind)
    return (t.table, t.columns) if t else (None, {})


@dataclass
class ClinicalFill:
    rng: random.Random
    now: datetime
    cat: dict[str, Any] = field(default_factory=clinical_catalogue)
    visits: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)   # org → [(visit id, time)]
    visit_time: dict[tuple[str, str], datetime] = field(default_factory=dict)
    reports: dict[tuple[str, str], tuple[dict[str, Any], datetime, int]] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    seq: int = 0

    def __post_init__(self) -> None:
        self.kind_of = {t.table: k for k, t in display_config().tables.items()}

    def fill(self, table_id: str, org: str, row: dict[str, Any], index: int) -> None:
        kind = self.kind_of.get(table_id)
        if kind is None:
            return
        _, c = _roles(kind)
        getattr(self, f"_{kind}")(org, row, c, index)

    # ---------------------------------------------------------- per kind

    def _when(self, org: str, row: dict[str, Any], c: dict[str, str], hours: float) -> datetime:
        v = row.get(c.get("visit", "")) if c.get("visit") else None
        base = self.visit_time.get((org, str(v)))
        if base is None:
            base = (self.now - timedelta(days=self.rng.randrange(20, 300))).replace(microsecond=0, second=0)
        return base + timedelta(hours=hours)

    def _visit(self, org, row, c, i) -> None:
        t = (self.now - timedelta(days=30 + 45 * i + self.rng.randrange(0, 20),
                                        hours=self.rng.randrange(0, 8))).replace(microsecond=0, second=0, minute=0)
        self.visits.setdefault(org, []).append((str(row.get(c["id"])), t))
        self.visit_time[(org, str(row.get(c["id"])))] = t
        dx = self.cat["diagnoses"][(i + len(self.visits)) % len(self.cat["diagnoses"])]
        self._set(row, c, start=t, end=t + timedelta(minutes=40), dept=self.rng.choice(self.cat["departments"]),
                  doctor=self.rng.choice(self.cat["doctors"]), diagnosis=dx["name"],
                  complaint=self.rng.choice(self.cat["complaints"]), treatment=self.rng.choice(self.cat["treatments"]))

    def _diagnosis(self, org, row, c, i) -> None:
        vs = self.visits.get(org) or []
        if vs:
            vid, t = vs[i % len(vs)]
            if c["visit"] in row:
                row[c["visit"]] = vid
        else:
            t = None
        dx = self.cat["diagnoses"][i % len(self.cat["diagnoses"])]
        self._set(row, c, code=dx["code"], name=dx["name"], time=t, main="1" if i < len(vs) else "0")

    def _lab(self, org, row, c, i) -> None:
        panel = self.cat["lab_panels"][i % len(self.cat["lab_panels"])]
        t = self._when(org, row, c, hours=3 + i)
        if panel.get("reported_days_ago"):     # recent: inside its 互认 window
            lo, hi = panel["reported_days_ago"]
            t = (self.now - timedelta(days=self.rng.randrange(lo, hi), hours=self.rng.randrange(0, 8))).replace(
                second=0)
        self.reports[(org, str(row.get(c["id"])))] = (panel, t, 0)
        self._set(row, c, time=t, title=panel["name"], item_code=panel["code"], specimen=panel["specimen"],
                  critical="0", hr="1")
        if panel.get("recognition_code"):
            self._set(row, c, recognition_code=panel["recognition_code"])

    def _lab_result(self, org, row, c, i) -> None:
        key = (org, str(row.get(c["report"])))
        panel, t, n = self.reports.get(key, (self.cat["lab_panels"][0], self._when(org, row, {}, 3), 0))
        self.reports[key] = (panel, t, n + 1)
        a = panel["analytes"][n % len(panel["analytes"])]
        r = self.rng.random()
        if "critical_high" in a and r < self.cat["critical_share"]:
            value, flag = a["critical_high"] * 1.05, "HH"
        elif r < self.cat["abnormal_share"]:
            high = self.rng.random() < 0.6
            value = a["high"] * self.rng.uniform(1.05, 1.4) if high else a["low"] * self.rng.uniform(0.6, 0.95)
            flag = "H" if high else "L"
        else:
            value, flag = self.rng.uniform(a["low"], a["high"]), "N"
        self._set(row, c, code=a["code"], name=a["name"], value=f"{value:.2f}", text=None, unit=a["unit"],
                  range=f"{a['low']}-{a['high']}", low=a["low"], high=a["high"], abnormal=flag, time=t, seq=n + 1)
        if "JYJGLXDM" in row:
            row["JYJGLXDM"] = "1"
        if "LOINCDM" in row:
            row["LOINCDM"] = a["code"]

    def _exam(self, org, row, c, i) -> None:
        e = self.cat["exams"][i % len(self.cat["exams"])]
        uid = (f"1.2.156.112605.{self.rng.randrange(10**9)}.{self.rng.randrange(10**6)}"
               if self.rng.random() < self.cat["image_share"] else None)
        self._set(row, c, time=self._when(org, row, c, hours=5 + i), title=e["name"], item_code=e["code"], part=e["part"],
                  modality=e["modality"], findings=e["findings"], conclusion=e["conclusion"], image=uid, critical="0",
                  hr="1")
        if e.get("recognition_code"):
            self._set(row, c, recognition_code=e["recognition_code"])

    def _rx(self, org, row, c, i) -> None:
        dx = self.cat["diagnoses"][i % len(self.cat["diagnoses"])]
        self._set(row, c, time=self._when(org, row, c, hours=1), diagnosis=dx["name"], cancelled="0")

    def _rx_item(self, org, row, c, i) -> None:
        d = self.cat["drugs"][i % len(self.cat["drugs"])]
        self._set(row, c, drug=d["name"], spec=d["spec"], dose=d["dose"], dose_unit=d["unit"], frequency=d["frequency"],
                  route=d["route"], days=d["days"], quantity=d["quantity"], quantity_unit=d["quantity_unit"])

    @staticmethod
    def _set(row: dict[str, Any], c: dict[str, str], **values: Any) -> None:
        for role, v in values.items():
            col = c.get(role)
            if col and col in row:
                row[col] = v
