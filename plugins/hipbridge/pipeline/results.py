"""What each pipeline step hands to the next: typed results, and their XCom form.

Plan hands on the `io.state.Batch` (its XCom form is `Batch.to_dict()`), transfer a
`TransferResult`, the gate a `GateResult`, publish a `PublishResult`. Between Airflow tasks they
travel as XCom, which must stay JSON: `to_xcom()` gives the same dict (same keys) the tasks
returned before these types existed, so a DAG run started by an earlier version reads on, and
`from_xcom()` reads it back, ignoring keys a later version may add. Only the standard library
here: the DAG files import this module's users while Airflow parses them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, Self


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class TransferResult:
    """One batch's transfer: source rows read, rows staged and quarantined (extracted = staged + quarantined),
    duplicate keys among the staged rows, rows skipped for a NULL change time, and the value-mapping counts
    per column (not sent through XCom: the batch log and mapping reports keep them)."""

    extracted: int = 0
    staged: int = 0
    quarantined: int = 0
    duplicates: int = 0
    skipped: int = 0
    mapping: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "mapping"}

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Self:
        return cls(**{k: int(v) for k, v in _known(cls, data).items() if k != "mapping"})


@dataclass(frozen=True)
class GateResult:
    """The quality gate's verdict on a staged batch: blocked or not, why (Chinese, for the batch log and the
    Airflow failure), and how many rule results the engine stored."""

    blocked: bool
    message: str | None = None
    results: int = 0

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


class _Counts(Protocol):   # pipeline.publish.PublishCounts, without importing the publish step here
    inserted: int
    updated: int
    voided: int
    staged: int

    @property
    def unchanged(self) -> int: ...


@dataclass(frozen=True)
class PublishResult:
    """What the publish task reports: the target rows inserted, updated, sent as voided, left unchanged,
    out of the rows staged. The full accounting is `pipeline.publish.PublishCounts`."""

    inserted: int = 0
    updated: int = 0
    voided: int = 0
    unchanged: int = 0
    staged: int = 0

    @classmethod
    def of(cls, counts: _Counts) -> Self:
        return cls(inserted=counts.inserted, updated=counts.updated, voided=counts.voided,
                   unchanged=counts.unchanged, staged=counts.staged)

    def to_xcom(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class WindowResult:
    """One backfill window's batch (a mapped task of `hipbridge_backfill`)."""

    window: str          # "<first day>…<last day>"
    extracted: int = 0
    published: int = 0
    quarantined: int = 0

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class BackfillSummary:
    """The backfill's summary over the windows that finished."""

    windows: int = 0
    extracted: int = 0
    published: int = 0
    quarantined: int = 0

    @classmethod
    def of(cls, done: list[WindowResult]) -> Self:
        return cls(windows=len(done), extracted=sum(r.extracted for r in done),
                   published=sum(r.published for r in done), quarantined=sum(r.quarantined for r in done))

    def to_xcom(self) -> dict[str, int]:
        return asdict(self)
