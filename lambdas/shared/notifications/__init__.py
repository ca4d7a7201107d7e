"""The notifications a person reads, and the same facts for machines: one renderer every publisher uses.

Events (the `event` field, also the SNS message attribute `event`, so a subscription filter policy can pick some):

- `DeploymentStarted`: the execution holds the locks of its targets and starts working (a dry run says so; a queued
  push is "started" when it leaves the queue, not when it was pushed).
- `DeploymentSucceeded`: every requested stage is deployed and the prune ran (or, for a base rebuild whose packages
  did not change, nothing needed rolling out).
- `DeploymentFailed`: the execution failed: what failed (the error name and cause), where (the stage of the failed
  wave), and what became of each group of that wave: rolled back, kept the new image, not changed, or needs a person
  (a rollback that did not complete). Stages and waves that completed before it keep the new image.
- `DeploymentRejected`: the request was refused before anything was locked or changed.
- `RolledBack`: groups were put back on the image they ran before, sent after the outcome notification of the same
  execution: when a failed execution rolled back at least one group (the workflow's own failure path, or
  finish_execution cleaning up an execution stopped outside it), and when a `rollback` action (a deployment of the
  previous image, on purpose) succeeded. Not sent for a dry run.
- `Superseded`: a queued push ended without deploying, because a newer push deploys the same targets (a success).
- `ApprovalRequested`: a stage waits for a person; says what, since and until when, the exact `make approve` and
  `make reject` commands and a console link. Never the task token (register_wait keeps it in the lock table).

Made of three modules: `content` (the deployment, each target's outcome, the text helpers), `events` (one function
per event) and `sns` (the message per protocol of one SNS Publish, and reading a published message back). This
package is their one name: `from shared import notifications as render`.
"""

from shared.notifications.content import (
    CAUSE_LIMIT,
    CONSOLE_DOMAINS,
    LIST_LIMIT,
    NEEDS_A_PERSON,
    OUTCOME_TEXT,
    Deployment,
    Notification,
    TargetOutcome,
    duration_text,
    execution_console_url,
    execution_name,
    iso,
)
from shared.notifications.events import (
    approval_requested,
    deployment_failed,
    deployment_rejected,
    deployment_started,
    deployment_succeeded,
    rolled_back,
    rolled_back_groups,
    superseded,
)
from shared.notifications.sns import (
    DESCRIPTION_LIMIT,
    SUBJECT_LIMIT,
    Publisher,
    chat_message,
    email_text,
    event_of,
    mail_subject,
    publish,
    sns_messages,
)

__all__ = [
    "CAUSE_LIMIT",
    "CONSOLE_DOMAINS",
    "DESCRIPTION_LIMIT",
    "LIST_LIMIT",
    "NEEDS_A_PERSON",
    "OUTCOME_TEXT",
    "SUBJECT_LIMIT",
    "Deployment",
    "Notification",
    "Publisher",
    "TargetOutcome",
    "approval_requested",
    "chat_message",
    "deployment_failed",
    "deployment_rejected",
    "deployment_started",
    "deployment_succeeded",
    "duration_text",
    "email_text",
    "event_of",
    "execution_console_url",
    "execution_name",
    "iso",
    "mail_subject",
    "publish",
    "rolled_back",
    "rolled_back_groups",
    "sns_messages",
    "superseded",
]
