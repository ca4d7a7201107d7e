"""What a notification is made of: the deployment it speaks of, each target's outcome, and the text helpers the
events share (shared.notifications.events builds them, shared.notifications.sns renders them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def what(d: Deployment) -> str:
    """'deploy of commit 3f2c1e9 (branch main)', 'rollback to ami-…', 'rebuild-base'."""
    action = d.action or "deployment"
    if d.commit:
        what = f"{action} of commit {d.commit[:12]}" + (f" (branch {d.branch})" if d.branch else "")
    elif d.ami_id:
        what = f"{action} of {d.ami_id}"
    else:
        what = action
    return what


def request_lines(d: Deployment, now: datetime | None) -> list[str]:
    lines = [f"Request: {what(d)}" + (f", triggered by {d.trigger}" if d.trigger else "")]
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


def open_execution(execution_id: str) -> tuple[str, ...]:
    url = execution_console_url(execution_id)
    return (f"Open the execution: {url}",) if url else ()


def dry_prefix(d: Deployment) -> str:
    return "Dry run: " if d.dry_run else ""


def stage_names(d: Deployment) -> str:
    return ", ".join(name for name, _ in d.stages) or "no stage"
