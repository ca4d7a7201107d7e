"""An execution that ended outside its own failure path still ends like any failure: rolled back, unlocked, told.

Step Functions runs no Catch when an execution is stopped (ABORTED), passes its TimeoutSeconds (TIMED_OUT) or fails
at the 25,000-event history quota ("Quotas related to state machine executions"). EventBridge then still delivers
"Step Functions Execution Status Change" (best effort, EventBridge events reference) to this step, which:

1. Reads where the execution ended (GetExecutionHistory, newest first). One that failed in its own final states
   (HANDLED_ENDS) already rolled back, released its locks and sent DeploymentFailed: nothing more is done.
2. Otherwise, for every configured rolling target whose launch template default is a version this execution
   published (the marker in its description): a refresh to it that ended Successful is a finished deployment and
   stays; anything else is rolled back by the rollback step's own logic (RollbackInstanceRefresh, else cancel and
   refresh back; the previous default restored). Blue-green targets are reported for a person to check: their
   green groups are discarded only by DiscardGreen, which needs the execution's state.
3. Releases every lock this execution still holds (and its queue item, if it was stopped while queued), wakes the
   deployments queued for the released targets (lambdas/lock `wake_queued`: the newest queued push runs next),
   and publishes one DeploymentFailed notification.
Every action is idempotent: EventBridge may deliver the event twice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from lock import logic as lock
from publish_launch_template_version.logic import own_version, replaced_default
from rollback import logic as rollback
from rollback.models import RollbackInput
from start_instance_refresh.logic import rolls_out

from finish_execution.models import ExecutionStatusDetail, ExecutionStatusEvent, FinishExecutionOutput, TargetCleanup
from shared import notifications as render
from shared.aws.launch_templates import TemplateVersion
from shared.config import DeployConfig, Target
from shared.errors import InvalidInput
from shared.observability import logger, metrics

# The state machine's final states on its own failure path: the execution cleaned up before it entered them.
HANDLED_ENDS = frozenset({"DeploymentFailed", "Rejected"})
UNHANDLED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


class History(Protocol):
    def last_state(self, execution: str, events: int = 20) -> str | None: ...


class Locks(Protocol):
    def delete_if_held_by(self, target: str, holder: str) -> bool: ...


class Queue(Protocol):
    """The lock table's queue, and the tokens that wake it (lambdas/lock)."""

    @property
    def store(self) -> lock.QueueStore: ...

    @property
    def tokens(self) -> lock.Tokens: ...


class Templates(rollback.DefaultVersionStore, Protocol):
    def list_versions(self, template_id: str) -> list[TemplateVersion]: ...


def _clean_rolling(
    execution: str,
    target: Target,
    config: DeployConfig,
    autoscaling: rollback.RollbackAutoScaling,
    templates: Templates,
) -> TargetCleanup:
    group = target.auto_scaling_group_name
    versions = templates.list_versions(target.launch_template_id)
    ours = own_version(execution, target.launch_template_id, versions)
    if ours is None or not ours.is_default:
        return TargetCleanup(auto_scaling_group_name=group, outcome="untouched", actions=[])
    refreshes = [
        r for r in autoscaling.describe_refreshes(group) if rolls_out(r, target.launch_template_id, ours.number)
    ]
    if refreshes and refreshes[0].status == "Successful":
        return TargetCleanup(
            auto_scaling_group_name=group,
            outcome="deployed",
            actions=[f"version {ours.number} was rolled out (refresh {refreshes[0].refresh_id} Successful): kept"],
        )
    done = rollback.run(
        RollbackInput(
            execution_id=execution,
            target=target,
            instance_refresh_id=refreshes[0].refresh_id if refreshes else None,
            previous_version=replaced_default(ours, versions),
            new_version=ours.number,
        ),
        config,
        autoscaling=autoscaling,
        launch_templates=templates,
    )
    return TargetCleanup(auto_scaling_group_name=group, outcome="rolled-back", actions=done.actions)


