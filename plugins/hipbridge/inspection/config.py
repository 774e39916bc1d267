"""`config/inspection.yaml`: schedule, watched folders and the thresholds behind each recommendation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hipbridge.settings import config_dir

DEFAULT_THRESHOLDS: dict[str, float] = {
    "run_failure_pct": 0, "stale_table_days": 2, "quarantine_pct": 1.0, "quality_drop": 2.0, "quality_min": 90,
    "outbox_backlog": 50, "outbox_oldest_hours": 24, "disk_free_pct": 15, "slow_batch_seconds": 1800,
}


class InspectionConfigError(ValueError):
    pass


@dataclass(frozen=True)
class InspectionConfig:
    schedule: str = "0 7 * * 1"
    trend_weeks: int = 8
    watched: tuple[str, ...] = ("table_specs", "expectations", "config", "mappings/local")
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    source: Path | None = None


def load_inspection_config(path: Path | None = None) -> InspectionConfig:
    """Read the file; an unknown key or a non-numeric threshold is an error naming file and key."""
    path = path or config_dir() / "inspection.yaml"
    if not path.exists():
        return InspectionConfig()
    raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(raw) - {"schedule", "trend_weeks", "watched", "thresholds"}
    if unknown:
        raise InspectionConfigError(f"{path}: unknown key(s) {sorted(unknown)}; expected schedule, trend_weeks, "
                                    "watched, thresholds")
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in (raw.get("thresholds") or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise InspectionConfigError(f"{path}: thresholds.{key}: unknown threshold (known: "
                                        f"{', '.join(DEFAULT_THRESHOLDS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InspectionConfigError(f"{path}: thresholds.{key}: expected a number (got {value!r})")
        thresholds[key] = float(value)
    trend = raw.get("trend_weeks", 8)
    if isinstance(trend, bool) or not isinstance(trend, int) or trend < 1:
        raise InspectionConfigError(f"{path}: trend_weeks: expected a whole number ≥ 1 (got {trend!r})")
    watched = raw.get("watched") or list(InspectionConfig.watched)
    if not isinstance(watched, list) or not all(isinstance(w, str) for w in watched):
        raise InspectionConfigError(f"{path}: watched: expected a list of folder names (got {watched!r})")
    return InspectionConfig(str(raw.get("schedule", "0 7 * * 1")), trend, tuple(watched), thresholds, path)
