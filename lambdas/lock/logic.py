"""Acquire or release the per-target locks of a deployment (safety rule 4: one deployment per target).

Acquire is all-or-nothing: every target of the requested stages, in sorted order (two executions never
wait on each other in opposite orders), each with a conditional write that succeeds when the lock is free,
expired, or already this execution's (a retried acquire refreshes its expiry). When another live execution
holds one, what this call newly took is released again and the answer is acquired=false with that
execution and its expiry: the state machine waits and asks again, within its bound, and then fails with
DeploymentInProgress. Release deletes only this execution's locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit
from lock.models import LockInput, LockOutput

from shared.aws.lock_table import LockItem, PutOutcome
from shared.config import DeployConfig
from shared.errors import InvalidInput
from shared.observability import logger, metrics

Clock = Callable[[], int]  # epoch seconds


class LockStore(Protocol):
    def put_if_free(self, target: str, *, holder: str, now: int, expires_at: int) -> PutOutcome: ...

    def get(self, target: str) -> LockItem | None: ...

    def delete_if_held_by(self, target: str, holder: str) -> bool: ...


def require_configured_stages(request: LockInput, config: DeployConfig) -> None:
    """Only configured stages with their configured targets may be locked: a typo must not lock a stranger."""
    problems = []
    for index, stage in enumerate(request.stages):
        configured = config.stage(stage.name)
        if configured is None:
            problems.append(f"stages[{index}].name: {stage.name!r} is not a configured stage")
            continue
        for t_index, target in enumerate(stage.targets):
            if target not in configured.targets:
                problems.append(
                    f"stages[{index}].targets[{t_index}]: {target.auto_scaling_group_name} / "
                    f"{target.launch_template_id} is not a configured target of stage {stage.name!r}"
                )
    if problems:
        raise InvalidInput("; ".join(problems))


def is_free_for(item: LockItem | None, holder: str, now: int) -> bool:
    """The same rule as the conditional write: absent, expired, or already `holder`'s."""
    return item is None or item.expires_at < now or item.holder == holder


def _output(request: LockInput, targets: list[str], **fields: object) -> LockOutput:
    values: dict[str, object] = {
        "action": request.action,
        "acquired": False,
        "released": False,
        "targets": targets,
        "holder": None,
        "held_until": None,
        "attempt": request.attempt,
    }
    values.update(fields)
    return LockOutput.model_validate(values)


def _blocked(request: LockInput, targets: list[str], target: str, other: LockItem | None) -> LockOutput:
    logger.warning(
        "target is locked by another execution",
        extra={
            "target": target,
            "holder": other.holder if other else None,
            "heldUntil": other.expires_at if other else None,
            "attempt": request.attempt + 1,
        },
    )
    if not request.dry_run:
        metrics.add_metric(name="LockContended", unit=MetricUnit.Count, value=1)
    return _output(
        request,
        targets,
        holder=other.holder if other else None,
        held_until=other.expires_at if other else None,
        attempt=request.attempt + 1,
    )


def _dry_run_acquire(request: LockInput, targets: list[str], store: LockStore, now: int) -> LockOutput:
    for target in targets:
        item = store.get(target)
        if not is_free_for(item, request.execution_id, now):
            return _blocked(request, targets, target, item)
    logger.info("dry run: every target's lock would be acquired", extra={"targets": targets})
    return _output(request, targets, acquired=True)


def acquire(request: LockInput, store: LockStore, ttl_seconds: int, clock: Clock) -> LockOutput:
    targets = request.target_names()
    now = clock()
    if request.dry_run:
        return _dry_run_acquire(request, targets, store, now)

    newly_taken: list[str] = []
    for target in targets:
        outcome = store.put_if_free(target, holder=request.execution_id, now=now, expires_at=now + ttl_seconds)
        if outcome.written:
            if outcome.previous is None or outcome.previous.holder != request.execution_id:
                newly_taken.append(target)
            continue
        # All or nothing: give back what this call took, keep what this execution held before the call.
        for taken in reversed(newly_taken):
            if not store.delete_if_held_by(taken, request.execution_id):
                logger.warning("lock taken by this call was already gone when giving it back", extra={"target": taken})
        return _blocked(request, targets, target, outcome.previous)

    metrics.add_metric(name="LocksAcquired", unit=MetricUnit.Count, value=len(newly_taken))
    logger.info(
        "locks acquired",
        extra={"targets": targets, "newlyAcquired": newly_taken, "expiresAt": now + ttl_seconds},
    )
    return _output(request, targets, acquired=True)


def release(request: LockInput, store: LockStore) -> LockOutput:
    targets = request.target_names()
    if request.dry_run:
        logger.info("dry run: nothing was locked, nothing to release", extra={"targets": targets})
        return _output(request, targets)
    released = 0
    for target in targets:
        if store.delete_if_held_by(target, request.execution_id):
            released += 1
        else:
            logger.info("lock not held by this execution (someone else's, or already gone)", extra={"target": target})
    metrics.add_metric(name="LocksReleased", unit=MetricUnit.Count, value=released)
    logger.info("locks released", extra={"targets": targets, "deleted": released})
    return _output(request, targets, released=True)


def run(request: LockInput, config: DeployConfig, store: LockStore, ttl_seconds: int, clock: Clock) -> LockOutput:
    require_configured_stages(request, config)
    if request.action == "acquire":
        return acquire(request, store, ttl_seconds, clock)
    return release(request, store)
