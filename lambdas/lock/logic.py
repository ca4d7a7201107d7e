"""Acquire or release the per-target locks of a deployment (safety rule 4), and queue pushes (safety rule 11).

Acquire is all-or-nothing: every target of the requested stages, in sorted order (two executions never
wait on each other in opposite orders), each with a conditional write that succeeds when the lock is free,
expired, or already this execution's (a retried acquire refreshes its expiry). When another live execution
holds one, what this call newly took is released again and the answer is acquired=false with that
execution and its expiry. Release deletes only this execution's locks.

What a blocked execution does next is its request's `whenBusy`:
- "wait" (manual runs, unless asked otherwise): the state machine waits and asks again, within lock.waitSeconds,
  and then fails with DeploymentInProgress, as before the queue existed;
- "queue" (pushes and the schedule): "enqueue", from the state machine's JoinQueue task, writes a queue item
  with the task's token and the execution waits there (no Lambda runs, no transitions) until a release wakes it
  (SendTaskSuccess: it asks for the locks again) or a newer push supersedes it (SendTaskFailure, error
  `Superseded`: it ends SUCCEEDED through its Superseded state, notified, no failure alarm).

Which push wins: a pushed deployment (`action` deploy, `whenBusy` queue) supersedes every queued one that started
before it and whose targets are all among its own, at the moment it queues or takes the locks; an older push that
queues behind a newer one holding or waiting for all its targets is superseded at once. So when the running
deployment ends, the newest queued push for those targets runs and the older ones are already told. Other queued
deployments (a scheduled base rebuild, a push to other targets) are never superseded: each release wakes every
queued deployment that waits for one of the released targets, and those that lose the race queue again.
Every step is idempotent: a retried enqueue replaces its own item (the first queuedAt is kept), a token answered
twice is a closed task (an outcome, shared.aws.task_tokens), a superseded entry is deleted only while it holds the
token that was answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from lock.models import LockInput, LockOutput
from shared.aws.lock_table import LockItem, PutOutcome, QueuedDeployment
from shared.aws.task_tokens import TokenDelivery
from shared.config import DeployConfig
from shared.errors import InvalidInput
from shared.observability import logger, metrics

Clock = Callable[[], int]  # epoch seconds


# The error a superseded queued push's JoinQueue task fails with (SendTaskFailure); the ASL catches it by name.
SUPERSEDED = "Superseded"
# The error a deployment ends with that waited for its targets past its bound (the ASL's LockTimedOut says the same).
DEPLOYMENT_IN_PROGRESS = "DeploymentInProgress"


class LockStore(Protocol):
    def put_if_free(self, lock: LockItem) -> PutOutcome: ...

    def get(self, target: str) -> LockItem | None: ...

    def delete_if_held_by(self, target: str, holder: str) -> bool: ...


class QueueStore(LockStore, Protocol):
    def queued(self) -> list[QueuedDeployment]: ...

    def get_queued(self, execution_id: str) -> QueuedDeployment | None: ...

    def put_queued(self, entry: QueuedDeployment) -> None: ...

    def delete_queued(self, execution_id: str, task_token: str | None = None) -> bool: ...


class Tokens(Protocol):
    def send_success(self, task_token: str, output: Mapping[str, Any]) -> TokenDelivery: ...

    def send_failure(self, task_token: str, error: str, cause: str) -> TokenDelivery: ...


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


def _started_at(request: LockInput, now: int) -> int:
    return int(request.started_at.timestamp()) if request.started_at is not None else now


def _is_push(request: LockInput) -> bool:
    """A pushed deployment: the only kind that supersedes queued pushes, and the only kind superseded."""
    return request.request is not None and request.request.action == "deploy" and request.request.when_busy == "queue"


def acquire(
    request: LockInput, store: QueueStore, ttl_seconds: int, clock: Clock, tokens: Tokens | None = None
) -> LockOutput:
    targets = request.target_names()
    now = clock()
    if request.dry_run:
        return _dry_run_acquire(request, targets, store, now)

    newly_taken: list[str] = []
    for target in targets:
        outcome = store.put_if_free(
            LockItem(
                target=target,
                holder=request.execution_id,
                expires_at=now + ttl_seconds,
                acquired_at=now,
                action=request.request.action if request.request else None,
                when_busy=request.request.when_busy if request.request else None,
                started_at=_started_at(request, now) if request.request else None,
            )
        )
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
    superseded: list[str] = []
    if request.request is not None and request.request.when_busy == "queue":
        if store.delete_queued(request.execution_id):
            logger.info("left the queue: the locks are this execution's now")
        if tokens is not None and _is_push(request):
            superseded = supersede_older(request, targets, _started_at(request, now), store, tokens)
    return _output(request, targets, acquired=True, superseded=superseded)


def _supersedes(newer: str, newer_started: int, newer_targets: list[str], older: QueuedDeployment) -> bool:
    """A push supersedes a queued push that started before it and deploys nothing it does not."""
    return (
        older.execution_id != newer
        and older.action == "deploy"
        and (older.started_at, older.execution_id) < (newer_started, newer)
        and set(older.targets) <= set(newer_targets)
    )


def _tell_superseded(entry: QueuedDeployment, by: str, commit: str | None, store: QueueStore, tokens: Tokens) -> None:
    cause = f"superseded by {by}" + (f" (commit {commit})" if commit else "") + ": a newer push deploys these targets"
    delivery = tokens.send_failure(entry.task_token, SUPERSEDED, cause)
    store.delete_queued(entry.execution_id, entry.task_token)
    metrics.add_metric(name="Superseded", unit=MetricUnit.Count, value=1)
    logger.info(
        "queued deployment superseded",
        extra={"superseded": entry.execution_id, "by": by, "delivered": delivery.delivered, "code": delivery.code},
    )


def supersede_older(
    request: LockInput, targets: list[str], started_at: int, store: QueueStore, tokens: Tokens
) -> list[str]:
    """End every queued push this push makes pointless (older, all its targets among ours) as Superseded."""
    commit = request.request.commit if request.request else None
    done = []
    for entry in store.queued():
        if _supersedes(request.execution_id, started_at, targets, entry):
            _tell_superseded(entry, request.execution_id, commit, store, tokens)
            done.append(entry.execution_id)
    return done


def wake_queued(released: list[str], holder: str, store: QueueStore, tokens: Tokens) -> list[str]:
    """After `holder` gave up `released`, resume every queued deployment waiting for one of them (SendTaskSuccess:
    each asks for its locks again; those that lose the race queue again). Used by release and by finish_execution."""
    store.delete_queued(holder)  # an execution that ends while queued leaves the queue
    freed = set(released)
    woken = []
    for entry in store.queued():
        if entry.execution_id == holder or not freed.intersection(entry.targets):
            continue
        delivery = tokens.send_success(entry.task_token, {"wokenBy": holder})
        logger.info(
            "queued deployment woken: its targets were released",
            extra={"queued": entry.execution_id, "delivered": delivery.delivered, "code": delivery.code},
        )
        if delivery.delivered:
            woken.append(entry.execution_id)
    return woken


def enqueue(
    request: LockInput, store: QueueStore, tokens: Tokens, ttl_seconds: int, queue_seconds: int, clock: Clock
) -> LockOutput:
    """Wait in the queue for the targets (the JoinQueue task): superseded at once by a newer push that holds or
    awaits all our targets; else write our item, supersede the older pushes we cover, and look at the locks once
    more (a release between our failed acquire and this item would otherwise wake nobody): free now, we resume
    ourselves. An execution in the queue runs no code and costs no transitions while it waits."""
    if request.request is None or request.started_at is None or request.task_token is None:
        raise InvalidInput("enqueue needs the request, the execution's start time and the task token")
    if request.dry_run or request.request.when_busy != "queue":
        raise InvalidInput("only a deployment whose request says whenBusy=queue, and no dry run, waits in the queue")
    targets = request.target_names()
    me, now, token = request.execution_id, clock(), request.task_token
    started = _started_at(request, now)
    earlier = store.get_queued(me)
    entry = QueuedDeployment(
        execution_id=me,
        targets=tuple(targets),
        action=request.request.action,
        trigger=request.request.trigger,
        started_at=started,
        queued_at=earlier.queued_at if earlier else now,
        task_token=token,
        expires_at=(earlier.queued_at if earlier else now) + queue_seconds + ttl_seconds,
        commit=request.request.commit,
        branch=request.request.branch,
    )
    if now - entry.queued_at > queue_seconds:
        # Waited lock.queueHours in all: the execution fails as a waiting manual run does (SendTaskFailure on our
        # own token; the ASL's Catch sends it down the failure path, which releases and notifies).
        store.delete_queued(me)
        tokens.send_failure(
            token,
            DEPLOYMENT_IN_PROGRESS,
            f"queued since {entry.queued_at} (epoch seconds) and the targets are still locked after "
            f"{queue_seconds // 3600} hour(s) (lock.queueHours)",
        )
        logger.warning("gave up waiting in the queue", extra={"queuedAt": entry.queued_at})
        return _output(request, targets)
    locks = {target: store.get(target) for target in targets}
    blocking = {t: item for t, item in locks.items() if not is_free_for(item, me, now)}
    holders = {item.holder for item in blocking.values() if item is not None}
    newer = _newer_push_covering(entry, locks, blocking, holders, store)
    if newer is not None:
        _tell_superseded(entry, newer, None, store, tokens)
        return _output(request, targets, superseded=[me])
    holder = sorted(holders)[0] if holders else None
    store.put_queued(replace(entry, blocked_by=holder))
    metrics.add_metric(name="DeploymentsQueued", unit=MetricUnit.Count, value=1 if earlier is None else 0)
    superseded = supersede_older(request, targets, started, store, tokens) if _is_push(request) else []
    woken: list[str] = []
    if not blocking:
        tokens.send_success(token, {"wokenBy": me})  # released meanwhile: ask for the locks again now
        woken.append(me)
    logger.info(
        "queued: waiting for the targets' locks",
        extra={"blockedBy": holder, "queuedAt": entry.queued_at, "superseded": superseded, "freeNow": not blocking},
    )
    return _output(request, targets, queued=True, holder=holder, superseded=superseded, woken=woken)


def _newer_push_covering(
    entry: QueuedDeployment,
    locks: dict[str, LockItem | None],
    blocking: dict[str, LockItem | None],
    holders: set[str],
    store: QueueStore,
) -> str | None:
    """The newer push that makes this queued push pointless: one holding all its targets, or queued for them."""
    if entry.action != "deploy":
        return None
    if len(holders) == 1 and len(blocking) == len(locks):
        item = next(iter(blocking.values()))
        if (
            item is not None
            and item.action == "deploy"
            and item.when_busy == "queue"
            and item.started_at is not None
            and (item.started_at, item.holder) > (entry.started_at, entry.execution_id)
        ):
            return item.holder
    for other in store.queued():
        if _supersedes(other.execution_id, other.started_at, list(other.targets), entry):
            return other.execution_id
    return None


def release(request: LockInput, store: QueueStore, tokens: Tokens | None = None) -> LockOutput:
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
    # Wake whoever queued for these targets even when this call deleted nothing: a retried release, or locks that
    # expired while held, must not leave a queued push asleep until its fallback look.
    woken = wake_queued(targets, request.execution_id, store, tokens) if tokens is not None else []
    return _output(request, targets, released=True, woken=woken)


def run(
    request: LockInput,
    config: DeployConfig,
    *,
    store: QueueStore,
    tokens: Tokens,
    ttl_seconds: int,
    queue_seconds: int,
    clock: Clock,
) -> LockOutput:
    require_configured_stages(request, config)
    if request.action == "acquire":
        return acquire(request, store, ttl_seconds, clock, tokens)
    if request.action == "enqueue":
        return enqueue(request, store, tokens, ttl_seconds, queue_seconds, clock)
    return release(request, store, tokens)
