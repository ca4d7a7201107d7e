"""What a status reader may read of the lock table's items: every attribute but the task token.

The lock (shared/aws/lock_table.py), the queue and the wait items (shared/aws/task_tokens.py) write these. The
StatusReaderPolicy (stacks/approvals.py) allows a Scan of exactly these attributes (dynamodb:Attributes), and
`make status` (scripts/status_fleet.py) projects exactly these: neither can read a `taskToken`.
"""

from __future__ import annotations

STATUS_ATTRIBUTES = (
    "target",
    "holder",
    "expiresAt",
    "acquiredAt",
    "action",
    "startedAt",
    "executionId",
    "targets",
    "trigger",
    "queuedAt",
    "commit",
    "branch",
    "blockedBy",
    "kind",
    "resourceId",
    "createdAt",
)
