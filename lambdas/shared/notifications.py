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

One publish carries a message per protocol (SNS Publish, MessageStructure=json: "a syntactically valid JSON object"
with "at least a top-level JSON key of "default" with a value that is a string", other top-level keys per protocol,
each falling back to "default" when absent; https://docs.aws.amazon.com/sns/latest/api/API_Publish.html):

- `email`: readable text (the subject is the SNS Subject: ASCII, at most 100 characters), then the JSON for machines;
- `default` (what https, sqs, lambda and email-json subscribers get): an Amazon Q Developer in chat applications
  (AWS Chatbot) custom notification, so a team routes the topic to Slack or Microsoft Teams without code. Its schema
  ("Custom notifications using Amazon Q Developer in chat applications", Event schema and Parameter details,
  https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html): `version` "1.0" and `source` "custom"
  (required), `id`, `content` {`textType` "client-markdown" (the only one supported), `title`, `description`,
  `nextSteps`, `keywords`}, `metadata` {`threadId`, `summary`, `eventType`, `relatedResources`,
  `additionalContext` (customer-provided keys with string values)}. The text uses only what reads the same in Slack
  and Teams (plain lines, `code`, bare links). Machines read `metadata.additionalContext`: `event`, `executionId`,
  `stage` (when there is one) and `detail`, the whole structured event as a JSON string (the schema names string
  values only, and the docs do not say that other top-level fields are accepted: none is added). The docs name no
  length limits: the description is kept under DESCRIPTION_LIMIT characters, the rest is in `detail` and the console.
  Every notification of one execution has the same `threadId` (its name): chat threads them together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

SUBJECT_LIMIT = 100  # SNS Publish: Subject, "must be less than 100 characters" (moto enforces 100)
DESCRIPTION_LIMIT = 3500  # no limit documented for the custom notification's description: a conservative bound
CAUSE_LIMIT = 1000  # of an error's cause, in the text a person reads (the whole cause is in `detail`)
LIST_LIMIT = 20  # groups listed by name per outcome in the text (all are in `detail`)

# The AWS Management Console of each partition. "AWS Management Console endpoints and quotas"
# (https://docs.aws.amazon.com/general/latest/gr/mgmt-console.html): https://<region>.console.aws.amazon.com;
# China: console.amazonaws.cn ("Getting Started with Amazon Web Services in China", the domain amazonaws.cn);
# GovCloud: console.amazonaws-us-gov.com ("Accessing the AWS GovCloud (US) Regions"). Other partitions: the docs
# name no console domain, so no link is given.
CONSOLE_DOMAINS = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}

# What each target outcome (the ASL's Target* states, finish_execution's cleanup) means for a person.
OUTCOME_TEXT = {
    "rolled-back": "rolled back to the image it ran before",
    "rollback-failed": "the rollback did not complete: check its group and launch template default by hand",
    "deployed": "kept the new image (its own rollout succeeded)",
    "failed": "not changed (its launch template default was restored before any refresh)",
    "untouched": "not changed by this execution",
    "check-by-hand": "blue-green: look for a green group of this execution (tag immutable-ami:execution)",
}
NEEDS_A_PERSON = frozenset({"rollback-failed", "check-by-hand"})


class Publisher(Protocol):
    """shared.aws.notifications.Notifications: one SNS Publish with a message per protocol."""

    def publish(self, subject: str, messages: Mapping[str, str], attributes: Mapping[str, str]) -> str: ...


@dataclass(frozen=True)
class TargetOutcome:
    group: str
    outcome: str  # a key of OUTCOME_TEXT (an unknown one is shown as is)
    stage: str | None = None
    detail: str | None = None  # what was done (finish_execution's actions), or why


@dataclass(frozen=True)
class Deployment:
    """What every deployment notification says about the run: who asked for what, where, since when."""

    application: str
    execution_id: str
    action: str | None = None
    trigger: str | None = None
    commit: str | None = None
    branch: str | None = None
    pusher: str | None = None
    ami_id: str | None = None
    dry_run: bool = False
    stages: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (stage, its groups), in configured order
    started_at: datetime | None = None

    def stage_of(self, group: str) -> str | None:
        return next((name for name, groups in self.stages if group in groups), None)

    def fields(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "executionId": self.execution_id,
            "action": self.action,
            "trigger": self.trigger,
            "commit": self.commit,
            "branch": self.branch,
            "pusher": self.pusher,
            "amiId": self.ami_id,
            "dryRun": self.dry_run,
            "stages": [{"name": name, "groups": list(groups)} for name, groups in self.stages],
            "startedAt": iso(self.started_at) if self.started_at else None,
        }


