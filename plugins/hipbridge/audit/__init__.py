"""Access and service audit (审计): the hash-chained log, its verification, and "who looked at my data".

    from hipbridge.audit import append, verify, AuditWriter, who_viewed
"""

from .chain import ChainReport, append, verify
from .who import ACCESS_ACTIONS, who_viewed
from .writer import AuditUnavailable, AuditWriter

__all__ = ["ACCESS_ACTIONS", "AuditUnavailable", "AuditWriter", "ChainReport", "append", "verify", "who_viewed"]