def notify(
    detail: ExecutionStatusDetail,
    ended_in: str | None,
    config: DeployConfig,
    cleaned: list[TargetCleanup],
    released: list[str],
    woken: list[str],
    publisher: render.Publisher,
) -> None:
    """DeploymentFailed (what ended it, what became of each target), then RolledBack when a target was rolled back;
    the metrics the workflow's own notify step counts (shared.notifications)."""
    error = detail.error or f"Execution{detail.status.title().replace('_', '')}"
    stage_of = {t.auto_scaling_group_name: s.name for s in config.stages for t in s.targets}
    deployment = render.Deployment(
        application=config.application,
        execution_id=detail.execution_arn,
        stages=tuple((s.name, tuple(t.auto_scaling_group_name for t in s.targets)) for s in config.stages),
    )
    targets = [
        render.TargetOutcome(
            c.auto_scaling_group_name, c.outcome, stage_of.get(c.auto_scaling_group_name), "; ".join(c.actions) or None
        )
        for c in cleaned
    ]
    failed = render.deployment_failed(
        deployment,
        None,
        {"Error": error, "Cause": detail.cause or f"the execution ended {detail.status} in {ended_in}"},
        targets,
        ended=f"{detail.status} in {ended_in or 'an unknown state'}",
    )
    extra = {"locksReleased": released, "queuedWoken": woken, "status": detail.status}
    render.publish(replace(failed, fields={**failed.fields, **extra}), publisher)
    metrics.add_metric(name="DeploymentFailed", unit=MetricUnit.Count, value=1)
    if render.rolled_back_groups(targets):
        render.publish(render.rolled_back(deployment, targets, f"the execution ended {detail.status}"), publisher)
        metrics.add_metric(name="RolledBack", unit=MetricUnit.Count, value=1)


def run(
    event: ExecutionStatusEvent,
    state_machine_arn: str,
    config: DeployConfig,
    *,
    history: History,
    locks: Locks,
    autoscaling: rollback.RollbackAutoScaling,
    templates: Templates,
    notifier: render.Publisher,
    queue: Queue | None = None,
) -> FinishExecutionOutput:
    detail = event.detail
    if detail.state_machine_arn != state_machine_arn or detail.status not in UNHANDLED_STATUSES:
        raise InvalidInput(
            f"not an end of this workflow's executions: {detail.status} of {detail.state_machine_arn} "
            "(the EventBridge rule selects only FAILED, TIMED_OUT and ABORTED of this state machine)"
        )
    execution = detail.execution_arn
    ended_in = history.last_state(execution)
    if detail.status == "FAILED" and ended_in in HANDLED_ENDS:
        logger.info("the execution ended through its own failure path", extra={"state": ended_in})
        return FinishExecutionOutput(
            execution_arn=execution, status=detail.status, handled=True, locks_released=[], targets=[], notified=False
        )
    logger.warning("the execution ended outside its failure path", extra={"status": detail.status, "state": ended_in})
    cleaned: list[TargetCleanup] = []
    for stage in config.stages:
        for target in stage.targets:
            if stage.strategy == "blue-green":
                cleaned.append(
                    TargetCleanup(
                        auto_scaling_group_name=target.auto_scaling_group_name,
                        outcome="check-by-hand",
                        actions=["blue-green: look for a green group of this execution (tag immutable-ami:execution)"],
                    )
                )
                continue
            cleaned.append(_clean_rolling(execution, target, config, autoscaling, templates))
    released = [
        t.auto_scaling_group_name
        for t in config.all_targets()
        if locks.delete_if_held_by(t.auto_scaling_group_name, execution)
    ]
    woken = lock.wake_queued(released, execution, queue.store, queue.tokens) if queue is not None else []
    notify(detail, ended_in, config, cleaned, released, woken, notifier)
    return FinishExecutionOutput(
        execution_arn=execution,
        status=detail.status,
        handled=False,
        locks_released=released,
        queued_woken=woken,
        targets=cleaned,
        notified=True,
    )