@dataclass(frozen=True)
class Notification:
    event: str
    execution_id: str
    subject: str  # the mail's subject (made ASCII and at most SUBJECT_LIMIT characters when published)
    title: str  # the chat title
    summary: str  # one line
    body: tuple[str, ...]  # lines for a person
    fields: Mapping[str, Any]  # the structured event for machines (event and executionId included)
    next_steps: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    stage: str | None = None
    extra_id: str = ""  # makes `id` unique where one execution sends the event more than once (per stage)
    related: tuple[str, ...] = field(default=())


# -- small helpers ---------------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")


def execution_name(execution_arn: str) -> str:
    return execution_arn.rsplit(":", 1)[-1]


def execution_console_url(execution_arn: str) -> str | None:
    """The Step Functions console page of the execution, in its partition's console; None when the ARN is not an
    execution ARN or its partition has no documented console domain."""
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[0] != "arn" or parts[2] != "states" or parts[5] != "execution" or not parts[3]:
        return None
    domain = CONSOLE_DOMAINS.get(parts[1])
    if domain is None:
        return None
    region = parts[3]
    return f"https://{domain.format(region=region)}/states/home?region={region}#/v2/executions/details/{execution_arn}"


def duration_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _what(d: Deployment) -> str:
    """'deploy of commit 3f2c1e9 (branch main)', 'rollback to ami-…', 'rebuild-base'."""
    action = d.action or "deployment"
    if d.commit:
        what = f"{action} of commit {d.commit[:12]}" + (f" (branch {d.branch})" if d.branch else "")
    elif d.ami_id:
        what = f"{action} of {d.ami_id}"
    else:
        what = action
    return what


def _request_lines(d: Deployment, now: datetime | None) -> list[str]:
    lines = [f"Request: {_what(d)}" + (f", triggered by {d.trigger}" if d.trigger else "")]
    if d.pusher:
        lines[0] += f" (pushed by {d.pusher})"
    if d.ami_id and d.commit:
        lines.append(f"Image: {d.ami_id}")
    if d.stages:
        lines.append(
            "Stages: " + "; ".join(f"{name} ({', '.join(groups) or 'no groups'})" for name, groups in d.stages)
        )
    if d.started_at is not None:
        since = f"Started: {iso(d.started_at)}"
        if now is not None:
            since += f" ({duration_text((now - d.started_at).total_seconds())} ago)"
        lines.append(since)
    lines.append(f"Execution: {d.execution_id}")
    return lines


def _open_execution(execution_id: str) -> tuple[str, ...]:
    url = execution_console_url(execution_id)
    return (f"Open the execution: {url}",) if url else ()


def _dry(d: Deployment) -> str:
    return "Dry run: " if d.dry_run else ""


def _stage_names(d: Deployment) -> str:
    return ", ".join(name for name, _ in d.stages) or "no stage"


# -- the events -------------------------------------------------------------------------------------------------


def deployment_started(d: Deployment, now: datetime | None = None) -> Notification:
    dry = " (dry run: nothing will change; it reports what it would do)" if d.dry_run else ""
    summary = f"{_dry(d)}{d.application}: {_what(d)} started for {_stage_names(d)}{dry}"
    return Notification(
        event="DeploymentStarted",
        execution_id=d.execution_id,
        subject=f"[{d.application}] {_dry(d)}Deployment started: {_stage_names(d)}",
        title=f"🚀 {_dry(d)}{d.application}: deployment started",
        summary=summary,
        body=(summary, "", *_request_lines(d, None)),
        fields={"event": "DeploymentStarted", **d.fields()},
        next_steps=_open_execution(d.execution_id),
        keywords=(d.application, *(name for name, _ in d.stages)),
    )


