"""The events: one function per notification, from the deployment's facts to the text and fields it carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.notifications.content import (
    CAUSE_LIMIT,
    LIST_LIMIT,
    NEEDS_A_PERSON,
    OUTCOME_TEXT,
    Deployment,
    Notification,
    TargetOutcome,
    dry_prefix,
    duration_text,
    iso,
    open_execution,
    request_lines,
    short,
    stage_names,
    what,
)


def deployment_started(d: Deployment, now: datetime | None = None) -> Notification:
    dry_note = " (dry run: nothing will change; it reports what it would do)" if d.dry_run else ""
    summary = f"{dry_prefix(d)}{d.application}: {what(d)} started for {stage_names(d)}{dry_note}"
    return Notification(
        event="DeploymentStarted",
        execution_id=d.execution_id,
        subject=f"[{d.application}] {dry_prefix(d)}Deployment started: {stage_names(d)}",
        title=f"🚀 {dry_prefix(d)}{d.application}: deployment started",
        summary=summary,
        body=(summary, "", *request_lines(d, None)),
        fields={"event": "DeploymentStarted", **d.fields()},
        next_steps=open_execution(d.execution_id),
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
        done = f"would deploy to {stage_names(d)}"
    else:
        done = f"deployed to {stage_names(d)}"
    summary = f"{dry_prefix(d)}{d.application}: {what(d)} {done}{took}"
    lines = [summary, "", *request_lines(d, now)]
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
        subject=f"[{d.application}] {dry_prefix(d)}Deployment succeeded: {stage_names(d)}",
        title=f"✅ {dry_prefix(d)}{d.application}: deployment succeeded",
        summary=summary,
        body=tuple(lines),
        fields={
            "event": "DeploymentSucceeded",
            **d.fields(),
            "outcome": outcome,
            "prune": dict(prune) if prune else None,
            "finishedAt": iso(now) if now else None,
        },
        next_steps=open_execution(d.execution_id),
        keywords=(d.application, *(name for name, _ in d.stages)),
    )


def outcome_lines(targets: Sequence[TargetOutcome]) -> list[str]:
    """What became of each group, grouped by outcome, rolled back first."""
    lines: list[str] = []
    order = ["rolled-back", "rollback-failed", "check-by-hand", "deployed", "failed", "untouched"]
    outcomes = sorted({t.outcome for t in targets}, key=lambda o: (order.index(o) if o in order else len(order), o))
    for outcome in outcomes:
        mine = [t for t in targets if t.outcome == outcome]
        lines.append(f"{OUTCOME_TEXT.get(outcome, outcome).capitalize()}:")
        for t in mine[:LIST_LIMIT]:
            where = f" (stage {t.stage})" if t.stage else ""
            lines.append(f"  - `{t.group}`{where}" + (f": {short(t.detail, 300)}" if t.detail else ""))
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
    summary = f"{dry_prefix(d)}{d.application}: {what(d)} failed{where}: {name}"
    rolled = rolled_back_groups(targets)
    lines = [summary, "", f"What failed: {name}: {short(cause, CAUSE_LIMIT)}"]
    if ended:
        lines.append(f"The execution ended {ended}, outside its own failure path; finish_execution cleaned up.")
    lines.append("")
    if rolled:
        lines.append(f"What was rolled back: {len(rolled)} group(s).")
    else:
        lines.append("What was rolled back: nothing (no group of the failed step had changed).")
    lines.extend(outcome_lines(targets))
    if any(t.outcome in NEEDS_A_PERSON for t in targets):
        lines.append("Some groups need a person: see above, and the README's runbook (RollbackFailed).")
    if not ended:
        lines.append("Stages and waves that completed before the failure keep the new image.")
    lines += ["", *request_lines(d, now)]
    return Notification(
        event="DeploymentFailed",
        execution_id=d.execution_id,
        subject=f"[{d.application}] {dry_prefix(d)}Deployment failed{where}: {name}",
        title=f"❌ {dry_prefix(d)}{d.application}: deployment failed{where}",
        summary=summary,
        body=tuple(lines),
        fields={
            "event": "DeploymentFailed",
            **d.fields(),
            "error": {"Error": name, "Cause": cause},
            "targets": [target_fields(t) for t in targets],
            "rolledBack": [t.group for t in rolled],
            "ended": ended,
        },
        next_steps=(*open_execution(d.execution_id), "Fix the cause, then push again or run `make start ...`"),
        keywords=(d.application, name, *stages),
    )


def target_fields(t: TargetOutcome) -> dict[str, Any]:
    return {"group": t.group, "stage": t.stage, "outcome": t.outcome, "detail": t.detail}


def rolled_back(d: Deployment, targets: Sequence[TargetOutcome], why: str) -> Notification:
    """`why`: "the deployment failed: RefreshFailed", "a rollback action". Only the rolled-back groups are named."""
    groups = rolled_back_groups(targets)
    summary = f"{d.application}: {len(groups)} group(s) rolled back ({why})"
    lines = [summary, "", *outcome_lines(groups), "", *request_lines(d, None)]
    return Notification(
        event="RolledBack",
        execution_id=d.execution_id,
        subject=f"[{d.application}] Rolled back: {', '.join(t.group for t in groups)}",
        title=f"↩️ {d.application}: rolled back",
        summary=summary,
        body=tuple(lines),
        fields={"event": "RolledBack", **d.fields(), "why": why, "targets": [target_fields(t) for t in groups]},
        next_steps=open_execution(d.execution_id),
        keywords=(d.application, "RolledBack"),
    )


def superseded(d: Deployment, cause: str | None) -> Notification:
    summary = f"{d.application}: queued {what(d)} superseded: a newer push deploys these targets"
    lines = [summary, "", f"Why: {short(cause or 'a newer push deploys the same targets', CAUSE_LIMIT)}"]
    lines += ["Nothing was changed by this execution.", "", *request_lines(d, None)]
    return Notification(
        event="Superseded",
        execution_id=d.execution_id,
        subject=f"[{d.application}] Deployment superseded by a newer push",
        title=f"⏭️ {d.application}: superseded by a newer push",
        summary=summary,
        body=tuple(lines),
        fields={"event": "Superseded", **d.fields(), "cause": cause},
        next_steps=open_execution(d.execution_id),
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
        body=(summary, "", f"Why: {short(cause, CAUSE_LIMIT)}", "", f"Execution: {d.execution_id}"),
        fields={"event": "DeploymentRejected", **d.fields(), "error": {"Error": name, "Cause": cause}},
        next_steps=(*open_execution(d.execution_id), "Correct the input (README, Triggers and manual runs)"),
        keywords=(d.application, name),
    )


def approval_requested(d: Deployment, stage: str, fields: Mapping[str, Any]) -> Notification:
    """`fields`: register_wait's ApprovalMessage (requestedAt, expiresAt, approve, reject, images...)."""
    summary = f"{d.application}: stage {stage} waits for approval of {what(d)}"
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
    lines += ["", *request_lines(d, None)]
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
            *open_execution(d.execution_id),
        ),
        keywords=(d.application, stage, "approval"),
        stage=stage,
        extra_id=stage,
    )
