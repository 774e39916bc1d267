"""Statuses that several modules record, compare and show, as enums.

`StrEnum`: a member is its text, so what the operations schema stores and what earlier rows hold
are unchanged (`BatchStatus.PUBLISHED == "published"`), while a misspelt status is an
AttributeError at the line that wrote it instead of a row no query ever matches.
"""

from __future__ import annotations

from enum import StrEnum


class BatchStatus(StrEnum):
    """`batch_log.status`: one batch of one table through plan → stage → gate → publish."""
    PLANNED = "planned"
    STAGED = "staged"
    PUBLISHED = "published"
    FAILED = "failed"          # an error: the batch is retried by the next run
    BLOCKED = "blocked"        # the quality gate stopped it: nothing published

    @classmethod
    def unsuccessful(cls) -> tuple[BatchStatus, ...]:
        """The statuses an operator must look at (alerts, status page, inspection report)."""
        return (cls.FAILED, cls.BLOCKED)


class RuleStatus(StrEnum):
    """A quality rule's result (OHDSI DQD vocabulary): an empty feed is Not Applicable, never a pass."""
    PASSED = "Passed"
    FAILED = "Failed"
    NOT_APPLICABLE = "Not Applicable"
    ERROR = "Error"            # the rule could not run (bad SQL, missing column)

    @property
    def label(self) -> str:
        return {"Passed": "通过", "Failed": "未通过", "Not Applicable": "不适用", "Error": "执行错误"}[self.value]