def deployment_succeeded(
    d: Deployment, now: datetime | None = None, outcome: str | None = None, prune: Mapping[str, Any] | None = None
) -> Notification:
    took = f" in {duration_text((now - d.started_at).total_seconds())}" if now and d.started_at else ""
    unchanged = bool(outcome) and outcome != "deployed"
    if unchanged:
        done = f"{outcome}"
    elif d.dry_run:
        done = f"would deploy to {_stage_names(d)}"
    else:
        done = f"deployed to {_stage_names(d)}"
    summary = f"{_dry(d)}{d.application}: {_what(d)} {done}{took}"
    lines = [summary, "", *_request_lines(d, now)]
    progress = (prune or {}).get("progress") or {}
    if progress:
        verb = "Would prune" if d.dry_run else "Pruned"
        lines.append(
            f"{verb}: {progress.get('imagesPruned', 0)} AMI(s), {progress.get('snapshotsDeleted', 0)} snapshot(s)"
            + (f", {progress['failures']} failure(s)" if progress.get("failures") else "")
        )
    restorable = (prune or {}).get("restorable")
    if restorable and not d.dry_run:
        lines.append(f"Pruned images: {restorable}")
    return Notification(
        event="DeploymentSucceeded",
        execution_id=d.execution_id,
        subject=f"[{d.application}] {_dry(d)}Deployment succeeded: {_stage_names(d)}",
        title=f"✅ {_dry(d)}{d.application}: deployment succeeded",
        summary=summary,
        body=tuple(lines),
        fields={
            "event": "DeploymentSucceeded",
            **d.fields(),
            "outcome": outcome,
            "prune": dict(prune) if prune else None,
            "finishedAt": iso(now) if now else None,
        },
        next_steps=_open_execution(d.execution_id),
        keywords=(d.application, *(name for name, _ in d.stages)),
    )


def _outcome_lines(targets: Sequence[TargetOutcome]) -> list[str]:
    """What became of each group, grouped by outcome, rolled back first."""
    lines: list[str] = []
    order = ["rolled-back", "rollback-failed", "check-by-hand", "deployed", "failed", "untouched"]
    outcomes = sorted({t.outcome for t in targets}, key=lambda o: (order.index(o) if o in order else len(order), o))
    for outcome in outcomes:
        mine = [t for t in targets if t.outcome == outcome]
        lines.append(f"{OUTCOME_TEXT.get(outcome, outcome).capitalize()}:")
        for t in mine[:LIST_LIMIT]:
            where = f" (stage {t.stage})" if t.stage else ""
            lines.append(f"  - `{t.group}`{where}" + (f": {_short(t.detail, 300)}" if t.detail else ""))
        if len(mine) > LIST_LIMIT:
            lines.append(f"  - and {len(mine) - LIST_LIMIT} more (see detail)")
    return lines


def rolled_back_groups(targets: Sequence[TargetOutcome]) -> list[TargetOutcome]:
    return [t for t in targets if t.outcome == "rolled-back"]


def deployment_failed(
    d: Deployment,
    now: datetime | None,
    error: Mapping[str, Any] | None,
    targets: Sequence[TargetOutcome] = (),
    ended: str | None = None,
) -> Notification:
    """`error`: {"Error", "Cause"} as Step Functions reports it; `targets`: what became of each group it names
    (the failed wave's groups, or finish_execution's cleanup); `ended`: how the execution ended when not through its
    own failure path (finish_execution: "ABORTED in WaitForRefreshEvent")."""
    name = str((error or {}).get("Error") or "DeploymentFailed")
    cause = str((error or {}).get("Cause") or "no cause was reported")
    stages = sorted({t.stage for t in targets if t.stage and t.outcome != "untouched"})
    where = f" in {', '.join(stages)}" if stages else ""
    summary = f"{_dry(d)}{d.application}: {_what(d)} failed{where}: {name}"
    rolled = rolled_back_groups(targets)
    lines = [summary, "", f"What failed: {name}: {_short(cause, CAUSE_LIMIT)}"]
    if ended:
        lines.append(f"The execution ended {ended}, outside its own failure path; finish_execution cleaned up.")
    lines.append("")
    if rolled:
        lines.append(f"What was rolled back: {len(rolled)} group(s).")
    else:
        lines.append("What was rolled back: nothing (no group of the failed step had changed).")
    lines.extend(_outcome_lines(targets))
    if any(t.outcome in NEEDS_A_PERSON for t in targets):
        lines.append("Some groups need a person: see above, and the README's runbook (RollbackFailed).")
    if not ended:
        lines.append("Stages and waves that completed before the failure keep the new image.")
    lines += ["", *_request_lines(d, now)]
    return Notification(
        event="DeploymentFailed",
        execution_id=d.execution_id,
        subject=f"[{d.application}] {_dry(d)}Deployment failed{where}: {name}",
        title=f"❌ {_dry(d)}{d.application}: deployment failed{where}",
        summary=summary,
        body=tuple(lines),
        fields={
            "event": "DeploymentFailed",
            **d.fields(),
            "error": {"Error": name, "Cause": cause},
            "targets": [_target_fields(t) for t in targets],
            "rolledBack": [t.group for t in rolled],
            "ended": ended,
        },
        next_steps=(*_open_execution(d.execution_id), "Fix the cause, then push again or run `make start ...`"),
        keywords=(d.application, name, *stages),
    )


