"""Input, output and environment of the lock step."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.config import Strategy, Target
from shared.models import Payload, StepInput, StepModel


class LockStage(Payload):
    """A stage as validate_request outputs it."""

    name: str = Field(min_length=1)
    approval: bool = False
    wave_size: int = Field(default=1, ge=1)
    strategy: Strategy = "rolling"
    targets: list[Target] = Field(min_length=1)


class QueueRequest(StepModel):
    """What the queue needs of validate_request's normalised request: the rest of it is ignored here."""

    model_config = ConfigDict(extra="ignore", strict=True)

    action: str = Field(min_length=1)
    trigger: str = Field(min_length=1)
    when_busy: Literal["queue", "wait"]
    commit: str | None = None
    branch: str | None = None


class LockInput(StepInput):
    action: Literal["acquire", "release", "enqueue"]
    stages: list[LockStage] = Field(min_length=1)
    attempt: int = Field(default=0, ge=0)
    # The queue (a push that finds its targets locked waits for them): the request, when the execution started
    # ($$.Execution.StartTime, ISO 8601) and, for "enqueue", the waiting task's token ($$.Task.Token).
    request: QueueRequest | None = None
    started_at: datetime | None = Field(default=None, strict=False)
    task_token: str | None = Field(default=None, min_length=1, max_length=4096)

    def target_names(self) -> list[str]:
        """Every target's Auto Scaling group name, once, sorted (the lock order of every execution)."""
        return sorted({t.auto_scaling_group_name for s in self.stages for t in s.targets})


class LockOutput(StepModel):
    action: Literal["acquire", "release", "enqueue"]
    acquired: bool
    released: bool
    targets: list[str]
    holder: str | None  # the other execution holding a target, when not acquired
    held_until: int | None  # its lock's expiry (epoch seconds)
    attempt: int
    queued: bool = False  # enqueue: this execution now waits in the queue
    superseded: list[str] = Field(default_factory=list)  # queued executions this call ended as Superseded
    # Queued executions this call resumed (their targets may be free now).
    woken: list[str] = Field(default_factory=list)


class LockEnvironment(BaseModel):
    """What the stack sets on the lock function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lock_table_name: str = Field(alias="LOCK_TABLE_NAME", min_length=1)
    lock_ttl_seconds: int = Field(alias="LOCK_TTL_SECONDS", gt=0)
    queue_seconds: int = Field(alias="QUEUE_SECONDS", gt=0)  # how long a queued deployment may wait in all
