"""Tell people (and machines) how a deployment goes: render with shared.notifications, publish, count.

The state machine calls this step at its outcome states (NotifyStarted, NotifySuccess, NotifyFailure, NotifyRejected,
NotifySuperseded); each of those Catches every error and goes on to where it went before, so a notification that
cannot be sent never turns a success into a failure nor hides the original error.

What failed and what was rolled back: a failed wave ends in WaveFailed, whose cause is the first failed group's
cause followed by WAVE_OUTCOMES and two JSON arrays, the wave's groups and their outcomes (the ASL's Target* states).
That is the only way the outcomes leave the failed Map (a Map's Catch receives only an error and a cause);
`split_wave_outcomes` takes them back out, and the person reads the cause without them.

Metrics (namespace and service dimension of shared.observability): DeploymentStarted, DeploymentSucceeded,
DeploymentFailed, DeploymentRejected and RolledBack, one per execution, none for a dry run. Superseded is counted
by the lock step, which supersedes (lambdas/lock).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from notify.models import NotifyInput, NotifyOutput
from shared import notifications as render
from shared.config import DeployConfig
from shared.notifications import Deployment, Notification, TargetOutcome
from shared.observability import logger, metrics

# WaveFailed's CausePath: States.Format('{} | wave outcomes: {} {}', cause, groups JSON, outcomes JSON).
WAVE_OUTCOMES = " | wave outcomes: "


def split_wave_outcomes(cause: str | None) -> tuple[str | None, list[tuple[str, str]]]:
    """The person's cause and the failed wave's (group, outcome) pairs; no pairs when the cause carries none."""
    if not cause or WAVE_OUTCOMES not in cause:
        return cause, []
    head, _, tail = cause.rpartition(WAVE_OUTCOMES)
    decoder = json.JSONDecoder()
    try:
        groups, end = decoder.raw_decode(tail)
        outcomes, _ = decoder.raw_decode(tail[end:].lstrip())
    except ValueError:
        return cause, []
    if not isinstance(groups, list) or not isinstance(outcomes, list) or len(groups) != len(outcomes):
        return cause, []
    return head, [(str(g), str(o)) for g, o in zip(groups, outcomes, strict=True)]


def deployment(request: NotifyInput, config: DeployConfig) -> Deployment:
    asked = request.request
    stages = (
        tuple((s.name, tuple(t.auto_scaling_group_name for t in s.targets)) for s in request.stages)
        if request.stages
        else ()
    )
    return Deployment(
        application=config.application,
        execution_id=request.execution_id,
        action=asked.action if asked else None,
        trigger=asked.trigger if asked else None,
        commit=asked.commit if asked else None,
        branch=asked.branch if asked else None,
        pusher=asked.pusher if asked else None,
        ami_id=request.ami_id or (asked.ami_id if asked else None),
        dry_run=asked.dry_run if asked else False,
        stages=stages,
        started_at=request.started_at,
    )


def stage_of(group: str, d: Deployment, config: DeployConfig) -> str | None:
    return d.stage_of(group) or next(
        (s.name for s in config.stages if any(t.auto_scaling_group_name == group for t in s.targets)), None
    )


def notifications_for(request: NotifyInput, config: DeployConfig, now: datetime) -> list[Notification]:
    """What the event says, in publishing order: the outcome first, then RolledBack where groups were rolled back."""
    d = deployment(request, config)
    if request.event == "DeploymentStarted":
        return [render.deployment_started(d, now)]
    if request.event == "DeploymentRejected":
        return [render.deployment_rejected(d, request.error.model_dump() if request.error else None)]
    if request.event == "Superseded":
        return [render.superseded(d, request.superseded.Cause if request.superseded else None)]
    if request.event == "DeploymentSucceeded":
        done = [render.deployment_succeeded(d, now, request.outcome, request.prune)]
        if d.action == "rollback" and not d.dry_run and request.outcome in (None, "deployed"):
            groups = [TargetOutcome(g, "rolled-back", name, f"to {d.ami_id}") for name, gs in d.stages for g in gs]
            done.append(render.rolled_back(d, groups, "a rollback action"))
        return done
    error = request.error
    cause, pairs = split_wave_outcomes(error.Cause if error else None)
    targets = [TargetOutcome(group, outcome, stage_of(group, d, config)) for group, outcome in pairs]
    name = (error.Error if error else None) or "DeploymentFailed"
    done = [render.deployment_failed(d, now, {"Error": name, "Cause": cause}, targets)]
    if render.rolled_back_groups(targets) and not d.dry_run:
        done.append(render.rolled_back(d, targets, f"the deployment failed: {name}"))
    return done


def count(notification: Notification, dry_run: bool) -> None:
    """One metric per execution outcome (none for a dry run: it changes nothing)."""
    if dry_run:
        return
    if notification.event == "DeploymentStarted":
        metrics.add_metric(name="DeploymentStarted", unit=MetricUnit.Count, value=1)
    elif notification.event == "DeploymentSucceeded":
        metrics.add_metric(name="DeploymentSucceeded", unit=MetricUnit.Count, value=1)
    elif notification.event == "DeploymentFailed":
        metrics.add_metric(name="DeploymentFailed", unit=MetricUnit.Count, value=1)
    elif notification.event == "DeploymentRejected":
        metrics.add_metric(name="DeploymentRejected", unit=MetricUnit.Count, value=1)
    elif notification.event == "RolledBack":
        metrics.add_metric(name="RolledBack", unit=MetricUnit.Count, value=1)


def run(
    request: NotifyInput, config: DeployConfig, *, publisher: render.Publisher, now: Callable[[], datetime]
) -> NotifyOutput:
    published, ids = [], []
    dry_run = bool(request.request and request.request.dry_run)
    for notification in notifications_for(request, config, now()):
        ids.append(render.publish(notification, publisher))
        published.append(notification.event)
        count(notification, dry_run)
        logger.info("notification published", extra={"event": notification.event, "summary": notification.summary})
    return NotifyOutput(published=published, message_ids=ids)