def _target_fields(t: TargetOutcome) -> dict[str, Any]:
    return {"group": t.group, "stage": t.stage, "outcome": t.outcome, "detail": t.detail}


def rolled_back(d: Deployment, targets: Sequence[TargetOutcome], why: str) -> Notification:
    """`why`: "the deployment failed: RefreshFailed", "a rollback action". Only the rolled-back groups are named."""
    groups = rolled_back_groups(targets)
    summary = f"{d.application}: {len(groups)} group(s) rolled back ({why})"
    lines = [summary, "", *_outcome_lines(groups), "", *_request_lines(d, None)]
    return Notification(
        event="RolledBack",
        execution_id=d.execution_id,
        subject=f"[{d.application}] Rolled back: {', '.join(t.group for t in groups)}",
        title=f"↩️ {d.application}: rolled back",
        summary=summary,
        body=tuple(lines),
        fields={"event": "RolledBack", **d.fields(), "why": why, "targets": [_target_fields(t) for t in groups]},
        next_steps=_open_execution(d.execution_id),
        keywords=(d.application, "RolledBack"),
    )


def superseded(d: Deployment, cause: str | None) -> Notification:
    summary = f"{d.application}: queued {_what(d)} superseded: a newer push deploys these targets"
    lines = [summary, "", f"Why: {_short(cause or 'a newer push deploys the same targets', CAUSE_LIMIT)}"]
    lines += ["Nothing was changed by this execution.", "", *_request_lines(d, None)]
    return Notification(
        event="Superseded",
        execution_id=d.execution_id,
        subject=f"[{d.application}] Deployment superseded by a newer push",
        title=f"⏭️ {d.application}: superseded by a newer push",
        summary=summary,
        body=tuple(lines),
        fields={"event": "Superseded", **d.fields(), "cause": cause},
        next_steps=_open_execution(d.execution_id),
        keywords=(d.application, "Superseded"),
    )


def deployment_rejected(d: Deployment, error: Mapping[str, Any] | None) -> Notification:
    name = str((error or {}).get("Error") or "InvalidInput")
    cause = str((error or {}).get("Cause") or "no cause was reported")
    summary = f"{d.application}: deployment request rejected: {name}; nothing was locked or changed"
    return Notification(
        event="DeploymentRejected",
        execution_id=d.execution_id,
        subject=f"[{d.application}] Deployment rejected: {name}",
        title=f"⛔ {d.application}: deployment request rejected",
        summary=summary,
        body=(summary, "", f"Why: {_short(cause, CAUSE_LIMIT)}", "", f"Execution: {d.execution_id}"),
        fields={"event": "DeploymentRejected", **d.fields(), "error": {"Error": name, "Cause": cause}},
        next_steps=(*_open_execution(d.execution_id), "Correct the input (README, Triggers and manual runs)"),
        keywords=(d.application, name),
    )


