"""The hospital's clock for reports: every time shown to people is local, with the zone named.

hipbridge records naive datetimes in the hospital's zone (`_defaults.yaml` `timezone`, Asia/Shanghai),
as the pipeline and the sharing lifecycle do; an aware datetime is converted. File names carry the UTC
offset (`quality_20261205_024000_UTC+0800.html`) so a file copied elsewhere still says which clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hipbridge.settings import DEFAULT_TIMEZONE, hospital_now


@dataclass(frozen=True)
class ReportClock:
    timezone: str = DEFAULT_TIMEZONE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def now(self) -> datetime:
        """Naive local time of the hospital, to the second."""
        return hospital_now(self.timezone)

    def local(self, dt: datetime) -> datetime:
        """Naive local time: aware datetimes are converted, naive ones are taken as already local."""
        if dt.tzinfo is not None:
            dt = dt.astimezone(self.tz).replace(tzinfo=None)
        return dt

    def offset(self, at: datetime | None = None) -> timedelta:
        at = self.local(at or self.now())
        return at.replace(tzinfo=self.tz).utcoffset() or timedelta(0)

    def offset_label(self, at: datetime | None = None, colon: bool = True) -> str:
        minutes = int(self.offset(at).total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        h, m = divmod(abs(minutes), 60)
        return f"UTC{sign}{h:02d}:{m:02d}" if colon else f"UTC{sign}{h:02d}{m:02d}"

    @property
    def zone_label(self) -> str:
        """`Asia/Shanghai (UTC+08:00)`: the zone named next to every time a person reads."""
        return f"{self.timezone} ({self.offset_label()})"

    def fmt(self, dt: datetime | date | None, seconds: bool = True, zone: bool = True) -> str:
        """`2026-12-05 02:40:00 Asia/Shanghai`; a date stays a date; None is an em dash."""
        if dt is None:
            return "—"
        if not isinstance(dt, datetime):
            return f"{dt:%Y-%m-%d}"
        text = f"{self.local(dt):%Y-%m-%d %H:%M:%S}" if seconds else f"{self.local(dt):%Y-%m-%d %H:%M}"
        return f"{text} {self.timezone}" if zone else text

    def stamp(self, dt: datetime) -> str:
        """For file names: `20261205_024000_UTC+0800`."""
        local = self.local(dt)
        return f"{local:%Y%m%d_%H%M%S}_{self.offset_label(local, colon=False)}"