def approval_requested(d: Deployment, stage: str, fields: Mapping[str, Any]) -> Notification:
    """`fields`: register_wait's ApprovalMessage (requestedAt, expiresAt, approve, reject, images...)."""
    summary = f"{d.application}: stage {stage} waits for approval of {_what(d)}"
    lines = [
        summary,
        "",
        f"Waiting since {fields.get('requestedAt')}; unanswered by {fields.get('expiresAt')} "
        f"({fields.get('timeoutHours')} h), the deployment fails ApprovalExpired and {stage} is not changed.",
        f"Approve: `{fields.get('approve')}`",
        f"Reject:  `{fields.get('reject')}`",
        "Answering needs the approvers' managed policy (stack output ApproverPolicyArn).",
    ]
    images = fields.get("images") or []
    if images:
        lines.append("Images: " + ", ".join(f"{i.get('amiId')} (commit {str(i.get('commit'))[:12]})" for i in images))
    lines += ["", *_request_lines(d, None)]
    return Notification(
        event="ApprovalRequested",
        execution_id=d.execution_id,
        subject=f"[{d.application}] Approval needed: stage {stage}",
        title=f"✋ {d.application}: approval needed for {stage}",
        summary=summary,
        body=tuple(lines),
        fields={**d.fields(), **fields, "event": "ApprovalRequested", "stage": stage},
        next_steps=(
            f"Approve: `{fields.get('approve')}`",
            f"Reject: `{fields.get('reject')}`",
            *_open_execution(d.execution_id),
        ),
        keywords=(d.application, stage, "approval"),
        stage=stage,
        extra_id=stage,
    )


# -- rendering --------------------------------------------------------------------------------------------------


def _refuse_task_tokens(value: Any, path: str = "") -> None:
    """A task token in a message lets whoever reads it answer the task (approve a stage): never publish one."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() == "tasktoken":
                raise ValueError(f"a notification must not carry a task token ({path}{key})")
            _refuse_task_tokens(item, f"{path}{key}.")
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_task_tokens(item, path)


def mail_subject(notification: Notification) -> str:
    """SNS Subject: ASCII printable, no line break, at most SUBJECT_LIMIT characters."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in notification.subject)
    return _short(text, SUBJECT_LIMIT).replace("…", ".")[:SUBJECT_LIMIT]


def email_text(notification: Notification) -> str:
    lines = [*notification.body]
    if notification.next_steps:
        lines += ["", "Next steps:", *(f"- {step}" for step in notification.next_steps)]
    lines += ["", "For machines (the same event as JSON):", json.dumps(notification.fields, indent=2, sort_keys=True)]
    return "\n".join(lines) + "\n"


def chat_message(notification: Notification) -> dict[str, Any]:
    """The Amazon Q Developer in chat applications custom notification (schema in the module docstring)."""
    description = "\n".join(notification.body[1:]).strip() if len(notification.body) > 1 else notification.summary
    context = {
        "event": notification.event,
        "executionId": notification.execution_id,
        "detail": json.dumps(notification.fields, sort_keys=True, separators=(",", ":"), default=str),
    }
    if notification.stage:
        context["stage"] = notification.stage
    name = execution_name(notification.execution_id)
    return {
        "version": "1.0",
        "source": "custom",
        "id": ":".join(p for p in (notification.event, name, notification.extra_id) if p),
        "content": {
            "textType": "client-markdown",
            "title": notification.title,
            "description": _short(description, DESCRIPTION_LIMIT),
            "nextSteps": list(notification.next_steps),
            "keywords": [k for k in dict.fromkeys(notification.keywords) if k],
        },
        "metadata": {
            "threadId": name,
            "summary": notification.summary,
            "eventType": notification.event,
            "relatedResources": [notification.execution_id, *notification.related],
            "additionalContext": context,
        },
    }


def sns_messages(notification: Notification) -> dict[str, str]:
    """The per-protocol messages of one publish (MessageStructure=json): chat JSON by default, text for email."""
    _refuse_task_tokens(notification.fields)
    return {"default": json.dumps(chat_message(notification), default=str), "email": email_text(notification)}


def publish(notification: Notification, publisher: Publisher) -> str:
    return publisher.publish(mail_subject(notification), sns_messages(notification), {"event": notification.event})


def event_of(message: str) -> dict[str, Any]:
    """The structured event of a published message as a machine reads it: a chat notification's `detail`; any other
    JSON message (the EventBridge rules' alerts) as it is."""
    body = json.loads(message)
    context = body.get("metadata", {}).get("additionalContext") if isinstance(body, dict) else None
    if body.get("source") == "custom" and isinstance(context, dict) and "detail" in context:
        detail: dict[str, Any] = json.loads(context["detail"])
        return detail
    return dict(body)
